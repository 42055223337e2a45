"""`judge` PRM family: a generative model asked, step by step, whether each step is correct.

For step k of a path the model reads `judge_prompt` with {question}, {steps} (steps 1..k-1, one
per line as "Step i: ...", or "(none)") and {step} (step k) filled in, rendered with the
tokenizer's chat template when it has one (system = `cfg.system` when set, then the user turn and
the assistant header), else as plain text ending in "\\nAnswer:". The step's score is
P(good) / (P(good) + P(bad)) from the next-token distribution, good/bad default "Yes"/"No";
{good} and {bad} in the prompt are replaced by those strings too.

Label tokens: each of `good` and `bad` is looked up as written AND with a leading space (" Yes"),
since the first answer token follows a newline in a chat template but a space in plain text
("Answer: Yes"). Every spelling that is one token counts, and the probabilities of the spellings
are summed; at least one spelling of each must be a single token (else BadInput), and the two sets
must not share a token.

Every (path, step) prompt of a round is scored in one length-bucketed batched pass; a path's
ledger tokens are the sum of its prompts' lengths (role "judge", no generated tokens). With
`kv_reuse` (reward_models/kv_reuse.py) a prompt read before is free (its score is stored) and a
new step's prompt runs only from where it leaves the longest stored prompt it shares a prefix with
(the previous step's prompt, up to the steps list); those tokens are booked as cached.

    prm:
      family: judge
      path: Qwen/Qwen2.5-1.5B-Instruct
      good: "Yes"
      bad: "No"
"""

from __future__ import annotations

import re
from typing import Any

from rebase.config import PRMConfig
from rebase.errors import BadInput
from reward_models._hf import output_head
from reward_models.common import (
    check_scores,
    head_rows,
    left_truncate,
    make_scorer,
    max_length,
    readout,
    request_tag,
    takes_logits_to_keep,
)

DEFAULT_PROMPT = (
    "You are checking a step-by-step solution to a math problem.\n\n"
    "Problem:\n{question}\n\nPrevious steps:\n{steps}\n\nNew step:\n{step}\n\n"
    "Is the new step correct? Answer {good} or {bad}."
)
_FIELD = re.compile(r"\{(question|steps|step|good|bad)\}")


def label_ids(tok: Any, key: str, text: str, path: str) -> list[int]:
    """Single-token ids of `text` and of its leading-space variant (see the module docstring)."""
    if not text or not text.strip():
        raise BadInput(f"prm.{key}: must be a non-empty string")
    variants = [text, " " + text] if not text.startswith(" ") else [text, text.lstrip()]
    ids, splits = [], []
    for v in variants:
        enc = tok.encode(v, add_special_tokens=False)
        splits.append(len(enc))
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(int(enc[0]))
    if not ids:
        raise BadInput(
            f"prm.{key}: neither {variants[0]!r} nor {variants[1]!r} is a single token of "
            f"{path}'s tokenizer (they split into {splits[0]} and {splits[1]})"
        )
    return ids


class JudgePRM:
    role = "judge"

    def __init__(self, cfg: PRMConfig):
        from reward_models._hf import flop_spec, load_model, load_tokenizer

        self.cfg = cfg
        self.name = cfg.name or cfg.path
        self.template = cfg.judge_prompt if cfg.judge_prompt is not None else DEFAULT_PROMPT
        if "{step}" not in self.template:
            raise BadInput("prm.judge_prompt: must contain the {step} placeholder")
        self.good = cfg.good if cfg.good is not None else "Yes"
        self.bad = cfg.bad if cfg.bad is not None else "No"
        self.tok = load_tokenizer(cfg)
        self.good_ids = label_ids(self.tok, "good", self.good, cfg.path)
        self.bad_ids = label_ids(self.tok, "bad", self.bad, cfg.path)
        if set(self.good_ids) & set(self.bad_ids):
            raise BadInput(f"prm.bad: {self.bad!r} shares a token with prm.good {self.good!r}")
        has_template = bool(getattr(self.tok, "chat_template", None))
        if cfg.chat_template and not has_template:
            raise BadInput(f"prm.chat_template: true, but {cfg.path}'s tokenizer has no chat template")
        self.use_chat = has_template if cfg.chat_template is None else bool(cfg.chat_template)
        self.model = load_model(cfg, "causal")
        self.flop_spec = flop_spec(self.model)
        self.max_length = max_length(self.model)
        self.keeps_logits = takes_logits_to_keep(self.model)
        self.scorer = make_scorer(self.model, self.tok, cfg, self.keeps_logits)

    def prompt(self, question: str, steps: list[str], k: int) -> str:
        """The text that asks about step k (0-based) of `steps`."""
        prev = "\n".join(f"Step {i + 1}: {s.strip()}" for i, s in enumerate(steps[:k])) or "(none)"
        values = {
            "question": question.strip(),
            "steps": prev,
            "step": steps[k].strip(),
            "good": self.good.strip(),
            "bad": self.bad.strip(),
        }
        # a regex fill, not str.format: braces in the math text or the template (\boxed{}) stay as is
        user = _FIELD.sub(lambda m: values[m.group(1)], self.template)
        if not self.use_chat:
            return user + "\nAnswer:"
        messages = [{"role": "user", "content": user}]
        if self.cfg.system:
            messages.insert(0, {"role": "system", "content": self.cfg.system})
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def reduce(self, rows: Any) -> Any:
        # log-sum-exp over each label's spellings: P(good)/(P(good)+P(bad)) without underflow
        lg = rows[:, self.good_ids].logsumexp(dim=-1)
        lb = rows[:, self.bad_ids].logsumexp(dim=-1)
        return (lg - lb).sigmoid()

    def score(self, requests: list[Any]) -> list[Any]:
        from reward_models.base import ScoreResult

        seqs: list[list[int]] = []
        owner: list[int] = []
        for i, req in enumerate(requests):
            for k in range(len(req.steps)):
                text = self.prompt(req.question, req.steps, k)
                ids = list(self.tok(text, add_special_tokens=not self.use_chat)["input_ids"])
                seqs.append(left_truncate(ids, self.max_length)[0])
                owner.append(i)
        got = readout(self, seqs, [[len(s) - 1] for s in seqs])
        raw: list[list[float]] = [[] for _ in requests]
        tokens, cached, rows = [0] * len(requests), [0] * len(requests), [0] * len(requests)
        plain = output_head(self.model) is not None
        for i, s, (g, c) in zip(owner, seqs, got):
            raw[i].extend(g.tolist())
            tokens[i] += len(s)
            cached[i] += c
            rows[i] += head_rows([len(s) - 1], c, len(s), plain)  # one row per step prompt not read before
        return [
            ScoreResult(
                scores=check_scores(self.cfg, request_tag(r, i), raw[i], len(r.steps)),
                prompt_tokens=tokens[i],
                cached_tokens=cached[i],
                head_rows=rows[i],
            )
            for i, r in enumerate(requests)
        ]
