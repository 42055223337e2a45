"""`token_classify` PRM family: Qwen2.5-Math-PRM style, a 2-label head read at step separators.

The path is rendered as a chat: system = `cfg.system` (default: Qwen2.5-Math's "Please reason step
by step, and put your final answer within \\boxed{}."), user = the question, assistant = every step
followed by the separator (default "<extra_0>"): "step 1<extra_0>step 2<extra_0>...". The model is
a token-classification model (transformers' *ForTokenClassification, or a checkpoint's own head
class behind AutoModel with `trust_remote_code: true`); a step's score is
softmax(logits at its separator)[positive_label]. Without a chat template (or `chat_template:
false`) the text is plain: "{question}\\n{step 1}{sep}{step 2}{sep}...".

    prm:
      family: token_classify
      path: Qwen/Qwen2.5-Math-PRM-7B
      separator: "<extra_0>"
      positive_label: 1
      trust_remote_code: true
"""

from __future__ import annotations

from typing import Any

from rebase.config import PRMConfig
from rebase.errors import BadInput
from reward_models.common import MarkerPRM, scrub, token_id

DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_SEPARATOR = "<extra_0>"


class TokenClassifyPRM(MarkerPRM):
    def __init__(self, cfg: PRMConfig):
        super().__init__(cfg, "token_classify")
        self.marker = cfg.separator if cfg.separator is not None else DEFAULT_SEPARATOR
        self.marker_id = token_id(self.tok, "separator", self.marker, cfg.path)
        self.system = cfg.system if cfg.system is not None else DEFAULT_SYSTEM
        has_template = bool(getattr(self.tok, "chat_template", None))
        if cfg.chat_template and not has_template:
            raise BadInput(f"prm.chat_template: true, but {cfg.path}'s tokenizer has no chat template")
        self.use_chat = has_template if cfg.chat_template is None else bool(cfg.chat_template)
        n_labels = int(getattr(self.model.config, "num_labels", 2) or 2)
        if not 0 <= cfg.positive_label < n_labels:
            raise BadInput(
                f"prm.positive_label: {cfg.positive_label} is not a label index of {cfg.path} ({n_labels} labels)"
            )

    def text(self, question: str, steps: list[str]) -> str:
        q = scrub(question, self.marker).strip()
        answer = "".join(scrub(s, self.marker).strip() + self.marker for s in steps)
        if not self.use_chat:
            return q + "\n" + answer
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def add_special_tokens(self) -> bool:
        # a rendered chat template already holds any BOS it wants; do not add a second one
        return not self.use_chat

    def reduce(self, rows: Any) -> Any:
        return rows.softmax(dim=-1)[:, self.cfg.positive_label]
