"""The record contract: one JSON line per model x dataset x problem x strategy x aggregator x
budget x seed in DIR/results.jsonl (docs/ARCHITECTURE.md, "Contracts").

`correct` is a float: 0/1 for a single search, the mean over random k-subsets when a budget is
derived from a larger shared sample pool (eval/pool.py); token and FLOP fields are then the
subset means too. `error` is null, or the reason a problem failed (the report lists failures).
`problem_hash` fingerprints the problem's question and gold, so a resume over a data file that was
edited since (rows shifted, a gold fixed) is caught instead of mixing old and new problems.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_FIELDS = ("model", "dataset", "problem_id", "strategy", "aggregator", "budget", "seed")

# what a record spent: zero in a failed problem's records
COST_FIELDS = (
    "policy_prompt_tokens",
    "policy_cached_tokens",
    "policy_generated_tokens",
    "prm_tokens",
    "flops_paper",
    "flops_policy",
    "flops_total",
    "wall_s",
)
FIELDS = KEY_FIELDS + (
    "model_params",  # total policy parameters (for compute-optimal model size)
    "problem_hash",  # problem_hash(question, gold): the problem this record answered
    "level",  # difficulty level or null
    "reduction",  # step-score reduction used by the aggregator
    "answer",
    "gold",
    "correct",
    "n_candidates",
    "n_finished",
    "n_truncated",
    *COST_FIELDS,
    "subsets",  # number of k-subsets averaged (1 for a direct search)
    "error",
)
# Written only by strategies that report them (SearchResult.info["record"]):
# samples_used, waves, stop, leader_probability, adapts (adaptive budgets, strategies/adaptive.py)


def problem_hash(question: str, gold: str) -> str:
    """16 hex digits of sha256 over the question and the gold answer."""
    return hashlib.sha256(json.dumps([question, gold], ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def is_record(rec: Any) -> bool:
    """Whether a parsed line has the shape of a record (an object with every key field)."""
    return isinstance(rec, dict) and all(k in rec for k in KEY_FIELDS)


def record_key(rec: dict) -> tuple:
    return tuple(rec[k] for k in KEY_FIELDS)
