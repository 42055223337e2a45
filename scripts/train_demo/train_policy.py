"""Train one demo policy: a small Llama causal LM that solves `arith` problems step by step.

Why: the demo world needs policies of several sizes whose greedy accuracy rises with size and falls
with level, and whose samples make real, varied, step-local mistakes (so search and a step PRM
matter). They are trained from scratch on reference solutions in the exact plain layout the
evaluator prompts with ("Question: {q}\\nAnswer:\\n", steps joined by "\\n", then </s>), with the
loss on solution tokens only (AdamW, batch 32, warmup + cosine decay, one seed for everything).

Also here: greedy and sampling metrics for the model cards, measured through the project's own
backend and prompt format (scripts/train_demo/sampling.py).

    from scripts.train_demo.train_policy import PolicySpec, train_policy
    model, info = train_policy(PolicySpec("arith-s", hidden=48, layers=2, heads=4, steps=100), tok)
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch

from rebase.tasks.arith import LEVELS, check_steps, reference_solution, training_problems
from rebase.types import Problem
from scripts.train_demo.sampling import prompt_text, solutions

__all__ = ["PolicySpec", "prompt_text", "train_policy", "greedy_accuracy", "sampling_metrics", "policy_batch"]


@dataclass
class PolicySpec:
    """One policy. hidden/layers/heads/intermediate: Llama shape (intermediate 0 = 3 x hidden);
    steps: optimizer steps at `batch`; lr: peak AdamW rate after `warmup` steps, cosine to lr/10;
    seed: model init and data stream."""

    name: str
    hidden: int = 64
    layers: int = 3
    heads: int = 4
    intermediate: int = 0
    steps: int = 3000
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0


def make_model(spec: PolicySpec, tok, max_positions: int = 512):
    """A freshly initialised LlamaForCausalLM (tied embeddings, seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        intermediate_size=spec.intermediate or 3 * spec.hidden,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        rope_theta=10000.0,
        attn_implementation="sdpa",
    )
    torch.manual_seed(spec.seed)
    return LlamaForCausalLM(cfg)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def policy_batch(tok, problems: Sequence[Problem]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 outside the solution + </s>)."""
    rows, labels = [], []
    for p in problems:
        prompt = tok.encode(prompt_text(p.question))  # with <s>
        sol = tok.encode("\n".join(reference_solution(p)), add_special_tokens=False) + [tok.eos_token_id]
        rows.append(prompt + sol)
        labels.append([-100] * len(prompt) + sol)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels)):
        ids[i, : len(r)] = torch.tensor(r)
        lab[i, : len(lb)] = torch.tensor(lb)
        mask[i, : len(r)] = 1
    return ids, mask, lab


def lr_at(step: int, spec: PolicySpec) -> float:
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train_policy(
    spec: PolicySpec,
    tok,
    log: Optional[Callable[[str], None]] = None,
    eval_every: int = 0,
    eval_fn: Optional[Callable] = None,
):
    """Train `spec` from scratch; returns (model, info) with info = {params, steps, train_s,
    final_loss, losses}. Deterministic for a given spec on a given machine and thread count."""
    log = log or (lambda s: None)
    model = make_model(spec, tok)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=spec.lr,
        betas=(0.9, 0.95),
    )
    # one level per batch (drawn by the stream's seed): mixed-level batches waste ~30% on padding
    streams = {lv: training_problems(spec.seed * 10 + lv, levels=(lv,)) for lv in LEVELS}
    pick = random.Random(f"levels/{spec.seed}")
    losses: list[float] = []
    t0, c0 = time.time(), time.process_time()
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec)
        stream = streams[pick.choice(LEVELS)]
        ids, mask, lab = policy_batch(tok, [next(stream) for _ in range(spec.batch)])
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step == 0:
            log(
                f"{spec.name} step {step + 1}/{spec.steps} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} "
                f"{time.time() - t0:.0f}s wall {time.process_time() - c0:.0f}s cpu"
            )
        if eval_every and eval_fn and (step + 1) % eval_every == 0:
            model.eval()
            eval_fn(model, step + 1)
            model.train()
    model.eval()
    info = {
        "params": n_params(model),
        "steps": spec.steps,
        "train_s": round(time.time() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1),
        "final_loss": round(sum(losses[-100:]) / max(1, len(losses[-100:])), 4),
        "spec": asdict(spec),
    }
    return model, info


def split_steps(text: str) -> list[str]:
    return [s for s in text.split("\n") if s.strip()]


def is_correct(question: str, text: str) -> bool:
    """A solution is correct when every step checks (which includes the final answer line)."""
    steps = split_steps(text)
    return (
        bool(steps)
        and all(check_steps(question, steps))
        and len(steps) == len(check_steps(question, steps))
        and steps[-1].lower().startswith("the answer is")
    )


def greedy_accuracy(model, problems: Sequence[Problem]) -> dict:
    """Greedy accuracy overall and per level (answer-graded: the final answer equals gold) of a
    saved model (its directory, or a loaded generator)."""
    from rebase.tasks.grading import extract_answer, grade

    texts = solutions(model, [p.question for p in problems], temperature=0.0)
    per: dict[int, list[bool]] = {}
    for p, t in zip(problems, texts):
        ok = grade(extract_answer(t, "arith"), p.gold, "arith")
        per.setdefault(p.level or 0, []).append(bool(ok))
    allok = [x for v in per.values() for x in v]
    return {
        "overall": round(sum(allok) / len(allok), 4),
        "per_level": {lv: round(sum(v) / len(v), 4) for lv, v in sorted(per.items())},
        "n": len(allok),
    }


def sampling_metrics(model, problems: Sequence[Problem], k: int = 8, temperature: float = 0.7, seed: int = 0) -> dict:
    """k samples per problem: per-sample accuracy, pass@k, majority@k (invalid answers never win),
    and the share of wrong samples whose first bad step is an arithmetic slip on a correctly copied
    line (the errors a step PRM can catch)."""
    from collections import Counter

    from rebase.tasks.grading import extract_answer, grade

    qs = [p.question for p in problems for _ in range(k)]
    texts = solutions(model, qs, temperature=temperature, seed=seed)
    n_ok = n_pass = n_major = n_wrong = n_slip = 0
    for i, p in enumerate(problems):
        answers = [extract_answer(t, "arith") for t in texts[i * k : (i + 1) * k]]
        ok = [grade(a, p.gold, "arith") for a in answers]
        n_ok += sum(ok)
        n_pass += any(ok)
        votes = Counter(a for a in answers if a is not None)
        n_major += bool(votes) and grade(votes.most_common(1)[0][0], p.gold, "arith")
        for t, good in zip(texts[i * k : (i + 1) * k], ok):
            if not good:
                n_wrong += 1
                n_slip += _first_error_is_slip(p.question, split_steps(t))
    n = len(problems)
    return {
        "k": k,
        "temperature": temperature,
        "n": n,
        "sample_acc": round(n_ok / (n * k), 4),
        "pass_at_k": round(n_pass / n, 4),
        "majority_at_k": round(n_major / n, 4),
        "slip_share_of_errors": round(n_slip / max(1, n_wrong), 4),
    }


def _first_error_is_slip(question: str, steps: list[str]) -> bool:
    """Whether the first bad step has the right operands and operation but a wrong result."""
    from rebase.tasks.arith import solve

    chain = solve(question)
    labels = check_steps(question, steps)
    if all(labels):
        return False
    k = labels.index(False)
    if k >= len(chain):
        return False
    a, sym, b, _ = chain[k]
    head = steps[k].split("=")[0].strip()
    return head == f"{a} {sym} {b}"
