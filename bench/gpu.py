"""GPU benchmark: bench/cpu.py's four ratios on a CUDA GPU in bf16 with a 1.5B-parameter random
Qwen2, plus decode throughput of our backend next to plain `model.generate`.

Run: `bench/gpu.sh` (sets PYTHONPATH to the repo; needs torch, transformers, and the packages the
rebase import needs: pydantic, pyyaml). `bench/gpu.sh --smoke` runs tiny shapes on the CPU in a
minute, to check the script where there is no GPU. Target: under 8 minutes on one H100.

Shape (Qwen2.5-1.5B's): hidden 1536, 28 layers, 12 heads, 2 KV heads, intermediate 8960, vocab
151,936 rows over the local ~4k-token tokenizer (rows past the tokenizer get a -1e4 logit bias, so
every sampled id decodes; the head still computes all 151,936 logits, as the real model's does).
Built at random directly on the GPU, saved to a temporary folder, loaded by the real backend.

Throughput: one prompt, `--gen-tokens` new tokens per row (EOS masked, no stop strings, so every
row runs the full length), batch 1 and 64, ours (rebase/backends/hf.py) and `model.generate`
(do_sample, default dynamic cache) alternated, medians of `--repeats`. For reference, plain generate
with this shape on an H100 measured ~14 tok/s at batch 1 and ~1,070 tok/s at batch 64 (dynamic
cache), 88 / 7,400 tok/s with a static cache and compiled decoding.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import build_world, compare, load_problems, log, median  # noqa: E402

GPU = dict(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960)
SMOKE = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128)
VOCAB = 151936


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def throughput(gen, text: str, batch: int, tokens: int, repeats: int, device: str) -> dict:
    """Tokens/s of our generate and of model.generate at one batch size, alternated."""
    import torch

    from rebase.types import GenerationRequest

    head = gen.model.get_output_embeddings()
    eos = gen.tokenizer.eos_token_id
    saved = float(head.bias[eos])
    head.bias.data[eos] = -1e4  # every row runs the full length in both loops
    ids = torch.tensor([gen.encode(text)] * batch, device=gen.device)
    ours, plain = [], []
    try:
        for r in range(repeats + 1):  # round 0 warms up both
            t0 = time.perf_counter()
            out = gen.generate(
                [
                    GenerationRequest(
                        prompt_token_ids=ids[0].tolist(), n=batch, max_tokens=tokens, temperature=1.0, seed=r
                    )
                ]
            )
            sync(device)
            t1 = time.perf_counter()
            with torch.inference_mode():
                g = gen.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    temperature=1.0,
                    top_k=None,
                    top_p=None,
                    max_new_tokens=tokens,
                    min_new_tokens=tokens,
                    pad_token_id=gen.pad_id,
                )
            sync(device)
            t2 = time.perf_counter()
            n_ours = sum(c.generated_tokens for c in out[0])
            n_plain = (g.shape[1] - ids.shape[1]) * batch
            if r:
                ours.append(n_ours / (t1 - t0))
                plain.append(n_plain / (t2 - t1))
                log(f"  batch {batch} [{r}/{repeats}]: ours {ours[-1]:.1f} tok/s, generate {plain[-1]:.1f} tok/s")
    finally:
        head.bias.data[eos] = saved
    return {
        "ours_tok_s": round(median(ours), 1),
        "generate_tok_s": round(median(plain), 1),
        "ours_over_generate": round(median(ours) / median(plain), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=128)
    args = ap.parse_args()

    import torch
    import transformers

    from rebase.config import SamplingConfig

    if args.smoke:
        torch.set_num_threads(1)
        device, dtype, shape = "cpu", torch.float32, SMOKE
        problems, budget, batches, gen_tokens = load_problems(2), 4, (1, 4), 16
        sampling = SamplingConfig(temperature=1.0, max_step_tokens=8, max_tokens=32, max_depth=4)
    else:
        if not torch.cuda.is_available():
            sys.exit("bench/gpu.py: no CUDA device (use --smoke to check the script on a CPU)")
        device, dtype, shape = "cuda", torch.bfloat16, GPU
        problems, budget, batches, gen_tokens = load_problems(8), 16, (1, 64), args.gen_tokens
        sampling = SamplingConfig(temperature=1.0, max_step_tokens=32, max_tokens=128, max_depth=6)
    from bench.common import make_context

    tmp = Path(tempfile.mkdtemp(prefix="rebase-gpu-bench-"))
    try:
        t0 = time.perf_counter()
        policy_dir, prm_dir = build_world(tmp, "qwen2", **shape, vocab=VOCAB, device=device, dtype=dtype)
        ctx, ctx_nr, bias = make_context(policy_dir, prm_dir, problems, sampling, device, 1 / 20, 1 / 250)
        spec = ctx.generator.flop_spec
        log(
            f"world built in {time.perf_counter() - t0:.1f}s: policy {spec.n_params / 1e9:.2f}B params, "
            f"stop biases {bias}"
        )
        result = compare(ctx, ctx_nr, problems, budget, args.repeats)
        text = ctx.prompts.render(problems[0], ctx.generator)
        result["throughput"] = {
            f"batch_{b}": throughput(ctx.generator, text, b, gen_tokens, args.repeats, device) for b in batches
        }
        result["reference_h100_generate_tok_s"] = {
            "dynamic": {"batch_1": 14, "batch_64": 1070},
            "static_compiled": {"batch_1": 88, "batch_64": 7400},
        }
        result["setup"] = {
            "shape": shape,
            "vocab": VOCAB,
            "params": spec.n_params,
            "dtype": str(dtype),
            "problems": len(problems),
            "budget": budget,
            "sampling": sampling.model_dump(),
            "gen_tokens": gen_tokens,
            "smoke": args.smoke,
            "stop_biases": bias,
        }
        result["machine"] = {
            "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d"),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        log(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
        log(json.dumps(result["throughput"]))
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
