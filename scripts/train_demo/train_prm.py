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
from typing import Callable, Sequence

import numpy as np
import torch

from rebase.tasks.arith import check_steps, training_problems
from scripts.train_demo.tokenizer import BAD, GOOD, STEP_TAG
from scripts.train_demo.train_policy import generate_solutions, split_steps
from reward_models.base import step_tag_text

POLICY_NAMES = ("arith-s", "arith-m", "arith-l")
INIT_FROM = "arith-l"
SAMPLES_PER_POLICY = 1024  # training solutions sampled from each policy
HELDOUT_PER_POLICY = 200  # held-out (evaluation-problem) solutions per policy for the AUC
STEPS = 300  # 600 steps gave the same held-out AUC (0.829 vs 0.828): more samples, not steps, would help
BATCH = 32
LR = 1e-3
SEED = 21
TEMPERATURE = 0.9
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


def sample_labelled(models: dict, tok, problems_for: Callable[[str], list], seed: int, log) -> list:
    rows = []
    for k, (name, model) in enumerate(models.items()):
        probs = problems_for(name)
        qs = [p.question for p in probs]
        texts = generate_solutions(model, tok, qs, temperature=TEMPERATURE, seed=seed + k)
        got = label_samples(qs, texts)
        good = sum(all(lab) for _, _, lab in got)
        log(f"prm data: {name} {len(got)} samples, {good / max(1, len(got)):.1%} fully correct")
        rows += got
    return rows


def encode(tok, rows) -> list[tuple[list[int], list[int], list[int]]]:
    """Token ids, tag positions and 0/1 targets (1 = good) for each labelled solution."""
    tag_id = tok.convert_tokens_to_ids(STEP_TAG)
    out = []
    for q, steps, labels in rows:
        ids = tok.encode(step_tag_text(q, steps, STEP_TAG))
        pos = [i for i, t in enumerate(ids) if t == tag_id]
        if len(pos) != len(labels):
            raise RuntimeError(f"prm data: {len(pos)} tags for {len(labels)} steps in {q!r}")
        out.append((ids, pos, [int(x) for x in labels]))
    return out


def pair_logits(model, tok, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_tags, 2] logits (good, bad) at every tag position of the batch, and the 0/1 targets."""
    good, bad = tok.convert_tokens_to_ids(GOOD), tok.convert_tokens_to_ids(BAD)
    width = max(len(ids) for ids, _, _ in batch)
    ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, ys = [], [], []
    for i, (x, pos, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        rows += [i] * len(pos)
        cols += pos
        ys += y
    logits = model(input_ids=ids, attention_mask=mask).logits
    sel = logits[torch.tensor(rows), torch.tensor(cols)]
    return sel[:, [good, bad]], torch.tensor(ys)


def step_auc(model, tok, data) -> float:
    """AUC of the step_tag score P(good) = softmax([l+, l-])[0] against the step labels."""
    scores, ys = [], []
    with torch.no_grad():
        for s in range(0, len(data), 64):
            pl, y = pair_logits(model, tok, data[s: s + 64])
            scores += torch.softmax(pl.float(), -1)[:, 0].tolist()
            ys += y.tolist()
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
        ranks[i: j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def train_prm(model, tok, train, steps: int, log, seed: int = SEED) -> dict:
    """Class-balanced 2-way cross-entropy at tag positions; AdamW, warmup + cosine."""
    n_good = sum(sum(y) for _, _, y in train)
    n_all = sum(len(y) for _, _, y in train)
    # weight each class by the inverse of its frequency so both count equally
    w = torch.tensor([n_all / (2 * max(1, n_all - n_good)), n_all / (2 * max(1, n_good))])  # [bad, good]
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order: list[int] = []
    warmup = max(1, min(50, steps // 10))
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
    model.eval()
    return {"steps": steps, "train_s": round(time.time() - t0, 1), "final_loss": round(float(np.mean(losses[-100:])), 4),
            "good_fraction": round(n_good / max(1, n_all), 4), "train_steps_labelled": n_all}


def prm_card(info: dict) -> str:
    return f"""# arith-prm: demo step process reward model

A Llama-architecture causal LM (the shape of {INIT_FROM}, initialised from its weights) fine-tuned by
`python -m scripts.train_demo` (scripts/train_demo/train_prm.py) as a Math-Shepherd-style step PRM for `arith`.

- Use it with the `step_tag` PRM family: tag " ки", good "+", bad "-". Input layout
  (reward_models/base.py `step_tag_text`): "{{question}} {{step 1}} ки\\n{{step 2}} ки...";
  the score of step k = softmax([logit(+), logit(-)])[0] at the k-th tag token.
- Parameters: {info['params']:,} (fp32 safetensors); character-level tokenizer shared with the policies.
- Data: {info['n_train']} solutions sampled at temperature {TEMPERATURE} from arith-s, arith-m and arith-l
  ({SAMPLES_PER_POLICY} each) on training problems (a seed stream disjoint from evaluation), every
  step labelled by `rebase.tasks.arith.check_steps` (good until the first wrong step);
  {info['train_steps_labelled']} labelled steps, {info['good_fraction']:.1%} good.
- Training: class-balanced cross-entropy over the (good, bad) logits at tag positions only, AdamW
  (lr {LR}, batch {BATCH}), {info['steps']} steps, seed {SEED}, one CPU thread: {info['train_s']} s
  (plus {info['sample_s']} s sampling) on the machine that produced these weights.
- Step-label AUC on held-out samples ({info['n_heldout']} solutions from the three policies at
  temperature {TEMPERATURE} on evaluation problems, {info['heldout_steps']} steps): **{info['auc']:.3f}**
  (before fine-tuning: {info['auc_init']:.3f}).
"""


def train_and_save_prm(tok, out: Path, steps_scale: float, eval_size: int, log) -> dict:
    """Sample and label PRM data from the saved policies in `out`, train, measure AUC, save."""
    from transformers import AutoModelForCausalLM

    from scripts.train_demo.artifacts import heldout_problems, save_model

    models = {n: AutoModelForCausalLM.from_pretrained(out / n).eval() for n in POLICY_NAMES}
    t0 = time.time()
    n_train = max(BATCH, round(SAMPLES_PER_POLICY * min(1.0, steps_scale)))
    n_held = max(8, round(HELDOUT_PER_POLICY * min(1.0, steps_scale)))
    streams = {n: training_problems(SEED * 10 + k) for k, n in enumerate(POLICY_NAMES)}
    train_rows = sample_labelled(models, tok, lambda n: [next(streams[n]) for _ in range(n_train)], SEED, log)
    held = heldout_problems(max(eval_size, n_held))
    held_rows = sample_labelled(models, tok, lambda n: held[:n_held], SEED + 100, log)
    sample_s = round(time.time() - t0, 1)
    train, heldout = encode(tok, train_rows), encode(tok, held_rows)
    prm = AutoModelForCausalLM.from_pretrained(out / INIT_FROM)
    auc_init = step_auc(prm.eval(), tok, heldout)
    log(f"arith-prm: held-out step AUC before training {auc_init:.3f}")
    info = train_prm(prm, tok, train, max(2, round(STEPS * steps_scale)), log)
    info.update(params=sum(p.numel() for p in prm.parameters()), auc=round(step_auc(prm, tok, heldout), 4),
                auc_init=round(auc_init, 4), n_train=len(train), n_heldout=len(heldout),
                heldout_steps=sum(len(y) for _, _, y in heldout), sample_s=sample_s,
                heldout_good_fraction=round(sum(sum(y) for _, _, y in heldout) / max(1, sum(len(y) for _, _, y in heldout)), 4))
    log(f"arith-prm: {info}")
    save_model(prm, tok, out / "arith-prm", info, prm_card(info))
    return info
