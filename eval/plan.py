"""Plan a sweep: turn a config into work units and the record keys each unit produces.

A unit is one search run per problem: a strategy at one budget and one seed, or, with sample
reuse, one shared pool of N samples at the largest budget from which every N-sample strategy x
budget x aggregator is derived (eval/pool.py). Knowing each unit's keys up front is what makes
resume exact: a problem is searched again only when one of its unit's records is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from rebase.config import RunConfig, StrategyConfig, strategy_label
from rebase.registry import STRATEGIES
from strategies.aggregators import needs_prm as aggregator_needs_prm


POOL_SEARCH = "majority"  # the search a shared sample pool runs (its tree files are named "pool-...")
_STEM = re.compile(r"(.+?)-b\d+-s\d+(?:-|$)")


def search_of(stem: str) -> str:
    """The registry name of the search that wrote the tree file DIR/trees/<model>/<stem>.jsonl
    (Unit.label's inverse: "rebase-b4-s0-wide" -> "rebase", "pool-b16-s0" -> POOL_SEARCH)."""
    m = _STEM.match(stem)
    name = m.group(1) if m else stem
    return POOL_SEARCH if name == "pool" else name


@dataclass(frozen=True)
class Output:
    """One record per problem: strategy (the entry's label, else its name), aggregator, step-score
    reduction, budget."""

    strategy: str
    aggregator: str
    reduction: str
    budget: int


@dataclass
class Unit:
    strategy: str  # the registry name of the search that runs
    budget: int  # the budget the search runs at (the pool size for pools)
    seed: int
    temperature: Optional[float]
    options: dict = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    pool: bool = False
    needs_prm: bool = False
    tag: Optional[str] = None  # the entry's label, when it has one: keeps its tree file apart

    @property
    def label(self) -> str:
        """The tree file's stem; it starts with the search name (replay reads it from there)."""
        return (
            f"{'pool' if self.pool else self.strategy}-b{self.budget}-s{self.seed}"
            + (f"-t{self.temperature}" if self.pool and self.temperature is not None else "")
            + (f"-{self.tag}" if self.tag else "")
        )


def aggregators_of(entry: StrategyConfig) -> list[str]:
    cls = STRATEGIES.get(entry.name)
    if entry.aggregators:
        return list(entry.aggregators)
    return [entry.aggregator or cls.default_aggregator]


def budget_groups(cls: type, budgets: list[int], options: dict) -> list[list[int]]:
    """One search per budget, except that a strategy whose run at a larger budget holds the run at
    a smaller one (`nestable`, e.g. adaptive budgets) searches once at the largest of those."""
    nest = getattr(cls, "nestable", None)
    nested = sorted(b for b in budgets if nest is not None and nest(b, options))
    groups = [[b] for b in budgets if b not in nested]
    return ([nested] if nested else []) + groups


def batches(problems: list, size: int) -> list[list]:
    """`problems` cut, in order, into batches of at most `size` (cfg.batch_problems): the one cut
    both the single-process runner and the Ray dispatcher use, so their batches are the same."""
    return [problems[i : i + size] for i in range(0, len(problems), size)]


def plan_units(cfg: RunConfig) -> list[Unit]:
    units: list[Unit] = []
    pools: dict[tuple, Unit] = {}
    for seed in cfg.seeds:
        for entry in cfg.strategies:
            cls = STRATEGIES.get(entry.name)
            aggs = aggregators_of(entry)
            if getattr(cls, "poolable", False) and cfg.sample_reuse:
                key = (seed, entry.temperature)
                pool = pools.get(key)
                if pool is None:
                    pool = pools[key] = Unit(POOL_SEARCH, 0, seed, entry.temperature, pool=True)
                    units.append(pool)
                pool.budget = max(pool.budget, max(entry.budgets))
                pool.needs_prm |= any(aggregator_needs_prm(a) for a in aggs) or cls.needs_prm
                pool.outputs += [
                    Output(strategy_label(entry), a, entry.reduction, b) for b in entry.budgets for a in aggs
                ]
                continue
            options = entry.options()
            if getattr(cls, "takes_reduction", False):
                options["reduction"] = entry.reduction  # e.g. the adaptive stopping tally
            for budgets in budget_groups(cls, entry.budgets, options):
                units.append(
                    Unit(
                        entry.name,
                        max(budgets),
                        seed,
                        entry.temperature,
                        options=options,
                        outputs=[Output(strategy_label(entry), a, entry.reduction, b) for b in budgets for a in aggs],
                        needs_prm=cls.needs_prm or any(aggregator_needs_prm(a) for a in aggs),
                        tag=entry.label,
                    )
                )
    return units
