"""`python -m scripts.train_demo`: retrain the demo world (four arith policies and a step PRM) from scratch.

Why: the embedded demo ships small trained models under rebase/demo/models/; this command rebuilds
them deterministically (same seed, same machine and thread count -> same weights), so the weights
are reproducible rather than opaque artefacts. Each model directory gets safetensors weights, its
tokenizer (character level for the policies, number level for the PRM), its config, train_info.json
and a MODEL_CARD.md with measured accuracy.

    python -m scripts.train_demo [--out DIR] [--steps-scale F] [--only arith-s,arith-prm] [--eval-size 500]
    python -m scripts.train_demo --steps-scale 0.01 --out /tmp/demo   # a quick smoke run

Run from the repository root (training is not part of the installed package). Everything runs
on one CPU thread; the full run takes about 3 hours on a 2-core machine (policies 6, 10, 17 and 37
minutes, the PRM 108 beside other jobs: sampling 7, training 92 in three stages, its ranking check 7).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from rebase.demo import MODELS_DIR
from scripts.train_demo.artifacts import heldout_problems, save_model
from scripts.train_demo.train_policy import PolicySpec

SAMPLING_PROBLEMS = 200  # held-out problems for the k-sample metrics in the cards
DEFAULT_OUT = MODELS_DIR

# Sizes span ~21x in parameters (64k, 128k, 276k, 1.36M; greedy accuracy 22%, 41%, 57%, 64%) so that
# search on a smaller model can be compared with decoding on a larger one at equal FLOPs. arith-xl is
# ~5x arith-l, trained for fewer steps: a larger model that is not far more accurate, as in the
# paper's Llemma 7B / 34B pair, is what lets search on the smaller one win at equal compute. Steps fit
# the CPU budget: smaller models get fewer (they are cheaper per step but would need many more steps
# to catch up anyway).
POLICIES = (
    PolicySpec("arith-s", hidden=48, layers=2, heads=4, steps=3000, lr=3e-3, seed=11),
    PolicySpec("arith-m", hidden=56, layers=3, heads=4, steps=2500, lr=3e-3, seed=12),
    PolicySpec("arith-l", hidden=72, layers=4, heads=4, steps=2500, lr=2e-3, seed=13),
    PolicySpec("arith-xl", hidden=144, layers=5, heads=4, steps=2000, lr=2e-3, seed=14),
)


def _log_to(path: Optional[Path]):
    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        if path is not None:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    return log


def scaled(spec: PolicySpec, scale: float) -> PolicySpec:
    from dataclasses import replace

    steps = max(2, round(spec.steps * scale))
    return replace(spec, steps=steps, warmup=min(spec.warmup, max(1, steps // 10)))


def policy_card(spec: PolicySpec, info: dict) -> str:
    g = info["greedy"]
    levels = " | ".join(f"L{lv}: {acc:.1%}" for lv, acc in g["per_level"].items())
    return f"""# {spec.name}: demo arith policy

A Llama-architecture causal LM trained from scratch by `python -m scripts.train_demo` (scripts/train_demo/train.py)
to solve the `arith` dataset's multi-step arithmetic problems step by step.

- Architecture: LlamaForCausalLM, hidden {spec.hidden}, {spec.layers} layers, {spec.heads} heads,
  MLP {spec.intermediate or 3 * spec.hidden}, tied embeddings, character-level tokenizer ({info["vocab"]} tokens).
- Parameters: {info["params"]:,} (fp32 safetensors).
- Data: reference solutions of training problems from a seed stream disjoint from evaluation
  (rebase/tasks/arith.py `training_problems`), levels 1-5, one level per batch.
- Format: plain prompt "Question: {{question}}\\nAnswer:\\n", one step per line, last line
  "The answer is N", then </s>. No chat template. Loss on solution tokens only.
- Training: AdamW (peak lr {spec.lr}, betas 0.9/0.95, weight decay {spec.weight_decay}), batch {spec.batch},
  {spec.steps} steps, {spec.warmup} warmup then cosine to lr/10, seed {spec.seed}, one CPU thread:
  {info["train_s"]} s wall, {info.get("cpu_s", "?")} s CPU on the machine that produced these weights
  (final loss {info["final_loss"]}).
- Greedy accuracy on {g["n"]} held-out problems (arith seed 0, levels 1-5 in turn):
  **{g["overall"]:.1%}** overall; {levels}.
""" + _sampling_lines(info.get("sampling"))


def _sampling_lines(m: Optional[dict]) -> str:
    if not m:
        return ""
    return (
        f"- Sampling ({m['k']} samples per problem at temperature {m['temperature']}, first {m['n']} "
        f"held-out problems): per-sample accuracy {m['sample_acc']:.1%}, pass@{m['k']} "
        f"{m['pass_at_k']:.1%}, majority@{m['k']} {m['majority_at_k']:.1%}; "
        f"{m['slip_share_of_errors']:.0%} of wrong samples first go wrong on an arithmetic slip "
        f"in a correctly copied line.\n"
    )


def measure(tok, out: Path, only: set[str], eval_size: int, log) -> dict:
    """Re-measure saved policies (greedy and sampling) and rewrite their cards; weights untouched."""
    from scripts.train_demo.sampling import load
    from scripts.train_demo.train_policy import greedy_accuracy, sampling_metrics

    heldout = heldout_problems(eval_size)
    results = {}
    for spec in POLICIES:
        d = out / spec.name
        if (only and spec.name not in only) or not (d / "train_info.json").exists():
            continue
        info = json.loads((d / "train_info.json").read_text(encoding="utf-8"))
        gen = load(d)
        info["greedy"] = greedy_accuracy(gen, heldout)
        info["sampling"] = sampling_metrics(gen, heldout[:SAMPLING_PROBLEMS])
        log(f"{spec.name}: greedy {info['greedy']} sampling {info['sampling']}")
        (d / "train_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (d / "MODEL_CARD.md").write_text(policy_card(PolicySpec(**info["spec"]), info), encoding="utf-8")
        results[spec.name] = info
    return results


def train_policies(tok, out: Path, scale: float, only: set[str], eval_size: int, log, eval_every: int = 0) -> dict:
    import tempfile

    from scripts.train_demo.sampling import load
    from scripts.train_demo.train_policy import greedy_accuracy, sampling_metrics, train_policy

    heldout = heldout_problems(eval_size)
    results = {}
    for spec in POLICIES:
        if only and spec.name not in only:
            continue
        spec = scaled(spec, scale)

        def probe(model, step, name=spec.name):
            with tempfile.TemporaryDirectory() as d:  # measured as saved, through the backend
                model.save_pretrained(d)
                tok.save_pretrained(d)
                log(f"{name} step {step}: greedy {greedy_accuracy(Path(d), heldout[:200])}")

        model, info = train_policy(spec, tok, log=log, eval_every=eval_every, eval_fn=probe)
        info["vocab"] = len(tok)
        save_model(model, tok, out / spec.name, info, "")  # measured from what is saved
        gen = load(out / spec.name)
        info["greedy"] = greedy_accuracy(gen, heldout)
        info["sampling"] = sampling_metrics(gen, heldout[:SAMPLING_PROBLEMS])
        log(f"{spec.name}: sampling {info['sampling']}")
        log(f"{spec.name}: {info['params']} params, {info['steps']} steps, {info['train_s']}s, greedy {info['greedy']}")
        save_model(model, tok, out / spec.name, info, policy_card(spec, info))
        results[spec.name] = info
    return results


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.train_demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: rebase/demo/models)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every model's step count")
    ap.add_argument("--only", default="", help="comma-separated model names to (re)train")
    ap.add_argument("--eval-size", type=int, default=500, help="held-out problems for the model cards")
    ap.add_argument("--eval-every", type=int, default=0, help="log greedy accuracy every N steps")
    ap.add_argument(
        "--measure", action="store_true", help="only re-measure the saved policies in --out and rewrite their cards"
    )
    ap.add_argument("--log", default=None, help="also append the log to this file")
    args = ap.parse_args(argv)  # a malformed argument: argparse's one-line usage error, exit 2
    known = [p.name for p in POLICIES] + ["arith-prm"]
    unknown = sorted({s for s in args.only.split(",") if s} - set(known))
    problem = (
        "--steps-scale must be > 0"
        if args.steps_scale <= 0
        else "--eval-size must be >= 1"
        if args.eval_size < 1
        else "--eval-every must be >= 0"
        if args.eval_every < 0
        else f"--only: unknown model '{unknown[0]}'; available: {', '.join(known)}"
        if unknown
        else f"--out {args.out}: is a file, not a directory"
        if Path(args.out).is_file()
        else None
    )
    if problem:
        print(f"python -m scripts.train_demo: error: {problem}", file=sys.stderr)
        return 2

    import torch

    from scripts.train_demo.tokenizer import build_tokenizer

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    only = {s for s in args.only.split(",") if s}
    log = _log_to(Path(args.log) if args.log else None)
    tok = build_tokenizer()
    t0 = time.time()
    if args.measure:
        results = measure(tok, out, only, args.eval_size, log)
        print(json.dumps({"out": str(out), "models": {k: v["greedy"] for k, v in results.items()}}))
        return 0
    results = train_policies(tok, out, args.steps_scale, only, args.eval_size, log, args.eval_every)
    if not only or "arith-prm" in only:
        from scripts.train_demo.train_prm import train_and_save_prm

        results["arith-prm"] = train_and_save_prm(out, args.steps_scale, args.eval_size, log)
    log(f"done in {time.time() - t0:.0f}s")
    print(json.dumps({"out": str(out), "models": {k: v.get("greedy", v.get("auc")) for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
