"""The transformers generation backend: batched sampling over a plain model forward with a KV cache.

Registered as backend "transformers". One `generate` call takes a whole search round: requests
wait in a queue and run with continuous batching (rebase/backends/hf_stream.py): the running batch
holds at most cfg.batch_tokens (prompt + max new tokens per sample), the n samples of a request
share one prefill, every decode step is one forward for the whole batch (hf_decode.py), and a
finished row's slot goes to the next waiting request. `refill` lets a caller add requests while
the decode runs (a tree search's next round for a problem whose round is done). Sampling noise
depends only on (seed, sample, tokens generated), so results do not depend on the batch
(hf_sampling.py). With cfg.prefix_reuse, finished sequences'
KV states are kept in a bounded LRU store (hf_cache.py) and a prompt that extends one prefills only
its new tokens; a tree-search child, cached but for its last token, needs no prefill forward at all
(it joins the decode as a pending row, hf_stream.py); its completions report that reuse in
cached_tokens. On CUDA an
out-of-memory error falls back to whole batches, halved until they fit.

    gen = TransformersGenerator(TransformersModel(name="m", path="path/to/model"))
    out = gen.generate([GenerationRequest(prompt="2+2=", n=4, max_tokens=16, stop=("\\n",), seed=1)])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Sequence

import torch

from rebase.backends import hf_cascade
from rebase.backends.hf_cache import PrefixKVCache
from rebase.backends.hf_decode import BatchDecoder, Group
from rebase.backends.hf_pool import SlabPool
from rebase.backends.hf_stream import stream
from rebase.backends.hf_sampling import DEFAULT_SEED, as_int64
from rebase.backends.loading import count_params, load_causal_lm, load_tokenizer
from rebase.model_config import TransformersModel
from rebase.errors import BadInput, RunFailure
from rebase.flops import FlopSpec
from rebase.types import Completion, GenerationRequest


Refill = Callable[[list[tuple[int, list[Completion]]]], Sequence[GenerationRequest]]


class TransformersGenerator:
    """rebase.generator.Generator over a Hugging Face causal LM (local dir, hub id or GGUF file)."""

    supports_refill = True  # generate(..., refill=...) admits new requests into a running decode

    def __init__(self, cfg: TransformersModel):
        self.cfg = cfg
        self.name = cfg.name
        self.tokenizer = load_tokenizer(cfg.path, cfg.gguf_file, cfg.trust_remote_code)
        self.model = load_causal_lm(cfg)
        self.device = next(self.model.parameters()).device
        cfg_all = self.model.config
        self.text_config = cfg_all.get_text_config() if hasattr(cfg_all, "get_text_config") else cfg_all
        self.flop_spec = FlopSpec.from_hf_config(self.text_config, n_params=cfg.params or count_params(self.model))
        self.eos_ids = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else next(iter(self.eos_ids), 0))
        self.prefix_cache = PrefixKVCache(cfg.kv_cache_bytes) if cfg.prefix_reuse else None
        # CPU: reuse slab buffers across calls (fresh ones page-fault, hf_pool.py); CUDA caches its own
        self.slab_pool = SlabPool() if self.device.type == "cpu" else None
        self.cascade = cfg.cascade_attention and hf_cascade.supports(self.model)
        if self.cascade:
            hf_cascade.enable(self.model)

    def _eos_ids(self) -> set[int]:
        """EOS ids from the generation config (may be a list, e.g. chat end markers) and tokenizer."""
        ids: set[int] = set()
        gen_cfg = getattr(self.model, "generation_config", None)
        for src in (
            getattr(gen_cfg, "eos_token_id", None),
            getattr(self.text_config, "eos_token_id", None),
            self.tokenizer.eos_token_id,
        ):
            if src is None:
                continue
            ids.update(int(x) for x in (src if isinstance(src, (list, tuple)) else [src]))
        return ids

    # -- prompts -------------------------------------------------------------------------------
    def render_chat(self, user: str, system: Optional[str] = None) -> Optional[str]:
        if self.cfg.chat_template is False or not getattr(self.tokenizer, "chat_template", None):
            return None
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        """Tokenizer-default special tokens, but never a second BOS when the text (a rendered chat
        prompt) already starts with one."""
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        return ids

    def _prompt_ids(self, i: int, req: GenerationRequest) -> tuple[list[int], int]:
        """The prompt ids and the new-token cap, clamped to the model's positions (a deep search path
        then ends with "length" instead of failing the run)."""
        ids = list(req.prompt_token_ids) if req.prompt_token_ids is not None else self.encode(req.prompt)
        if not ids:
            raise BadInput(f"generation request {i}: empty prompt (no tokens to condition on)")
        limit = getattr(self.text_config, "max_position_embeddings", None) or getattr(
            self.text_config, "n_positions", None
        )
        if limit and len(ids) >= limit:
            raise RunFailure(f"{self.name}: request {i} has {len(ids)} prompt tokens; the model has {limit} positions")
        return ids, min(req.max_tokens, limit - len(ids)) if limit else req.max_tokens

    # -- generation ----------------------------------------------------------------------------
    def _groups(self, requests: list[GenerationRequest], offset: int = 0) -> list[Group]:
        """One group per request, or several when its samples alone exceed batch_tokens."""
        groups: list[Group] = []
        for i, req in enumerate(requests, start=offset):
            prompt, max_tokens = self._prompt_ids(i, req)
            prefix = self.prefix_cache.lookup(prompt) if self.prefix_cache is not None else None
            per = max(1, self.cfg.batch_tokens // (len(prompt) + max_tokens))
            seed = DEFAULT_SEED if req.seed is None else as_int64(int(req.seed))
            for start in range(0, req.n, per):
                groups.append(
                    Group(
                        i,
                        prompt,
                        list(range(start, min(req.n, start + per))),
                        max_tokens,
                        float(req.temperature),
                        float(req.top_p),
                        seed,
                        tuple(req.stop),
                        prefix,
                    )
                )
        return groups

    def _batches(self, groups: list[Group]) -> list[list[Group]]:
        """Pack groups (sorted by prompt length, so padding is small) under batch_tokens."""
        batches: list[list[Group]] = []
        used = 0
        for g in sorted(groups, key=lambda g: (len(g.prompt), g.request)):
            if batches and used + g.cost <= self.cfg.batch_tokens:
                batches[-1].append(g)
                used += g.cost
            else:
                batches.append([g])
                used = g.cost
        return batches

    def generate(self, requests: list[GenerationRequest], refill: Optional[Refill] = None) -> list[list[Completion]]:
        """Completions per request. Continuous batching (hf_stream.py): requests wait in a queue
        bounded by batch_tokens and take the slots of finished rows. `refill(done)` is called with
        (request index, completions) of every request whose samples are all done and may return new
        requests, which join the same decode (their indices continue after the existing ones); the
        result then covers them too."""
        reqs = list(requests)
        results: list[list[Optional[Completion]]] = [[None] * r.n for r in reqs]
        left = [r.n for r in reqs]
        decoder = BatchDecoder(self.model, self.tokenizer, self.eos_ids, self.pad_id, self.prefix_cache, self.slab_pool)
        decoder.cascade = self.cascade

        def on_done(done: list[tuple[int, int, Completion]]) -> list[Group]:
            complete = []
            for req, sample, comp in done:
                results[req][sample] = comp
                left[req] -= 1
                if left[req] == 0:
                    complete.append(req)
            if refill is None or not complete:
                return []
            new = list(refill([(i, results[i]) for i in complete]))  # type: ignore[misc]
            base = len(reqs)
            reqs.extend(new)
            results.extend([None] * r.n for r in new)
            left.extend(r.n for r in new)
            return self._groups(new, offset=base)

        # longest prompts first: later arrivals are shorter and fit the running slab's width
        queue = sorted(self._groups(reqs), key=lambda g: (-len(g.prompt), g.request))
        with torch.inference_mode():
            try:
                stream(decoder, queue, self.cfg.batch_tokens, on_done)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if refill is not None:
                    raise RunFailure(
                        f"{self.name}: out of GPU memory in a continuous batch; "
                        f"lower batch_tokens (now {self.cfg.batch_tokens})"
                    ) from None
                results = [[None] * r.n for r in reqs]
                for batch in self._batches(self._groups(reqs)):  # whole batches, halved on OOM
                    for req, sample, done in self._run(decoder, batch):
                        results[req][sample] = done
            finally:
                if self.slab_pool is not None:
                    self.slab_pool.reset()  # no slab of this call is read after it
        return results  # type: ignore[return-value]

    def _run(self, decoder: BatchDecoder, batch: list[Group]) -> list[tuple[int, int, Completion]]:
        """Run a batch; on CUDA out-of-memory, halve it (by groups, then by samples) and retry."""
        try:
            return decoder.run(batch)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
        if len(batch) > 1:
            half = len(batch) // 2
            return self._run(decoder, batch[:half]) + self._run(decoder, batch[half:])
        g = batch[0]
        if len(g.samples) > 1:
            half = len(g.samples) // 2
            parts = [replace(g, samples=s) for s in (g.samples[:half], g.samples[half:])]
            return self._run(decoder, parts[:1]) + self._run(decoder, parts[1:])
        raise RunFailure(
            f"{self.name}: out of GPU memory for one sample of {len(g.prompt)} prompt tokens (request {g.request})"
        )

    def close(self) -> None:
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        if self.slab_pool is not None:
            self.slab_pool.clear()
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
