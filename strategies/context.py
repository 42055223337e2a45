"""What every search runs with: the SearchContext (policy, PRM, prompt format, sampling settings,
seed, dataset) and the request seeds derived from it.

Why a module of its own: the tree machinery (strategies/tree.py) needs both, and the Strategy
protocol (strategies/base.py) needs the tree machinery for its default replay rule, so neither can
be where the other imports it from. strategies/base.py re-exports both names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from rebase.config import SamplingConfig
from rebase.generator import Generator
from rebase.tasks.prompts import PromptFormat
from reward_models.base import PRM


@dataclass
class SearchContext:
    generator: Generator
    prm: Optional[PRM]
    prompts: PromptFormat
    sampling: SamplingConfig
    seed: int
    dataset: str
    include_truncated: bool = False


def request_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from (run seed, problem id, node id, ...): stable whatever the batching."""
    h = hashlib.blake2b(repr((seed,) + parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1
