"""CPU benchmark: does tree search (REBASE) cost more per generated token than N-sample sampling?

Run: `make bench` (= .venv/bin/python bench/cpu.py), ~10-15 minutes on 2 cores. Options:
`--repeats K` (rounds of the side-by-side comparison), `--problems P`, `--budget N`, `--quick`
(smaller model and caps, a minute or two: checks the script, not the targets).

What it builds (bench/common.py): a ~88M-parameter random Llama (hidden 768, 12 layers, 12 heads of
64, intermediate 2048) over a local ~4k-token byte-level BPE, with its "\\n" and EOS logits biased
so a step averages ~24 tokens and EOS comes ~1 in 300 tokens; a tiny random step_tag PRM; the
first P GSM8K test questions in the default instruction prompt. Everything runs through the real
strategies (strategies.rebase.Rebase, strategies.sampling.WeightedMajority) and the real
transformers backend, one torch thread.

What it measures, variants alternated round by round and medians taken (the machine is shared):
- rebase_vs_sampling_per_token: REBASE wall time per generated token (PRM included) over
  weighted-majority sampling's (PRM included), equal budget N, all problems in one batch;
- prefix_reuse_speedup: REBASE wall time without prefix KV reuse over with it;
- batching_speedup: REBASE over the problems one by one over all in one batch;
- flops_policy_vs_measured: the ledger's `policy` view over torch FlopCounterMode's count of the
  policy's generate calls in a (smaller) REBASE run.
Progress goes to stderr; the last stdout line is one JSON object with the ratios, the raw
timings and the machine.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench.common import alternate, build_world, calibrate, load_problems, log, median, run_strategy  # noqa: E402

FULL = dict(hidden=768, layers=12, heads=12, kv_heads=12, intermediate=2048)
QUICK = dict(hidden=256, layers=4, heads=4, kv_heads=4, intermediate=512)


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import torch
    import transformers

    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from eval.prompts import PromptFormat
    from rebase.backends.hf import TransformersGenerator
    from rebase.config import ModelConfig, PRMConfig, SamplingConfig
    from reward_models.step_tag import StepTagPRM
    from strategies.base import SearchContext
    from strategies.rebase import Rebase
    from strategies.sampling import WeightedMajority

    shape = QUICK if args.quick else FULL
    sampling = SamplingConfig(temperature=1.0, max_step_tokens=32, max_tokens=128, max_depth=6)
    step_rate, eos_rate = 1 / 20, 1 / 250
    tmp = Path(tempfile.mkdtemp(prefix="rebase-bench-"))
    try:
        t0 = time.perf_counter()
        policy_dir, prm_dir = build_world(tmp, "llama", **shape)
        gen = TransformersGenerator(ModelConfig(name="policy", path=str(policy_dir), device="cpu"))
        prm = StepTagPRM(PRMConfig(family="step_tag", name="prm", path=str(prm_dir), device="cpu",
                                   tag=" ки", good="+", bad="-"))
        problems = load_problems(args.problems)
        prompts = PromptFormat.from_config("gsm8k")
        texts = [prompts.render(p, gen) for p in problems]
        nl, eos = gen.encode("\n")[-1], gen.tokenizer.eos_token_id
        bias = calibrate(gen, texts, {nl: step_rate, eos: eos_rate})
        spec = gen.flop_spec
        log(f"world built in {time.perf_counter() - t0:.1f}s: policy {spec.n_params / 1e6:.1f}M params "
            f"(vocab {spec.vocab}), bias '\\n' {bias[nl]:+.2f}, EOS {bias[eos]:+.2f}")
        ctx = SearchContext(generator=gen, prm=prm, prompts=prompts, sampling=sampling, seed=0, dataset="gsm8k")
        no_reuse = copy.copy(gen)
        no_reuse.prefix_cache = None  # same weights, no KV store: every round prefills whole paths
        ctx_nr = copy.copy(ctx)
        ctx_nr.generator = no_reuse
        rebase, wm = Rebase(balance_temperature=0.1), WeightedMajority()
        n = args.budget

        log(f"warm-up, then {args.repeats} alternating rounds: {len(problems)} problems, N={n}")
        run_strategy(rebase, problems[:2], 4, ctx)
        runs = alternate({
            "rebase": lambda: run_strategy(rebase, problems, n, ctx),
            "sampling": lambda: run_strategy(wm, problems, n, ctx),
            "rebase_no_reuse": lambda: run_strategy(rebase, problems, n, ctx_nr),
            "rebase_one_by_one": lambda: run_strategy(rebase, problems, n, ctx, one_by_one=True),
        }, args.repeats)

        log("FLOP check: REBASE on 2 problems, N=4, under FlopCounterMode")
        fl = run_strategy(rebase, problems[:2], 4, ctx, meter=True)
        ratios_by_round = {
            "rebase_vs_sampling_per_token": [a.per_token_ms / b.per_token_ms for a, b in zip(runs["rebase"], runs["sampling"])],
            "prefix_reuse_speedup": [b.wall_s / a.wall_s for a, b in zip(runs["rebase"], runs["rebase_no_reuse"])],
            "batching_speedup": [b.wall_s / a.wall_s for a, b in zip(runs["rebase"], runs["rebase_one_by_one"])],
        }
        reb = runs["rebase"]
        result = {k: round(median(v), 3) for k, v in ratios_by_round.items()}
        result["flops_policy_vs_measured"] = round(fl.flops_policy / fl.measured_flops, 4)
        result.update({
            "rebase_policy_share": round(median([s.policy_s / s.wall_s for s in reb]), 3),
            "rebase_policy_only_vs_sampling_per_token": round(median(
                [(a.policy_s / a.generated) / (b.policy_s / b.generated) for a, b in zip(reb, runs["sampling"])]), 3),
            "mean_step_tokens": round(median([s.generated / s.nodes for s in reb]), 1),
            "ratios_by_round": {k: [round(x, 3) for x in v] for k, v in ratios_by_round.items()},
            "runs": {k: [asdict(s) for s in v] for k, v in runs.items()},
            "flop_run": asdict(fl),
            "setup": {"shape": shape, "params": spec.n_params, "vocab": spec.vocab, "problems": len(problems),
                      "budget": n, "sampling": sampling.model_dump(), "step_rate": step_rate, "eos_rate": eos_rate,
                      "repeats": args.repeats, "quick": args.quick},
            "machine": machine(),
        })
        log(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
