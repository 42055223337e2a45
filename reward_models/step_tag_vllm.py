"""`step_tag` PRM family on a vLLM pooling engine (`backend: vllm`).

Same model, layout and scores as reward_models/step_tag.py, but the forward passes run in an
in-process `vllm.LLM` started with `runner="pooling"`:

    prm:
      family: step_tag
      path: peiyi9979/math-shepherd-mistral-7b-prm
      tag: " ки"
      good: "+"
      bad: "-"
      backend: vllm
      engine_args: {gpu_memory_utilization: 0.3}   # passed to vllm.LLM(...) as they are

How the causal LM becomes a step scorer (docs/BACKENDS.md, "PRMs on vLLM"):
- `convert="classify"` with `hf_overrides` `classifier_from_token: [bad, good]` and
  `method: from_2_way_softmax` replaces the LM head by one row, logit(good) - logit(bad), whose
  sigmoid is exactly softmax([logit(good), logit(bad)])[0], the transformers family's score. The
  order matters: vLLM subtracts the FIRST token's row from the second's;
- the pooler runs the `token_classify` task with `tok_pooling_type: STEP` and `step_tag_id`, so
  each prompt yields one probability per tag position, in order.

A round is scored in ONE `llm.encode` call over token-id prompts built exactly as the transformers
family builds them (same tokenizer call, same tag scrubbing, same left truncation), and the counts
go through the shared `check_scores`, so errors and `on_error` behave the same on both backends.
"""

from __future__ import annotations

from typing import Any

from rebase.config import PRMConfig
from rebase.errors import BadInput, RunFailure
from reward_models.base import ScoreRequest, ScoreResult
from reward_models.common import check_scores, left_truncate, request_tag
from reward_models.step_tag_layout import StepTagLayout


def _seq_cls_architectures(archs: list[str]) -> list[str]:
    """"LlamaForCausalLM" -> "LlamaForSequenceClassification": vLLM's classifier wrapper of the same
    model family, which reads `classifier_from_token` / `method` when it loads the weights."""
    out = [a[: -len("ForCausalLM")] + "ForSequenceClassification" for a in archs if a.endswith("ForCausalLM")]
    if not out:
        raise BadInput(f"prm.path: step_tag on vllm needs a causal LM (architectures {archs})")
    return out


class StepTagVLLMPRM(StepTagLayout):
    """PRM protocol on a vLLM pooling engine (see the module docstring)."""

    role = "prm"

    def __init__(self, cfg: PRMConfig):
        from rebase.paths import check_path
        from rebase.backends.vllm_common import CPU_BLOCK_SIZE, flop_spec_for
        from reward_models._hf import load_tokenizer

        self.cfg = cfg
        self.name = cfg.name or cfg.path
        self._llm = None
        try:
            src = check_path(cfg.path, cfg.gguf_file)
        except BadInput as e:
            raise BadInput(f"prm.path: {e}") from None
        if cfg.gguf_file:
            raise BadInput("prm.gguf_file: the vllm backend of step_tag loads safetensors checkpoints only")
        # the tokenizer checks run before the engine starts, so a wrong tag fails in seconds
        self.tok = load_tokenizer(cfg)
        self.init_layout(self.tok, cfg)
        self.flop_spec = flop_spec_for(cfg.path, None, cfg.trust_remote_code)

        from transformers import AutoConfig
        from vllm import LLM
        from vllm.config import PoolerConfig
        from vllm.platforms import current_platform

        archs = list(getattr(AutoConfig.from_pretrained(src, trust_remote_code=cfg.trust_remote_code),
                             "architectures", None) or [])
        # vLLM looks the label rows up with convert_tokens_to_ids: pass the vocabulary pieces of the
        # ids found above, not the config strings (a sentencepiece "+" may be stored as "▁+")
        bad_piece, good_piece = self.tok.convert_ids_to_tokens([self.bad_id, self.good_id])
        args: dict[str, Any] = {"seed": 0, "dtype": cfg.dtype, "trust_remote_code": cfg.trust_remote_code}
        if current_platform.is_cpu():
            args["block_size"] = CPU_BLOCK_SIZE
        args.update(cfg.engine_args)  # only allowed keys (rebase/engine_args.py); the project's settings win below
        args["trust_remote_code"] = cfg.trust_remote_code
        args.update(
            model=src, tokenizer=src, runner="pooling", convert="classify",
            hf_overrides={"architectures": _seq_cls_architectures(archs),
                          "classifier_from_token": [bad_piece, good_piece],  # bad FIRST: sigmoid(good - bad)
                          "method": "from_2_way_softmax"},
            pooler_config=PoolerConfig(task="token_classify", tok_pooling_type="STEP", step_tag_id=self.marker_id),
        )
        self._llm = LLM(**args)
        self.max_length = int(self._llm.llm_engine.model_config.max_model_len)


    def encode(self, question: str, steps: list[str]) -> list[int]:
        # the transformers family's tokenizer call (BOS included where the tokenizer adds one)
        return list(self.tok(self.text(question, steps))["input_ids"])

    def _pool(self, seqs: list[list[int]]) -> list[list[float]]:
        """One P(good) per tag position of each sequence, from ONE `llm.encode` call."""
        from vllm.inputs import TokensPrompt

        if not seqs:
            return []
        try:
            outs = self._llm.encode([TokensPrompt(prompt_token_ids=s) for s in seqs],
                                    pooling_task="token_classify", use_tqdm=False)
        except (ValueError, RuntimeError) as e:
            raise RunFailure(f"vllm PRM encode failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        if len(outs) != len(seqs):
            raise RunFailure(f"vllm PRM returned {len(outs)} outputs for {len(seqs)} paths")
        return [o.outputs.data.float().reshape(-1).tolist() for o in outs]

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        seqs, cut = [], []
        for req in requests:
            ids, truncated = left_truncate(self.encode(req.question, req.steps), self.max_length) if req.steps else ([], False)
            seqs.append(ids)
            cut.append(truncated)
        live = [i for i, r in enumerate(requests) if r.steps]
        raw: list[list[float]] = [[] for _ in requests]
        for i, got in zip(live, self._pool([seqs[i] for i in live])):
            raw[i] = got
        return [ScoreResult(scores=check_scores(self.cfg, request_tag(r, i), raw[i], len(r.steps), cut[i]),
                            prompt_tokens=len(seqs[i]))
                for i, r in enumerate(requests)]

    def close(self) -> None:
        llm, self._llm = self._llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
