"""`mean_logit` PRM family: the REBASE paper's reward-model readout.

Same input layout as `step_tag` ("{question} {step 1}{tag}\\n{step 2}{tag}\\n..."), but no label
tokens: at each tag position the score is sigmoid(mean over the whole vocabulary of the logits).
This is how a reward model fine-tuned from a causal LM without a dedicated head can emit a scalar
per position (the logit mean is an affine function of the final hidden state, i.e. a linear value
head folded into the LM head). See docs/PRMS.md for what is known and assumed about the paper's
Llemma reward model.

    prm:
      family: mean_logit
      path: /models/llemma-7b-prm
      tag: " ки"
"""

from __future__ import annotations

from typing import Any

from rebase.config import PRMConfig
from reward_models.base import step_tag_text
from reward_models.common import MarkerPRM, scrub, token_id
from reward_models.step_tag_layout import DEFAULT_TAG


class MeanLogitPRM(MarkerPRM):
    def __init__(self, cfg: PRMConfig):
        super().__init__(cfg, "causal")
        self.marker = cfg.tag if cfg.tag is not None else DEFAULT_TAG
        self.marker_id = token_id(self.tok, "tag", self.marker, cfg.path)

    def text(self, question: str, steps: list[str]) -> str:
        return step_tag_text(scrub(question, self.marker), [scrub(s, self.marker) for s in steps], self.marker)

    def reduce(self, rows: Any) -> Any:
        return rows.mean(dim=-1).sigmoid()
