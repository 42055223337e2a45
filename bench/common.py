"""Shared pieces of the benchmarks (bench/cpu.py, bench/gpu.py): a random policy and PRM built
locally, a step-rate calibration, timed strategy runs and a FLOP meter.

Why: the benchmarks must run with no model hub and no internet, yet the search must behave like a
real one: steps that end at the "\\n" delimiter after a realistic number of tokens, solutions that
sometimes end with EOS, a PRM whose scores differ between nodes. So:
- the tokenizer is tests/tiny_models.py's byte-level BPE (trained on GSM8K text, ~4k tokens);
- the policy is a seeded random Llama / Qwen2 saved to a temporary folder and loaded by the real
  transformers backend (rebase/backends/hf.py);
- after loading, its output head gets a bias vector (`set_stop_bias`): the "\\n" and EOS logits are
  raised by amounts solved for (`calibrate`) so that, on the prompts' own hidden states, P("\\n")
  and P(EOS) per token hit the wanted rates (e.g. 1/24 and 1/300); ids the tokenizer does not have
  (a 151k-row Qwen2 head over a 4k tokenizer) get -1e4, so every sample decodes;
- the PRM is a tiny random step_tag model (reward_models/step_tag.py) over the same tokenizer.

Nothing runs at import. Used as `from bench.common import ...` with the repo root on sys.path.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def build_world(
    root: Path,
    arch: str,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: Optional[int] = None,
    tok_vocab: int = 4096,
    device: str = "cpu",
    dtype: Any = None,
) -> tuple[Path, Path]:
    """Tokenizer + random policy + tiny PRM saved under `root`; returns (policy dir, PRM dir).
    `vocab` pads the policy's embedding beyond the tokenizer (the GPU shape's 151k rows)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from tiny_models import build_model, build_tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    build_tokenizer(root / "tok", DATA, vocab_size=tok_vocab)
    build_model(
        root / "prm", root / "tok", "llama", hidden=128, layers=2, heads=2, kv_heads=1, intermediate=256, seed=7
    )
    tok = AutoTokenizer.from_pretrained(root / "tok")
    Cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    cfg = Cfg(
        vocab_size=vocab or len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device(device):  # a 1.5B model initialises in seconds on a GPU, minutes on a CPU
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.float32)
    with torch.no_grad():  # larger logits than the default init, so sampled text is not uniform noise
        model.get_input_embeddings().weight.mul_(2)
    model.save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")
    return root / "policy", root / "prm"


def set_stop_bias(model: Any, n_tok: int, boosts: dict[int, float]) -> None:
    """Replace the output head by a biased Linear sharing its weight: +boost on the given ids,
    -1e4 on ids >= n_tok. FlopCounterMode prices addmm like mm, so the FLOP check is unaffected."""
    import torch

    head = model.get_output_embeddings()
    vocab = head.weight.shape[0]
    bias = torch.zeros(vocab, dtype=head.weight.dtype, device=head.weight.device)
    bias[n_tok:] = -1e4
    for i, b in boosts.items():
        bias[i] = b
    new = torch.nn.Linear(head.weight.shape[1], vocab, bias=True, device="meta")
    new.weight = head.weight
    new.bias = torch.nn.Parameter(bias, requires_grad=False)
    model.set_output_embeddings(new)


def calibrate(gen: Any, prompts: list[str], rates: dict[int, float]) -> dict[int, float]:
    """Bias per id such that its mean softmax probability over the prompts' positions is the wanted
    rate (bisection on each id, the others at their solved bias)."""
    import torch

    set_stop_bias(gen.model, len(gen.tokenizer), {})
    with torch.inference_mode():
        hs = []
        for p in prompts:
            ids = torch.tensor([gen.encode(p)], device=gen.device)
            out = gen.model.model(input_ids=ids)
            hs.append(out.last_hidden_state[0])
        logits = gen.model.get_output_embeddings()(torch.cat(hs)).float()
    bias = {i: 0.0 for i in rates}
    for _ in range(3):  # a few sweeps: each id's solve sees the others' current bias
        for i, want in rates.items():
            lo, hi = -20.0, 40.0
            for _ in range(40):
                mid = (lo + hi) / 2
                z = logits.clone()
                for j, b in bias.items():
                    z[:, j] += mid if j == i else b
                p = torch.softmax(z, dim=-1)[:, i].mean().item()
                lo, hi = (mid, hi) if p < want else (lo, mid)
            bias[i] = (lo + hi) / 2
    set_stop_bias(gen.model, len(gen.tokenizer), bias)
    return bias


def load_problems(n: int) -> list[Any]:
    from rebase.types import Problem

    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[:n]]
    return [
        Problem(id=str(i), question=r["question"], gold=r["answer"].split("####")[-1].strip(), dataset="gsm8k")
        for i, r in enumerate(rows)
    ]


class TimedGenerator:
    """Forwards to a generator, adding up the wall time of its generate calls and, with `meter`,
    the FLOPs torch's counter measures inside them. A pipelined search scores inside generate
    (its `refill`); TimedPRM reports that share, which is taken out of the policy's figures."""

    def __init__(self, inner: Any, meter: bool = False):
        self.inner = inner
        self.meter = meter
        self.seconds = 0.0
        self.measured_flops = 0
        self.calls = 0
        self.counter: Any = None  # the FlopCounterMode open during a metered generate call
        self.active = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, requests: list[Any], refill: Any = None) -> list[Any]:
        t0 = time.perf_counter()
        self.calls += 1
        kw = {"refill": refill} if refill is not None else {}
        self.active = True
        try:
            if not self.meter:
                out = self.inner.generate(requests, **kw)
            else:
                from rebase.flop_count import flop_counter

                with flop_counter() as fc:
                    self.counter = fc
                    out = self.inner.generate(requests, **kw)
                self.measured_flops += fc.get_total_flops()
        finally:
            self.active, self.counter = False, None
        self.seconds += time.perf_counter() - t0
        return out


class TimedPRM:
    """Forwards to a PRM, adding up the wall time of its score calls and, with `meter`, the FLOPs
    torch's counter measures inside them (read off the generator's open counter when the call
    happens inside generate, so nothing is counted twice)."""

    def __init__(self, inner: Any, gen: TimedGenerator, meter: bool = False):
        self.inner = inner
        self.gen = gen
        self.meter = meter
        self.seconds = 0.0
        self.inside_s = 0.0  # of which inside a generate call
        self.measured_flops = 0
        self.inside_flops = 0  # of which counted by the generator's counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score(self, requests: list[Any]) -> list[Any]:
        t0 = time.perf_counter()
        if self.meter and self.gen.counter is not None:
            before = self.gen.counter.get_total_flops()
            out = self.inner.score(requests)
            self.inside_flops += self.gen.counter.get_total_flops() - before
            self.measured_flops += self.gen.counter.get_total_flops() - before
        elif self.meter:
            from rebase.flop_count import flop_counter

            with flop_counter() as fc:
                out = self.inner.score(requests)
            self.measured_flops += fc.get_total_flops()
        else:
            out = self.inner.score(requests)
        dt = time.perf_counter() - t0
        self.seconds += dt
        if self.gen.active:
            self.inside_s += dt
        return out


@dataclass
class RunStats:
    wall_s: float
    policy_s: float
    generated: int
    processed: int
    prm_tokens: int
    nodes: int
    flops_policy: float
    calls: int
    measured_flops: int = 0
    prm_s: float = 0.0
    prm_processed: int = 0  # PRM tokens actually run (read minus served from cached KV)
    flops_total: float = 0.0
    measured_prm_flops: int = 0

    @property
    def per_token_ms(self) -> float:
        return 1000 * self.wall_s / max(self.generated, 1)

    @property
    def prm_per_generated(self) -> float:
        return self.prm_processed / max(self.generated, 1)


def run_strategy(
    strategy: Any, problems: list[Any], budget: int, ctx: Any, meter: bool = False, one_by_one: bool = False
) -> RunStats:
    """Time one search over `problems` (all in one batch, or one problem per search call). A fresh
    prefix cache (policy and PRM) each run, so runs do not feed each other's KV."""
    from dataclasses import replace

    gen = ctx.generator
    if gen.prefix_cache is not None:
        gen.prefix_cache.clear()
    if getattr(ctx.prm, "scorer", None) is not None:
        ctx.prm.scorer.store.clear()
    timed = TimedGenerator(gen, meter)
    timed_prm = TimedPRM(ctx.prm, timed, meter)
    c = replace(ctx, generator=timed, prm=timed_prm)
    t0 = time.perf_counter()
    batches = [[p] for p in problems] if one_by_one else [problems]
    results = [r for b in batches for r in strategy.search(b, budget, c)]
    wall = time.perf_counter() - t0
    led = [r.ledger for r in results]
    return RunStats(
        wall_s=wall,
        policy_s=timed.seconds - timed_prm.inside_s,
        generated=sum(x.tokens("policy", "generated_tokens") for x in led),
        processed=sum(x.tokens("policy", "processed_tokens") for x in led),
        prm_tokens=sum(x.summary()["prm_tokens"] for x in led),
        nodes=sum(len(r.nodes) - 1 for r in results),
        flops_policy=sum(x.flops("policy") for x in led),
        calls=timed.calls,
        measured_flops=timed.measured_flops - timed_prm.inside_flops,
        prm_s=timed_prm.seconds,
        prm_processed=sum(x.tokens("prm", "prompt_tokens") - x.tokens("prm", "cached_tokens") for x in led),
        flops_total=sum(x.flops("total") for x in led),
        measured_prm_flops=timed_prm.measured_flops,
    )


def alternate(variants: dict[str, Callable[[], RunStats]], repeats: int) -> dict[str, list[RunStats]]:
    """Run the variants in turn (A B C, B C A, ...), `repeats` rounds, so slow phases of a shared
    machine hit every variant alike."""
    names = list(variants)
    out: dict[str, list[RunStats]] = {k: [] for k in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for k in order:
            s = variants[k]()
            out[k].append(s)
            log(
                f"  [{r + 1}/{repeats}] {k}: {s.wall_s:.2f}s, {s.generated} tokens, {s.per_token_ms:.2f} ms/token, "
                f"policy {s.policy_s:.2f}s, PRM {s.prm_s:.2f}s ({s.prm_processed} tokens run), {s.calls} generate calls"
            )
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def make_context(
    policy_dir: Path, prm_dir: Path, problems: list[Any], sampling: Any, device: str, step_rate: float, eos_rate: float
) -> tuple[Any, Any, dict[str, float]]:
    """Load the policy (real backend) and PRM, calibrate the stop biases; returns (context with
    prefix reuse, the same without it, info)."""
    import copy

    from rebase.tasks.prompts import PromptFormat
    from rebase.backends.hf import TransformersGenerator
    from rebase.config import PRMConfig
    from rebase.model_config import TransformersModel
    from reward_models.step_tag import StepTagPRM
    from strategies.base import SearchContext

    gen = TransformersGenerator(TransformersModel(name="policy", path=str(policy_dir), device=device))
    prm = StepTagPRM(
        PRMConfig(family="step_tag", name="prm", path=str(prm_dir), device=device, tag=" ки", good="+", bad="-")
    )
    prompts = PromptFormat.from_config("gsm8k")
    nl, eos = gen.encode("\n")[-1], gen.tokenizer.eos_token_id
    bias = calibrate(gen, [prompts.render(p, gen) for p in problems], {nl: step_rate, eos: eos_rate})
    ctx = SearchContext(generator=gen, prm=prm, prompts=prompts, sampling=sampling, seed=0, dataset="gsm8k")
    no_reuse = copy.copy(gen)
    no_reuse.prefix_cache = None  # same weights, no KV store: every round prefills whole paths
    prm_nr = copy.copy(prm)
    prm_nr.scorer = None  # and the PRM re-reads every path from the start
    ctx_nr = copy.copy(ctx)
    ctx_nr.generator, ctx_nr.prm = no_reuse, prm_nr
    return ctx, ctx_nr, {"newline_bias": round(bias[nl], 3), "eos_bias": round(bias[eos], 3)}


def compare(ctx: Any, ctx_nr: Any, problems: list[Any], budget: int, repeats: int, small: int) -> dict[str, Any]:
    """The ratios of the benchmark (see bench/cpu.py), variants alternated, medians taken: REBASE
    and sampling on all `problems`, the costlier variants on the first `small` of them."""
    from dataclasses import asdict

    from strategies.rebase import Rebase
    from strategies.sampling import WeightedMajority

    rebase, wm = Rebase(balance_temperature=0.1), WeightedMajority()
    pipelined = Rebase(balance_temperature=0.1, pipeline=True)  # next rounds join the running decode
    few = problems[:small]
    log(f"warm-up, then {repeats} alternating rounds: {len(problems)} and {len(few)} problems, N={budget}")
    run_strategy(rebase, problems[:2], 4, ctx)
    runs = alternate(
        {
            "rebase": lambda: run_strategy(rebase, problems, budget, ctx),
            "sampling": lambda: run_strategy(wm, problems, budget, ctx),
            "rebase_small": lambda: run_strategy(rebase, few, budget, ctx),
            "sampling_small": lambda: run_strategy(wm, few, budget, ctx),
            "rebase_no_reuse": lambda: run_strategy(rebase, few, budget, ctx_nr),
            "rebase_one_by_one": lambda: run_strategy(rebase, few, budget, ctx, one_by_one=True),
            "rebase_pipelined": lambda: run_strategy(pipelined, few, budget, ctx),
        },
        repeats,
    )
    log("FLOP check: REBASE on 2 problems, N=4, policy and PRM under FlopCounterMode")
    fl = run_strategy(rebase, problems[:2], 4, ctx, meter=True)
    reb, smp, few_reb = runs["rebase"], runs["sampling"], runs["rebase_small"]
    by_round = {
        "rebase_vs_sampling_per_token": [a.per_token_ms / b.per_token_ms for a, b in zip(reb, smp)],
        "rebase_vs_sampling_per_token_small": [
            a.per_token_ms / b.per_token_ms for a, b in zip(few_reb, runs["sampling_small"])
        ],
        "prefix_reuse_speedup": [b.wall_s / a.wall_s for a, b in zip(few_reb, runs["rebase_no_reuse"])],
        "batching_speedup": [b.wall_s / a.wall_s for a, b in zip(few_reb, runs["rebase_one_by_one"])],
        "pipeline_speedup": [a.wall_s / b.wall_s for a, b in zip(few_reb, runs["rebase_pipelined"])],
    }
    out: dict[str, Any] = {k: round(median(v), 3) for k, v in by_round.items()}
    out["prm_tokens_rebase_vs_sampling"] = round(
        median([a.prm_per_generated / b.prm_per_generated for a, b in zip(reb, smp)]), 3
    )
    out["flops_policy_vs_measured"] = round(fl.flops_policy / max(fl.measured_flops, 1), 4)
    out["flops_total_vs_measured"] = round(fl.flops_total / max(fl.measured_flops + fl.measured_prm_flops, 1), 4)
    out.update(
        {
            "rebase_policy_share": round(median([s.policy_s / s.wall_s for s in reb]), 3),
            "rebase_vs_sampling_policy_only_per_token": round(
                median([(a.policy_s / a.generated) / (b.policy_s / b.generated) for a, b in zip(reb, smp)]), 3
            ),
            "rebase_mean_step_tokens": round(median([s.generated / s.nodes for s in reb]), 1),
            "prm_tokens_per_generated": {
                k: round(median([s.prm_per_generated for s in v]), 3) for k, v in runs.items()
            },
            "prm_share": {k: round(median([s.prm_s / s.wall_s for s in v]), 3) for k, v in runs.items()},
            "ratios_by_round": {k: [round(x, 3) for x in v] for k, v in by_round.items()},
            "runs": {k: [asdict(s) for s in v] for k, v in runs.items()},
            "flop_run": asdict(fl),
        }
    )
    return out
