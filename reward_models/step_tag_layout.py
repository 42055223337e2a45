"""The `step_tag` input layout and tag / label token lookup, shared by both step_tag engines.

Why a module of its own: the transformers family (reward_models/step_tag.py) and the vLLM pooling
family (reward_models/step_tag_vllm.py) must build byte-identical inputs and look up the same token
ids, and neither engine module should import the other.
"""

from __future__ import annotations

from typing import Any

from rebase.config import PRMConfig
from rebase.errors import BadInput
from reward_models.base import step_tag_text
from reward_models.common import scrub, token_id

DEFAULT_TAG = " ки"


class StepTagLayout:
    """The tag / label token lookup and the input text, shared by both step_tag backends."""

    def init_layout(self, tok: Any, cfg: PRMConfig) -> None:
        self.marker = cfg.tag if cfg.tag is not None else DEFAULT_TAG
        self.marker_id = token_id(tok, "tag", self.marker, cfg.path)
        self.good_id = token_id(tok, "good", cfg.good if cfg.good is not None else "+", cfg.path)
        self.bad_id = token_id(tok, "bad", cfg.bad if cfg.bad is not None else "-", cfg.path)
        if self.good_id == self.bad_id:
            raise BadInput(f"prm.bad: {cfg.bad!r} is the same token as prm.good")

    def text(self, question: str, steps: list[str]) -> str:
        return step_tag_text(scrub(question, self.marker), [scrub(s, self.marker) for s in steps], self.marker)
