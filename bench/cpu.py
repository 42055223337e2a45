"""CPU benchmark: does tree search (REBASE) cost more per generated token than N-sample sampling?

Run: `make bench` (= .venv/bin/python bench/cpu.py), ~12 minutes on 2 cores per round. Options:
`--repeats K` (rounds of the side-by-side comparison), `--problems P` (16), `--small S` (8),
`--budget N`, `--quick` (smaller model and caps, a minute or two: checks the script, not the
targets).

What it builds (bench/common.py): a ~88M-parameter random Llama (hidden 768, 12 layers, 12 heads of
64, intermediate 2048) over a local ~4k-token byte-level BPE, with its "\\n" and EOS logits biased
so a step averages ~24 tokens and EOS comes ~1 in 300 tokens; a tiny random step_tag PRM; the
first P GSM8K test questions in the default instruction prompt. Everything runs through the real
strategies (strategies.rebase.Rebase, strategies.sampling.WeightedMajority) and the real
transformers backend, one torch thread.

What it measures, variants alternated round by round and medians taken (the machine is shared):
- rebase_vs_sampling_per_token: REBASE wall time per generated token (PRM included) over
  weighted-majority sampling's (PRM included), equal budget N, all P problems in one search call.
  P = 16 fills the batch as a sweep of a real dataset does: sampling asks for 256 rows of prompt
  + 128 tokens, more than batch_tokens holds (~200), and REBASE's 256 rows of prompt + path + a
  32-token step about fit; `rebase_vs_sampling_per_token_small` is the same on the first S problems, where
  REBASE's rounds hold ~60 rows a step on average and sampling's 94: each REBASE round lasts
  until its longest step, and a decode step's fixed cost (reading every weight) is then shared
  by fewer tokens;
- prm_tokens_rebase_vs_sampling: PRM tokens actually run (read minus served from cached KV) per
  generated policy token, REBASE over sampling;
- prefix_reuse_speedup (on S problems, as the two below): REBASE wall time without KV reuse
  (policy prefix store and PRM store off) over with it;
- batching_speedup: REBASE over the problems one by one over all in one batch;
- pipeline_speedup: REBASE in lock-step rounds (the default) over pipelined REBASE (`pipeline:
  true`: a problem whose round is done starts its next inside the running decode);
- flops_policy_vs_measured / flops_total_vs_measured: the ledger's `policy` / `total` view over
  torch FlopCounterMode's count of the policy's generate calls / of those and the PRM's score
  calls, in a (smaller) REBASE run.
Progress goes to stderr; the last stdout line is one JSON object with the ratios, the raw
timings and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench.common import build_world, compare, load_problems, log, make_context  # noqa: E402

FULL = dict(hidden=768, layers=12, heads=12, kv_heads=12, intermediate=2048)
QUICK = dict(hidden=256, layers=4, heads=4, kv_heads=4, intermediate=512)


def machine() -> dict:
    model = (
        next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    import torch
    import transformers

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--small", type=int, default=8)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from rebase.config import SamplingConfig

    shape = QUICK if args.quick else FULL
    sampling = SamplingConfig(temperature=1.0, max_step_tokens=32, max_tokens=128, max_depth=6)
    step_rate, eos_rate = 1 / 20, 1 / 250
    tmp = Path(tempfile.mkdtemp(prefix="rebase-bench-"))
    try:
        t0 = time.perf_counter()
        policy_dir, prm_dir = build_world(tmp, "llama", **shape)
        problems = load_problems(args.problems)
        ctx, ctx_nr, bias = make_context(policy_dir, prm_dir, problems, sampling, "cpu", step_rate, eos_rate)
        spec = ctx.generator.flop_spec
        log(
            f"world built in {time.perf_counter() - t0:.1f}s: policy {spec.n_params / 1e6:.1f}M params "
            f"(vocab {spec.vocab}), stop biases {bias}"
        )
        result = compare(ctx, ctx_nr, problems, args.budget, args.repeats, min(args.small, len(problems)))
        result["setup"] = {
            "shape": shape,
            "params": spec.n_params,
            "vocab": spec.vocab,
            "problems": len(problems),
            "small": min(args.small, len(problems)),
            "budget": args.budget,
            "sampling": sampling.model_dump(),
            "step_rate": step_rate,
            "eos_rate": eos_rate,
            "stop_biases": bias,
            "repeats": args.repeats,
            "quick": args.quick,
        }
        result["machine"] = machine()
        log(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
