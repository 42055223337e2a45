"""Where a task's rows come from: a local JSONL file (`dataset.path`) or the Hugging Face hub.

Why: every task reads rows the same way, so a broken data file stops the run with a one-line
BadInput naming the file and line (not a traceback halfway through a sweep), and an unreachable hub
says to set `dataset.path`. A row is (source, 1-based line or row number, the JSON object), so a
task's own checks can name the row too (`required`).

    rows = read_jsonl("tests/fixtures/data/gsm8k/test.jsonl")
    question = required(rows[0], "question")
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from rebase.errors import BadInput

Row = tuple[str, int, dict[str, Any]]  # (source, 1-based line or row number, the object)


def read_jsonl(path: str | Path) -> list[Row]:
    """Rows of a local JSONL file; blank lines are skipped, anything else malformed is BadInput."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: dataset file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise BadInput(f"{p}:{line}: not UTF-8 text") from None
    rows: list[Row] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{p}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{p}:{n}: expected a JSON object, got {type(obj).__name__}")
        rows.append((str(p), n, obj))
    if not rows:
        raise BadInput(f"{p}: dataset file is empty")
    return rows


def hub_rows(repo: str, configs: Iterable[Optional[str]], split: str) -> list[Row]:
    """Rows from the hub, the configs' rows concatenated in order; any failure (offline, unknown
    split) is a BadInput pointing at dataset.path."""
    try:
        import datasets

        rows: list[Row] = []
        for conf in configs:
            ds = datasets.load_dataset(repo, conf, split=split)
            rows.extend((f"hub:{repo}", len(rows) + 1, dict(r)) for r in ds)
    except Exception as e:  # network, auth, missing split: all mean "use a local file"
        raise BadInput(
            f"hub:{repo}: could not load split '{split}' (hub unreachable or dataset "
            f"unavailable: {type(e).__name__}); set dataset.path to a local JSONL file"
        ) from None
    if not rows:
        raise BadInput(f"hub:{repo}: split '{split}' is empty")
    return rows


def required(row: Row, key: str) -> Any:
    """A field that must be there and not blank; BadInput naming the row otherwise."""
    src, n, obj = row
    val = obj.get(key)
    if val is None or (isinstance(val, str) and not val.strip()):
        raise BadInput(f"{src}:{n}: missing required field '{key}'")
    return val


def level_of(value: Any) -> Optional[int]:
    """MATH's "Level 3" or MATH-500's 3 -> 3; "Level ?" and absent -> None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.search(r"\d+", str(value)) if value is not None else None
    return int(m.group(0)) if m else None
