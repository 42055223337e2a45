"""Benchmark loaders: GSM8K, MATH-500, full MATH (and arith, lazily) -> list[Problem].

Why: every run starts from the same problem list, so ids must be stable (records of different runs
join on them), golds must be extracted one way, and a broken data file must stop the run with a
one-line BadInput naming the file and line rather than a traceback halfway through a sweep.

Each loader reads `cfg.path` (a local JSONL, one object a line) when set, else the Hugging Face hub
through `datasets`:

| name    | hub                          | id                       | gold                          |
|---------|------------------------------|--------------------------|-------------------------------|
| gsm8k   | openai/gsm8k (config main)   | gsm8k-<row index>        | number after "#### "          |
| math500 | HuggingFaceH4/MATH-500       | `unique_id`              | `answer`                      |
| math    | EleutherAI/hendrycks_math    | math-<`idx`, else row>   | last \\boxed{} of `solution`  |

(The hub copy of full MATH is split by subject; its rows are concatenated in the order below, so
hub ids need not match those of a local file that carries `idx`.)

    from rebase.config import DatasetConfig
    from rebase.tasks.datasets import load_problems
    probs = load_problems(DatasetConfig(name="math500", path="tests/fixtures/data/math500/test.jsonl", levels=[5]))
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from rebase.tasks.grading import last_boxed
from rebase.config import DatasetConfig
from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.types import Problem

Row = tuple[str, int, dict[str, Any]]  # (source, 1-based line or row number, the object)

_MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                  "number_theory", "prealgebra", "precalculus")

# The only module-level action: a lazy entry, so looking up datasets never imports rebase.tasks.arith.
DATASETS.register_lazy("arith", "rebase.tasks.arith:load_arith",
                       "generated multi-step arithmetic (levels 1-5), the demo world's dataset")


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


def _hub_rows(repo: str, configs: Iterable[Optional[str]], split: str) -> list[Row]:
    """Rows from the hub; any failure (offline, unknown split) is a BadInput pointing at dataset.path."""
    try:
        import datasets

        rows: list[Row] = []
        for conf in configs:
            ds = datasets.load_dataset(repo, conf, split=split)
            rows.extend((f"hub:{repo}", len(rows) + 1, dict(r)) for r in ds)
    except Exception as e:  # network, auth, missing split: all mean "use a local file"
        raise BadInput(f"hub:{repo}: could not load split '{split}' (hub unreachable or dataset "
                       f"unavailable: {type(e).__name__}); set dataset.path to a local JSONL file") from None
    if not rows:
        raise BadInput(f"hub:{repo}: split '{split}' is empty")
    return rows


def _field(row: Row, key: str) -> Any:
    src, n, obj = row
    val = obj.get(key)
    if val is None or (isinstance(val, str) and not val.strip()):
        raise BadInput(f"{src}:{n}: missing required field '{key}'")
    return val


def _level(value: Any) -> Optional[int]:
    """MATH's "Level 3" or MATH-500's 3 -> 3; "Level ?" and absent -> None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.search(r"\d+", str(value)) if value is not None else None
    return int(m.group(0)) if m else None


@DATASETS.register("gsm8k")
def load_gsm8k(cfg: DatasetConfig) -> list[Problem]:
    """GSM8K grade-school word problems (openai/gsm8k, or `path:` JSONL with question/answer)."""
    rows = read_jsonl(cfg.path) if cfg.path else _hub_rows("openai/gsm8k", ["main"], cfg.split)
    out = []
    for i, row in enumerate(rows):
        answer = str(_field(row, "answer"))
        if "####" not in answer:
            raise BadInput(f"{row[0]}:{row[1]}: field 'answer' has no '#### <number>' gold marker")
        gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
        if not gold:
            raise BadInput(f"{row[0]}:{row[1]}: field 'answer' has nothing after '####'")
        out.append(Problem(id=f"gsm8k-{i}", question=str(_field(row, "question")), gold=gold, dataset="gsm8k"))
    return out


@DATASETS.register("math500")
def load_math500(cfg: DatasetConfig) -> list[Problem]:
    """MATH-500 competition problems (HuggingFaceH4/MATH-500, or `path:` JSONL), levels 1-5."""
    rows = read_jsonl(cfg.path) if cfg.path else _hub_rows("HuggingFaceH4/MATH-500", [None], cfg.split)
    return [Problem(id=str(_field(r, "unique_id")), question=str(_field(r, "problem")),
                    gold=str(_field(r, "answer")).strip(), dataset="math500",
                    level=_level(r[2].get("level")), subject=r[2].get("subject"))
            for r in rows]


@DATASETS.register("math")
def load_math(cfg: DatasetConfig) -> list[Problem]:
    """The MATH test set (EleutherAI/hendrycks_math, or `path:` JSONL), boxed gold answers."""
    rows = read_jsonl(cfg.path) if cfg.path else _hub_rows("EleutherAI/hendrycks_math", _MATH_SUBJECTS, cfg.split)
    out = []
    for i, row in enumerate(rows):
        gold = last_boxed(str(_field(row, "solution")))
        if not gold:
            raise BadInput(f"{row[0]}:{row[1]}: field 'solution' has no complete \\boxed{{...}} answer")
        idx = row[2].get("idx")
        out.append(Problem(id=f"math-{idx if idx is not None else i}", question=str(_field(row, "problem")),
                           gold=gold, dataset="math", level=_level(row[2].get("level")),
                           subject=row[2].get("type")))
    return out


def check_unique_ids(problems: list[Problem], source: str) -> None:
    """Records join on problem ids: two problems with one id would drop or mis-grade one of them."""
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.id in seen:
            raise BadInput(f"{source}: problem id {p.id!r} appears twice (problems {seen[p.id] + 1} and {i + 1}); "
                           "ids must be unique")
        seen[p.id] = i


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """The configured slice: loader -> `levels` filter -> seeded `sample` -> first `limit`.

    `sample` keeps the shuffled order, so `limit` on top of it is itself a uniform random subset
    and a smaller `limit` is a prefix of a larger one (budget sweeps can grow the slice)."""
    loader: Callable[[DatasetConfig], list[Problem]] = DATASETS.get(cfg.name)
    problems = list(loader(cfg))
    source = cfg.path or f"dataset '{cfg.name}'"
    check_unique_ids(problems, source)
    if cfg.levels is not None:
        found = sorted({p.level for p in problems if p.level is not None})
        problems = [p for p in problems if p.level in set(cfg.levels)]
        if not problems:
            raise BadInput(f"{source}: dataset.levels {cfg.levels} left no problems "
                           f"(levels present: {found or 'none'})")
    if cfg.sample is not None:
        k = min(cfg.sample, len(problems))
        problems = random.Random(cfg.sample_seed).sample(problems, k)
    if cfg.limit is not None:
        problems = problems[: cfg.limit]
    if not problems:
        raise BadInput(f"{source}: no problems to run")
    return problems
