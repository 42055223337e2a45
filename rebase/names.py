"""The safe name rule: names that become file or directory names under an output directory.

Why: a model `name` (and a strategy `label`) is used as a directory or file name under DIR/trees/,
so `../../x`, an absolute path, `./a` next to `a`, or a 300-character name would write outside
`--out`, share one file between two models, or die halfway with an OS error. A name must match
SAFE_NAME: 1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit (so never
`.`, `..` or a hidden file), and two names may not differ only in letter case (they would share a
file on case-insensitive file systems).

    from rebase.names import check_name
    check_name("qwen2.5-math-1.5b", "models.0.name")   # ok; "../x" raises BadInput
"""

from __future__ import annotations

import re
from typing import Iterable

from rebase.errors import BadInput

MAX_NAME = 64
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_NAME - 1))
RULE = f"1-{MAX_NAME} characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"


def check_name(name: str, where: str) -> str:
    """`name` if it is a safe file name, else BadInput naming `where` and the rule."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        shown = name if len(str(name)) <= 80 else str(name)[:77] + "..."
        raise BadInput(f"{where}: {shown!r} is not a safe name ({RULE})")
    return name


def check_unique(source: str, names: Iterable[tuple[str, str]], what: str) -> None:
    """(key, name) pairs of a config read from `source`: names must be unique ignoring letter case."""
    seen: dict[str, str] = {}
    for where, name in names:
        folded = name.casefold()
        if folded in seen:
            raise BadInput(
                f"{source}: {where}: duplicate {what} {name!r} (as {seen[folded]}; names must "
                "differ in more than letter case)"
            )
        seen[folded] = where
