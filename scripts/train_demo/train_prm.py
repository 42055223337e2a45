"""Train the demo step PRM (arith-prm) on automatically labelled policy samples.

Why: REBASE, MCTS and weighted voting need a process reward model whose step scores carry a real
signal. As in Math-Shepherd, the labels come for free: the demo policies sample solutions to
training problems (temperature 0.9), `rebase.tasks.arith.check_steps` labels every step (good until the
first wrong one), and a Llama causal LM learns to put "+" or "-" after each step tag in the
`step_tag` layout (reward_models/base.py `step_tag_text`, tag " ки"). The model starts from the
largest policy's weights (it already reads the arithmetic) and is trained with a class-balanced
cross-entropy over [logit("+"), logit("-")] at the tag positions only: exactly the score the
generic `step_tag` adapter reads (softmax over the good/bad logits, good first).

    from scripts.train_demo.train_prm import train_and_save_prm
    info = train_and_save_prm(tok, Path("rebase/demo/models"), steps_scale=1.0, eval_size=500, log=print)
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from rebase.tasks.arith import check_steps, training_problems
from scripts.train_demo.tokenizer import BAD, GOOD, STEP_TAG
from scripts.train_demo.sampling import solutions
from scripts.train_demo.train_policy import split_steps
from reward_models.base import step_tag_text

POLICY_NAMES = ("arith-s", "arith-m", "arith-l", "arith-xl")
INIT_FROM = "arith-xl"  # the verifier starts from the strongest arithmetic reader (the paper's PRM was 34B)
SAMPLES_PER_POLICY = 6000  # training solutions sampled from each policy (half at each temperature)
HARD_NEGATIVES = 12000  # reference solutions with one step broken (hard_negatives.py)
HELDOUT_PER_POLICY = 300  # held-out (evaluation-problem) solutions per policy for the AUC
BON_PROBLEMS = 100  # held-out problems for the card's best-of-N check
BON_N = (1, 4, 8, 16, 32, 64)
STEPS = 1500  # held-out AUC is flat from step 500 on (0.775 at 500, 0.775 at 1000): more steps buy nothing
BATCH = 32
LR = 5e-4
SEED = 21
TEMPERATURES = (0.7, 1.0)  # the demo samples at 0.7; 1.0 adds the rarer slips
EVAL_TEMPERATURE = 0.7
MAX_STEPS_PER_SOLUTION = 8  # a 6-operation solution has 7 steps; longer samples are rambling


def label_samples(questions: Sequence[str], texts: Sequence[str]) -> list[tuple[str, list[str], list[bool]]]:
    """(question, steps, labels) per sampled text; empty samples (and ones containing the step tag)
    are dropped."""
    rows = []
    for q, t in zip(questions, texts):
        steps = split_steps(t)[:MAX_STEPS_PER_SOLUTION]
        # a sample that itself emits the tag token would shift every label: drop it
        if steps and not any(STEP_TAG.strip() in s for s in steps):
            rows.append((q, steps, check_steps(q, steps)))
    return rows


def sample_labelled(
    models: dict, tok, problems_for: Callable[[str], list], seed: int, log, temperatures: Sequence[float] = TEMPERATURES
) -> list:
    """Sampled solutions of each policy on its problems, split evenly over `temperatures`, labelled."""
    rows = []
    for k, (name, model) in enumerate(models.items()):
        qs = [p.question for p in problems_for(name)]
        per = -(-len(qs) // len(temperatures))
        got = []
        for j, temp in enumerate(temperatures):
            part = qs[j * per : (j + 1) * per]
            got += label_samples(part, solutions(model, part, temperature=temp, seed=seed + 10 * k + j))
        good = sum(all(lab) for _, _, lab in got)
        log(f"prm data: {name} {len(got)} samples, {good / max(1, len(got)):.1%} fully correct")
        rows += [(q, st, lab, name) for q, st, lab in got]
    return rows


def encode(tok, rows) -> list[tuple[list[int], list[int], list[int]]]:
    """Token ids, tag positions and 0/1 targets (1 = good) for each labelled solution
    (question, steps, labels[, source])."""
    tag_id = tok.convert_tokens_to_ids(STEP_TAG)
    out = []
    for q, steps, labels, *_ in rows:
        ids = tok.encode(step_tag_text(q, steps, STEP_TAG))
        pos = [i for i, t in enumerate(ids) if t == tag_id]
        if len(pos) != len(labels):
            raise RuntimeError(f"prm data: {len(pos)} tags for {len(labels)} steps in {q!r}")
        out.append((ids, pos, [int(x) for x in labels]))
    return out


def pair_logits(model, tok, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_tags, 2] logits (good, bad) at every tag position of the batch, and the 0/1 targets."""
    good, bad = tok.convert_tokens_to_ids(GOOD), tok.convert_tokens_to_ids(BAD)
    width = max(len(row[0]) for row in batch)
    ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, ys = [], [], []
    for i, (x, pos, y, *_) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        rows += [i] * len(pos)
        cols += pos
        ys += y
    logits = model(input_ids=ids, attention_mask=mask).logits
    sel = logits[torch.tensor(rows), torch.tensor(cols)]
    return sel[:, [good, bad]], torch.tensor(ys)


def step_scores(model, tok, data) -> tuple[list[float], list[int]]:
    """P(good) = softmax([l+, l-])[0] at every tag, and the labels."""
    scores, ys = [], []
    with torch.no_grad():
        for s in range(0, len(data), 64):
            pl, y = pair_logits(model, tok, data[s : s + 64])
            scores += torch.softmax(pl.float(), -1)[:, 0].tolist()
            ys += y.tolist()
    return scores, ys


def step_auc(model, tok, data) -> float:
    """AUC of the step_tag score P(good) = softmax([l+, l-])[0] against the step labels."""
    scores, ys = step_scores(model, tok, data)
    return auc(np.array(scores), np.array(ys))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count one half); nan when a class is missing."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def train_prm(model, tok, train, steps: int, log, seed: int = SEED, eval_fn: Optional[Callable] = None) -> dict:
    """Class-balanced 2-way cross-entropy at tag positions; AdamW, warmup + cosine."""
    n_good = sum(sum(row[2]) for row in train)
    n_all = sum(len(row[2]) for row in train)
    # weight each class by the inverse of its frequency so both count equally
    w = torch.tensor([n_all / (2 * max(1, n_all - n_good)), n_all / (2 * max(1, n_good))])  # [bad, good]
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order: list[int] = []
    warmup = max(1, min(100, steps // 10))
    model.train()
    t0, losses = time.time(), []
    for step in range(steps):
        lr = LR * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < BATCH:
            order = list(range(len(train)))
            rng.shuffle(order)
        batch = [train[order.pop()] for _ in range(BATCH)]
        pl, y = pair_logits(model, tok, batch)
        # column 0 is "good": target class index 0 for good, 1 for bad
        loss = torch.nn.functional.cross_entropy(pl, 1 - y, weight=w.flip(0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log(f"arith-prm step {step + 1}/{steps} loss {np.mean(losses[-100:]):.4f} {time.time() - t0:.0f}s")
        if eval_fn and (step + 1) % 500 == 0 and step + 1 < steps:
            model.eval()
            eval_fn(model, step + 1)
            model.train()
    model.eval()
    return {
        "steps": steps,
        "train_s": round(time.time() - t0, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4),
        "good_fraction": round(n_good / max(1, n_all), 4),
        "train_steps_labelled": n_all,
    }


def ranking_check(prm, tok, models: dict, problems, n_max: int, log) -> dict:
    """Per policy: n_max samples per problem at the demo's temperature, scored by the PRM (last
    step's P(good), the demo's reduction); best-of-N, majority and weighted majority accuracy at
    each N in BON_N (the first N samples), and pass@N. Whole-solution ranking, not step AUC, is what
    the search strategies rely on."""
    from collections import defaultdict

    from rebase.tasks.grading import extract_answer, grade

    out = {}
    for k, (name, model) in enumerate(models.items()):
        qs = [p.question for p in problems for _ in range(n_max)]
        texts = solutions(model, qs, temperature=EVAL_TEMPERATURE, seed=SEED + 500 + k)
        rows = [(q, split_steps(t)[:MAX_STEPS_PER_SOLUTION] or [""], [True]) for q, t in zip(qs, texts)]
        tag_id = tok.convert_tokens_to_ids(STEP_TAG)
        data = []
        for q, steps, _ in rows:
            ids = tok.encode(step_tag_text(q, steps, STEP_TAG))
            pos = [i for i, t in enumerate(ids) if t == tag_id]
            data.append((ids, pos[-1:], [1]))
        last, _ = step_scores(prm, tok, data)
        res: dict[str, dict[int, float]] = {"best_of_n": {}, "majority": {}, "weighted_majority": {}, "pass": {}}
        for n in BON_N:
            if n > n_max:
                continue
            hits = defaultdict(int)
            for i, p in enumerate(problems):
                sl = slice(i * n_max, i * n_max + n)
                ans = [extract_answer(t, "arith") for t in texts[sl]]
                sc = last[sl]
                ok = [a is not None and grade(a, p.gold, "arith") for a in ans]
                valid = [j for j, a in enumerate(ans) if a is not None]
                if valid:
                    hits["best_of_n"] += ok[max(valid, key=lambda j: sc[j])]
                    votes, wvotes = defaultdict(int), defaultdict(float)
                    for j in valid:
                        votes[ans[j]] += 1
                        wvotes[ans[j]] += sc[j]
                    hits["majority"] += grade(max(votes, key=votes.get), p.gold, "arith")
                    hits["weighted_majority"] += grade(max(wvotes, key=wvotes.get), p.gold, "arith")
                hits["pass"] += any(ok)
            for key in res:
                res[key][n] = round(hits[key] / len(problems), 3)
        log(f"ranking {name}: {res}")
        out[name] = res
    return out


def prm_card(info: dict) -> str:
    rank = info.get("ranking", {})
    lines = []
    for name, res in rank.items():
        ns = sorted(res["best_of_n"])
        lines.append(
            f"  | {name} | "
            + " | ".join(f"{res['best_of_n'][n]:.2f}" for n in ns)
            + " | "
            + " | ".join(f"{res['weighted_majority'][n]:.2f}" for n in ns[-1:])
            + " | "
            + f"{res['majority'][ns[-1]]:.2f} | {res['pass'][ns[-1]]:.2f} |"
        )
    ns = sorted(next(iter(rank.values()))["best_of_n"]) if rank else []
    table = (
        ""
        if not rank
        else f"- Whole-solution ranking on {BON_PROBLEMS} held-out problems, samples at temperature "
        f"{EVAL_TEMPERATURE}, score = last step's P(good):\n\n"
        "  | policy | " + " | ".join(f"best-of-{n}" for n in ns) + f" | weighted maj@{ns[-1]} | "
        f"majority@{ns[-1]} | pass@{ns[-1]} |\n  |" + "---|" * (len(ns) + 4) + "\n" + "\n".join(lines) + "\n"
    )
    per = ", ".join(f"{k} {v:.3f}" for k, v in info.get("auc_per_policy", {}).items())
    return f"""# arith-prm: demo step process reward model

A Llama-architecture causal LM (the shape of {info.get("init_from", INIT_FROM)}, initialised from its weights) fine-tuned
by `python -m scripts.train_demo` (scripts/train_demo/train_prm.py) as a Math-Shepherd-style step PRM for `arith`.

- Use it with the `step_tag` PRM family: tag " ки", good "+", bad "-". Input layout
  (reward_models/base.py `step_tag_text`): "{{question}} {{step 1}} ки\\n{{step 2}} ки...";
  the score of step k = softmax([logit(+), logit(-)])[0] at the k-th tag token.
- Parameters: {info["params"]:,} (fp32 safetensors); character-level tokenizer shared with the policies.
- Data: {info["n_train"]} labelled solutions on training problems (a seed stream disjoint from evaluation):
  {info["n_sampled"]} sampled from {", ".join(POLICY_NAMES)} at temperatures {", ".join(map(str, TEMPERATURES))}
  and {info["n_hard"]} hard negatives (reference solutions with one step broken the way the policies
  break them: scripts/train_demo/hard_negatives.py). Every step is labelled by
  `rebase.tasks.arith.check_steps` (good until the first wrong step): {info["train_steps_labelled"]} labelled
  steps, {info["good_fraction"]:.1%} good.
- Training: class-balanced cross-entropy over the (good, bad) logits at tag positions; AdamW (lr {LR}, batch {BATCH}), {info["steps"]} steps, seed {SEED},
  one CPU thread: {info["train_s"]} s (plus {info["sample_s"]} s sampling) on the machine that produced these weights.
- Step-label AUC on held-out samples ({info["n_heldout"]} solutions, {HELDOUT_PER_POLICY} per policy at temperature
  {EVAL_TEMPERATURE} on evaluation problems, {info["heldout_steps"]} steps): **{info["auc"]:.3f}**
  (per policy: {per}; before fine-tuning: {info["auc_init"]:.3f}).
{table}"""


def train_and_save_prm(tok, out: Path, steps_scale: float, eval_size: int, log, init_from: str = INIT_FROM) -> dict:
    """Sample and label PRM data from the saved policies in `out`, add hard negatives, train,
    measure AUC and ranking, save."""
    import itertools

    from transformers import AutoModelForCausalLM

    from scripts.train_demo.artifacts import heldout_problems, save_model
    from scripts.train_demo.hard_negatives import corrupted_rows
    from scripts.train_demo.sampling import load

    models = {n: load(out / n) for n in POLICY_NAMES if (out / n).is_dir()}
    t0 = time.time()
    frac = min(1.0, steps_scale)
    n_train = max(BATCH, round(SAMPLES_PER_POLICY * frac))
    n_held = max(8, round(HELDOUT_PER_POLICY * frac))
    streams = {n: training_problems(SEED * 10 + k) for k, n in enumerate(POLICY_NAMES)}
    train_rows = sample_labelled(models, tok, lambda n: [next(streams[n]) for _ in range(n_train)], SEED, log)
    hard = corrupted_rows(
        itertools.islice(training_problems(SEED * 10 + 9), max(BATCH, round(HARD_NEGATIVES * frac))), SEED
    )
    held = heldout_problems(max(eval_size, n_held))
    held_rows = sample_labelled(models, tok, lambda n: held[:n_held], SEED + 100, log, (EVAL_TEMPERATURE,))
    sample_s = round(time.time() - t0, 1)
    train = encode(tok, train_rows) + encode(tok, hard)
    heldout = encode(tok, held_rows)
    by_policy = {n: encode(tok, [r for r in held_rows if r[3] == n]) for n in models}

    def probe(model, step):
        log(f"arith-prm step {step}: held-out AUC {step_auc(model, tok, heldout):.4f}")

    prm = AutoModelForCausalLM.from_pretrained(out / init_from)
    auc_init = step_auc(prm.eval(), tok, heldout)
    log(f"arith-prm: held-out step AUC before training {auc_init:.3f}")
    info = train_prm(prm, tok, train, max(2, round(STEPS * steps_scale)), log, eval_fn=probe)
    info.update(
        params=sum(p.numel() for p in prm.parameters()),
        auc=round(step_auc(prm, tok, heldout), 4),
        auc_per_policy={n: round(step_auc(prm, tok, d), 4) for n, d in by_policy.items()},
        auc_init=round(auc_init, 4),
        n_train=len(train),
        n_sampled=len(train_rows),
        n_hard=len(hard),
        n_heldout=len(heldout),
        init_from=init_from,
        heldout_steps=sum(len(row[2]) for row in heldout),
        sample_s=sample_s,
        heldout_good_fraction=round(
            sum(sum(row[2]) for row in heldout) / max(1, sum(len(row[2]) for row in heldout)), 4
        ),
    )
    log(f"arith-prm: {info}")
    n_bon = max(4, round(BON_PROBLEMS * frac))
    info["ranking"] = ranking_check(prm, tok, models, held[:n_bon], max(n for n in BON_N if n <= 64), log)
    save_model(prm, tok, out / "arith-prm", info, prm_card(info))
    return info
