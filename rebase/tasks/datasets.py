"""The built-in datasets and the configured slice of one: `load_problems(cfg)`.

Why: every run starts from the same problem list, so ids must be stable (records of different runs
join on them), must be unique, and the `levels` / `sample` / `limit` options must cut the list the
same way whatever the dataset. What a dataset *is* (rows, golds, prompt defaults, answer rules) is
its task object (rebase/tasks/base.py), one file each, registered in DATASETS:

| name     | file              | hub copy (unless `dataset.path` names a local JSONL) |
|----------|-------------------|------------------------------------------------------|
| gsm8k    | gsm8k.py          | openai/gsm8k (config main)                           |
| math500  | hendrycks_math.py | HuggingFaceH4/MATH-500                               |
| math     | hendrycks_math.py | EleutherAI/hendrycks_math (one config per subject)   |
| aime2024 | aime.py           | HuggingFaceH4/aime_2024                              |
| aime2025 | aime.py           | opencompass/AIME2025 (configs AIME2025-I, -II)       |
| amc2023  | amc.py            | AI-MO/aimo-validation-amc (its 2023 rows)            |
| arith    | arith.py          | none: generated from `seed` and `size`               |

Importing this module registers them (arith lazily, so that looking datasets up never imports its
generator); rebase/plugins.py imports it on the first registry lookup.

    from rebase.config import DatasetConfig
    from rebase.tasks.datasets import load_problems
    probs = load_problems(DatasetConfig(name="math500", path="tests/fixtures/data/math500/test.jsonl", levels=[5]))
"""

from __future__ import annotations

import random

from rebase.config import DatasetConfig
from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks import aime, amc, gsm8k, hendrycks_math  # noqa: F401  (each registers its tasks)
from rebase.tasks.base import task_of
from rebase.types import Problem

DATASETS.register_lazy(
    "arith", "rebase.tasks.arith:Arith", "generated multi-step arithmetic (levels 1-5), the demo world's dataset"
)


def check_unique_ids(problems: list[Problem], source: str) -> None:
    """Records join on problem ids: two problems with one id would drop or mis-grade one of them."""
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.id in seen:
            raise BadInput(
                f"{source}: problem id {p.id!r} appears twice (problems {seen[p.id] + 1} and {i + 1}); "
                "ids must be unique"
            )
        seen[p.id] = i


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """The configured slice: task loader -> `levels` filter -> seeded `sample` -> first `limit`.

    `sample` keeps the shuffled order, so `limit` on top of it is itself a uniform random subset
    and a smaller `limit` is a prefix of a larger one (budget sweeps can grow the slice)."""
    problems = list(task_of(cfg.name).load(cfg))
    source = cfg.path or f"dataset '{cfg.name}'"
    check_unique_ids(problems, source)
    if cfg.levels is not None:
        found = sorted({p.level for p in problems if p.level is not None})
        problems = [p for p in problems if p.level in set(cfg.levels)]
        if not problems:
            raise BadInput(
                f"{source}: dataset.levels {cfg.levels} left no problems (levels present: {found or 'none'})"
            )
    if cfg.sample is not None:
        k = min(cfg.sample, len(problems))
        problems = random.Random(cfg.sample_seed).sample(problems, k)
    if cfg.limit is not None:
        problems = problems[: cfg.limit]
    if not problems:
        raise BadInput(f"{source}: no problems to run")
    return problems
