"""`step_tag` PRM family: Math-Shepherd-style scoring with a step tag and two label tokens.

The path is rendered with the shared layout `step_tag_text` (reward_models/base.py):
"{question} {step 1}{tag}\\n{step 2}{tag}\\n...", the layout Math-Shepherd and the demo PRM were
trained on. The model is a causal LM; at every tag token it predicts the step's label, so a step's
score is softmax([logit(good), logit(bad)])[0] at that tag's position. One forward pass per path
scores all its steps; a round's paths are length-bucketed into batches (reward_models/common.py).

    prm:
      family: step_tag
      path: peiyi9979/math-shepherd-mistral-7b-prm
      tag: " ки"      # one token of the PRM's tokenizer (checked at load)
      good: "+"
      bad: "-"
      backend: vllm   # optional: score on a vLLM pooling engine (reward_models/step_tag_vllm.py)

The tag and label ids are looked up from the tokenizer and must each be exactly one token; the
tag string is removed from question and step text so that it marks step ends only.
"""

from __future__ import annotations

from typing import Any

from rebase.config import PRMConfig
from reward_models.common import MarkerPRM
from reward_models.step_tag_layout import StepTagLayout


class StepTagPRM(StepTagLayout, MarkerPRM):
    def __init__(self, cfg: PRMConfig):
        super().__init__(cfg, "causal")
        self.init_layout(self.tok, cfg)

    def reduce(self, rows: Any) -> Any:
        # a 2-way softmax over (good, bad): the other vocabulary entries do not dilute the score
        return rows[:, [self.good_id, self.bad_id]].softmax(dim=-1)[:, 0]


def make_step_tag(cfg: PRMConfig) -> Any:
    """The registered `step_tag` factory: `prm.backend` picks the engine, the scores are the same."""
    if cfg.backend == "vllm":
        from reward_models.step_tag_vllm import StepTagVLLMPRM

        return StepTagVLLMPRM(cfg)
    return StepTagPRM(cfg)
