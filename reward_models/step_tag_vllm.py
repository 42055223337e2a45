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
      engine_args: {gpu_memory_utilization: 0.3}   # allowed vllm.LLM(...) arguments (rebase/engine_args.py)

How the causal LM becomes a step scorer (docs/BACKENDS.md, "PRMs on vLLM"):
- `convert="classify"` with `hf_overrides` `classifier_from_token: [bad, good]` and
  `method: from_2_way_softmax` replaces the LM head by one row, logit(good) - logit(bad), whose
  sigmoid is exactly softmax([logit(good), logit(bad)])[0], the transformers family's score. The
  order matters: vLLM subtracts the FIRST token's row from the second's;
- the pooler runs the `classify` task with LAST pooling: a prompt that ends at a tag yields that
  tag's probability.

Incremental scoring with vLLM's prefix cache (as the paper's reward server did): vLLM's STEP
pooling (one probability per tag of a prompt) cannot run on cached blocks, so the engine runs with
prefix caching and LAST pooling instead, and each tag is scored once: the score of every prefix
ending at a tag is kept here (an LRU of `prm.kv_cache_bytes / 64` entries), and only tags never
scored are sent, as the prompt ending at that tag. A tree-search child's earlier tags were scored
with its parent, so it sends one prompt, its whole path, whose blocks up to the parent's end come
from the engine's prefix cache; the engine's `num_cached_tokens` is booked as cached tokens. A
path seen for the first time with k tags sends k prompts, in k `llm.encode` calls (tag 1 of every
such path, then tag 2, ...) so that each reads the previous one's blocks from the cache. Prompts
are built exactly as the transformers family builds them (same tokenizer call, same tag scrubbing,
same left truncation), and the counts go through the shared `check_scores`, so errors and
`on_error` behave the same on both backends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from rebase.config import PRMConfig
from rebase.errors import BadInput, RunFailure
from reward_models.base import ScoreRequest, ScoreResult
from reward_models.common import check_scores, left_truncate, request_tag
from reward_models.step_tag_layout import StepTagLayout


def _seq_cls_architectures(archs: list[str]) -> list[str]:
    """ "LlamaForCausalLM" -> "LlamaForSequenceClassification": vLLM's classifier wrapper of the same
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
        self._known: OrderedDict[tuple[int, ...], float] = OrderedDict()  # prefix ending at a tag -> P(good)
        self._known_cap = max(1024, cfg.kv_cache_bytes // 64)
        self._cached: list[int] = []  # per sequence of the last _pool call: tokens served by the prefix cache
        self._rows: list[int] = []  # and classifier rows computed
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

        archs = list(
            getattr(AutoConfig.from_pretrained(src, trust_remote_code=cfg.trust_remote_code), "architectures", None)
            or []
        )
        # vLLM looks the label rows up with convert_tokens_to_ids: pass the vocabulary pieces of the
        # ids found above, not the config strings (a sentencepiece "+" may be stored as "▁+")
        bad_piece, good_piece = self.tok.convert_ids_to_tokens([self.bad_id, self.good_id])
        args: dict[str, Any] = {"seed": 0, "dtype": cfg.dtype, "trust_remote_code": cfg.trust_remote_code}
        if current_platform.is_cpu():
            args["block_size"] = CPU_BLOCK_SIZE
        args.update(cfg.engine_args)  # only allowed keys (rebase/engine_args.py); the project's settings win below
        args["trust_remote_code"] = cfg.trust_remote_code
        args.update(
            model=src,
            tokenizer=src,
            runner="pooling",
            convert="classify",
            hf_overrides={
                "architectures": _seq_cls_architectures(archs),
                "classifier_from_token": [bad_piece, good_piece],  # bad FIRST: sigmoid(good - bad)
                "method": "from_2_way_softmax",
            },
            pooler_config=PoolerConfig(task="classify", seq_pooling_type="LAST"),
            enable_prefix_caching=True,
        )
        self._llm = LLM(**args)
        self.max_length = int(self._llm.llm_engine.model_config.max_model_len)

    def encode(self, question: str, steps: list[str]) -> list[int]:
        # the transformers family's tokenizer call (BOS included where the tokenizer adds one)
        return list(self.tok(self.text(question, steps))["input_ids"])

    def _encode(self, prompts: list[list[int]]) -> list[tuple[float, int]]:
        """(P(good) at the last token, tokens served from the prefix cache) per prompt, ONE call."""
        from vllm.inputs import TokensPrompt

        try:
            outs = self._llm.encode(
                [TokensPrompt(prompt_token_ids=s) for s in prompts], pooling_task="classify", use_tqdm=False
            )
        except (ValueError, RuntimeError) as e:
            raise RunFailure(f"vllm PRM encode failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        if len(outs) != len(prompts):
            raise RunFailure(f"vllm PRM returned {len(outs)} outputs for {len(prompts)} paths")
        return [(float(o.outputs.data.float().reshape(-1)[-1]), int(o.num_cached_tokens or 0)) for o in outs]

    def _pool(self, seqs: list[list[int]]) -> list[list[float]]:
        """One P(good) per tag position of each sequence; tags scored before are not sent again.
        Sets self._cached (per sequence: tokens the engine served from its prefix cache)."""
        tags = [[p for p, t in enumerate(s) if t == self.marker_id] for s in seqs]
        todo: list[list[tuple[int, int]]] = []  # rank r: (sequence, tag position) of each path's r-th unknown tag
        for i, (s, ps) in enumerate(zip(seqs, tags)):
            unknown = [p for p in ps if tuple(s[: p + 1]) not in self._known]
            for r, p in enumerate(unknown):
                (todo.append([]) if r == len(todo) else None)
                todo[r].append((i, p))
        run = [0] * len(seqs)  # tokens the engine computed for each sequence
        self._rows = [0] * len(seqs)  # classifier rows computed: one per prompt sent
        for rank in todo:  # one engine call per rank: rank r + 1 reads rank r's blocks from the cache
            unique = list(dict.fromkeys(tuple(seqs[i][: p + 1]) for i, p in rank))
            got = dict(zip(unique, self._encode([list(u) for u in unique])))
            for i, p in rank:
                key = tuple(seqs[i][: p + 1])
                run[i] += len(key) - got[key][1]
                self._rows[i] += 1
                self._remember(key, got[key][0])
        # booked as one read of the path with the rest served from cache (exact for a child's one prompt)
        self._cached = [len(s) - min(len(s), n) for s, n in zip(seqs, run)]
        return [[self._known[tuple(s[: p + 1])] for p in ps] for s, ps in zip(seqs, tags)]

    def _remember(self, key: tuple[int, ...], score: float) -> None:
        self._known[key] = score
        self._known.move_to_end(key)
        while len(self._known) > self._known_cap:
            self._known.popitem(last=False)

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        seqs, cut = [], []
        for req in requests:
            ids, truncated = (
                left_truncate(self.encode(req.question, req.steps), self.max_length) if req.steps else ([], False)
            )
            seqs.append(ids)
            cut.append(truncated)
        live = [i for i, r in enumerate(requests) if r.steps]
        raw: list[list[float]] = [[] for _ in requests]
        self._cached = []
        pooled = self._pool([seqs[i] for i in live]) if live else []
        fresh = len(self._cached) == len(live)  # a test double of _pool may not set them
        hits = self._cached if fresh else [0] * len(live)
        rows_sent = self._rows if fresh else [None] * len(live)
        cached: list[int] = [0] * len(requests)
        rows: list[Any] = [0] * len(requests)
        for i, got, hit, n in zip(live, pooled, hits, rows_sent):
            raw[i], cached[i], rows[i] = got, hit, n
        return [
            ScoreResult(
                scores=check_scores(self.cfg, request_tag(r, i), raw[i], len(r.steps), cut[i]),
                prompt_tokens=len(seqs[i]),
                cached_tokens=cached[i],
                head_rows=rows[i],
            )
            for i, r in enumerate(requests)
        ]

    def close(self) -> None:
        llm, self._llm = self._llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
