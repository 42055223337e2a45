"""The repository works cloned alone: nothing under configs/, tests/ or README.md points outside it
(to a sibling checkout's data, or to one machine's absolute paths).

    python -m pytest -q tests/test_self_contained.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a parent-directory escape, or an absolute path into a home or workspace folder
OUTSIDE = re.compile(r"\.\./(?:shared|data)\b|(?<![\w.])/(?:work|home|Users)/\w")


def files() -> list[Path]:
    out = [ROOT / "README.md", *sorted((ROOT / "configs").rglob("*.yaml"))]
    out += [
        p
        for p in sorted((ROOT / "tests").rglob("*"))
        if p.suffix in (".py", ".yaml", ".md", ".txt")
        and "fixtures" not in p.relative_to(ROOT / "tests").parts[:1]
        and p != Path(__file__).resolve()
    ]
    return out


def test_no_paths_outside_the_repository():
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in files()
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not bad, "paths outside the repository:\n" + "\n".join(bad)


def test_the_check_catches_a_sibling_path():
    assert OUTSIDE.search("path: " + "../" + "shared/data/gsm8k/test.jsonl")
    assert OUTSIDE.search("/" + "work/main/configs/x.yaml")
    assert not OUTSIDE.search("path: tests/fixtures/data/gsm8k/test.jsonl")
