"""Train the demo step PRM (arith-prm) on automatically labelled steps.

Why: REBASE, MCTS and weighted voting need a process reward model whose step scores carry a real
signal. As in Math-Shepherd, the labels come for free: `rebase.tasks.arith.check_steps` labels every
step of a solution (good until the first wrong one), and a Llama causal LM learns to put "+" or "-"
after each step tag in the `step_tag` layout (reward_models/base.py `step_tag_text`, tag " ки"):
exactly the score the generic `step_tag` adapter reads (softmax over the good/bad logits, good first).

The verifier is its own model, not a fine-tuned policy: it reads numbers as whole tokens
(scripts/train_demo/prm_tokenizer.py) whose embeddings carry their value (verifier.py), because the
policies' character-level view is what kept earlier demo PRMs from checking additions. It learns
in three stages, each a class-balanced cross-entropy over [logit("+"), logit("-")] at the tags and
at every step token (step_checks.py `prefix_targets`: is the line still right given the line before
it as written):
  0. lines: single lines "a op b = c" of training problems, the result slipped at rate 1/2, at a
     flat learning rate (a cosine decay over this stage stopped it at a line AUC of 0.81; flat,
     it reaches 0.96 and leaves stage 1 a checker to build on);
  1. checks: whole reference solutions with lines broken at random (hard_negatives.slipped_steps)
     and one-slip hard negatives;
  2. solutions sampled from the four demo policies (temperatures 0.7 and 1.0) plus hard negatives:
     the slips the policies really make.

    from scripts.train_demo.train_prm import train_and_save_prm
    info = train_and_save_prm(Path("rebase/demo/models"), steps_scale=1.0, eval_size=500, log=print)
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from rebase.tasks.arith import apply_op, check_steps, solve, training_problems
from reward_models.base import step_tag_text
from scripts.train_demo.sampling import solutions
from scripts.train_demo.step_checks import local_golds, prefix_targets
from scripts.train_demo.tokenizer import BAD, GOOD, STEP_TAG
from scripts.train_demo.train_policy import split_steps

POLICY_NAMES = ("arith-s", "arith-m", "arith-l", "arith-xl")
SAMPLES_PER_POLICY = 6000  # training solutions sampled from each policy (half at each temperature)
HARD_NEGATIVES = 12000  # reference solutions with one step broken (hard_negatives.py)
HELDOUT_PER_POLICY = 300  # held-out (evaluation-problem) solutions per policy for the AUC
BON_PROBLEMS = 100  # held-out problems for the card's best-of-N check
BON_N = (1, 4, 8, 16, 32, 64)
LINE_PROBLEMS = 60_000  # stage 0: the lines of this many training problems, results slipped at rate 1/2
LINE_STEPS = 4000  # stage 0 steps, batch LINE_BATCH, lr CHECK_LR held flat after warmup (stage 1 goes on from it)
LINE_BATCH = 256
SLIP_PROBLEMS = 60_000  # stage 1: reference solutions with lines broken at SLIP_RATE (hard_negatives.slipped_steps)
CHECK_HARD = 20_000  # stage 1: and this many one-slip hard negatives
SLIP_RATE = 0.5
CHECK_STEPS = 3000  # stage 1 steps, batch BATCH, lr CHECK_LR
CHECK_LR = 1e-3
STEPS = 1500  # stage 2: whole solutions (policy samples and hard negatives)
BATCH = 64
LR = 5e-4
DENSE_WEIGHT = 1.0  # weight of the per-character prefix targets beside the tag's
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


def encode(tok, rows, golds: Optional[Sequence[Sequence[str]]] = None) -> list[tuple]:
    """Per labelled solution (question, steps, labels[, source]): token ids, tag positions, 0/1 tag
    targets (1 = good), and the positions and 0/1 targets of every step token
    (step_checks.prefix_targets against `golds[i]`, by default step_checks.local_golds: each line
    checked against the previous line as written)."""
    tag_id = tok.convert_tokens_to_ids(STEP_TAG)
    out = []
    for i, (q, steps, labels, *_) in enumerate(rows):
        ids = tok.encode(step_tag_text(q, steps, STEP_TAG))
        pos = [j for j, t in enumerate(ids) if t == tag_id]
        if len(pos) != len(labels):
            raise RuntimeError(f"prm data: {len(pos)} tags for {len(labels)} steps in {q!r}")
        gold = golds[i] if golds is not None else local_golds(q, steps)
        dpos, dy = [], []
        for tag_at, step, want in zip(pos, steps, gold):
            piece = tok.encode(step.strip(), add_special_tokens=False)
            # a step's tokens are the len(piece) tokens before its tag (checked: no merge across the edge)
            if piece and ids[tag_at - len(piece) : tag_at] == piece:
                dpos += range(tag_at - len(piece), tag_at)
                dy += prefix_targets([piece], [tok.encode(want, add_special_tokens=False) if want else []])[0]
        out.append((ids, pos, [int(x) for x in labels], dpos, dy))
    return out


def line_rows(problems, rng: random.Random) -> list[tuple[str, list[str], list[bool]]]:
    """Stage 0: every line "a op b = c" of each problem's reference solution on its own, the result
    slipped (hard_negatives.slip) at rate 1/2; (question, [line], [label]) with an empty question."""
    from scripts.train_demo.hard_negatives import slip

    rows = []
    for p in problems:
        for a, sym, b, c in solve(p.question):
            bad = rng.random() < 0.5
            rows.append(("", [f"{a} {sym} {b} = {slip(c, rng) if bad else c}"], [not bad]))
    return rows


def encode_lines(tok, rows) -> list[tuple]:
    """`encode` for line_rows: the gold of a line is the line with the right result."""
    golds = []
    for _, (line,), _ in rows:
        a, sym, b, _ = line.split(" ")[:4]
        golds.append([f"{a} {sym} {b} = {apply_op(int(a), sym, int(b))}"])
    return encode(tok, rows, golds)


def pair_logits(model, tok, batch, dense: bool = False):
    """[n_tags, 2] logits (good, bad) at every tag position of the batch, and the 0/1 targets; with
    `dense`, also the same pair at every step character and its prefix targets."""
    good, bad = tok.convert_tokens_to_ids(GOOD), tok.convert_tokens_to_ids(BAD)
    width = max(len(row[0]) for row in batch)
    ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, ys, drows, dcols, dys = [], [], [], [], [], []
    for i, (x, pos, y, *rest) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        rows += [i] * len(pos)
        cols += pos
        ys += y
        if dense and rest:
            drows += [i] * len(rest[0])
            dcols += rest[0]
            dys += rest[1]
    logits = model(input_ids=ids, attention_mask=mask).logits
    sel = logits[torch.tensor(rows), torch.tensor(cols)][:, [good, bad]]
    if not dense:
        return sel, torch.tensor(ys)
    dsel = logits[torch.tensor(drows, dtype=torch.long), torch.tensor(dcols, dtype=torch.long)][:, [good, bad]]
    return sel, torch.tensor(ys), dsel, torch.tensor(dys, dtype=torch.long)


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


def first_error_auc(model, tok, data) -> float:
    """AUC over the steps up to and including each solution's first wrong one: can the verifier tell
    the slip itself from the right steps (the steps after it only need the slip carried forward)?"""
    scores, ys = step_scores(model, tok, data)
    s, y, k = [], [], 0
    for row in data:
        for lab, x in zip(row[2], scores[k : k + len(row[2])]):
            s.append(x)
            y.append(lab)
            if not lab:
                break
        k += len(row[2])
    return round(auc(np.array(s), np.array(y)), 4)


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


def class_weights(ys: Sequence[int]) -> torch.Tensor:
    """[good, bad] weights, each class weighted by the inverse of its frequency so both count equally."""
    n_good, n_all = sum(ys), len(ys)
    return torch.tensor([n_all / (2 * max(1, n_good)), n_all / (2 * max(1, n_all - n_good))])


def train_prm(
    model,
    tok,
    train,
    steps: int,
    log,
    seed: int = SEED,
    eval_fn: Optional[Callable] = None,
    batch_size: int = BATCH,
    lr: float = LR,
    dense_weight: float = DENSE_WEIGHT,
    name: str = "arith-prm",
    after_step: Optional[Callable] = None,
    decay: bool = True,
) -> dict:
    """Class-balanced 2-way cross-entropy at tag positions plus `dense_weight` times the same at every
    step token (prefix targets); AdamW, warmup + cosine. `after_step(model)` runs after every
    optimiser step (verifier.pin_numbers). `decay=False` keeps the rate flat after warmup (a stage
    that the next one continues from should not end cooled down)."""
    w = class_weights([y for row in train for y in row[2]])
    wd = class_weights([y for row in train for y in row[4]])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order: list[int] = []
    warmup = max(1, min(100, steps // 10))
    model.train()
    t0, losses = time.time(), []
    for step in range(steps):
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)) if decay else 1.0
        rate = lr * min(1.0, (step + 1) / warmup) * cosine
        for g in opt.param_groups:
            g["lr"] = rate
        if len(order) < batch_size:
            order = list(range(len(train)))
            rng.shuffle(order)
        batch = [train[order.pop()] for _ in range(batch_size)]
        pl, y, dl, dy = pair_logits(model, tok, batch, dense=True)
        # column 0 is "good": target class index 0 for good, 1 for bad
        loss = torch.nn.functional.cross_entropy(pl, 1 - y, weight=w)
        if dense_weight and len(dy):
            loss = loss + dense_weight * torch.nn.functional.cross_entropy(dl, 1 - dy, weight=wd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if after_step is not None:
            after_step(model)
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log(f"{name} step {step + 1}/{steps} loss {np.mean(losses[-100:]):.4f} {time.time() - t0:.0f}s")
        if eval_fn and (step + 1) % 500 == 0 and step + 1 < steps:
            model.eval()
            eval_fn(model, step + 1)
            model.train()
    model.eval()
    n_good = sum(sum(row[2]) for row in train)
    n_all = sum(len(row[2]) for row in train)
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
        ns = sorted(res["best_of_n"], key=int)
        lines.append(
            f"  | {name} | "
            + " | ".join(f"{res['best_of_n'][n]:.2f}" for n in ns)
            + " | "
            + " | ".join(f"{res['weighted_majority'][n]:.2f}" for n in ns[-1:])
            + " | "
            + f"{res['majority'][ns[-1]]:.2f} | {res['pass'][ns[-1]]:.2f} |"
        )
    ns = sorted(next(iter(rank.values()))["best_of_n"], key=int) if rank else []
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

A Llama-architecture causal LM trained from scratch by `python -m scripts.train_demo` (scripts/train_demo/train_prm.py)
as a Math-Shepherd-style step PRM for `arith`. It has its own word-level tokenizer, in which every number
0-999 is one token (scripts/train_demo/prm_tokenizer.py), and the first {info.get("features", 0)} dimensions of
each number's embedding hold fixed features of its value (n / 100, log(1 + n), sin and cos of 2 pi n / T;
scripts/train_demo/verifier.py), so a line "a op b = c" can be checked from the values, not digit by digit.

- Use it with the `step_tag` PRM family: tag " ки", good "+", bad "-". Input layout
  (reward_models/base.py `step_tag_text`): "{{question}} {{step 1}} ки\\n{{step 2}} ки...";
  the score of step k = softmax([logit(+), logit(-)])[0] at the k-th tag token.
- Architecture: LlamaForCausalLM, hidden {info.get("hidden")}, {info.get("layers")} layers, {info.get("heads")} heads,
  MLP {info.get("intermediate")}, tied embeddings, vocabulary {info.get("vocab")}; {info["params"]:,} parameters (fp32 safetensors).
- Targets: at each tag, the step's Math-Shepherd label (`rebase.tasks.arith.check_steps`: good until the
  first wrong step); at every token of a step, through the same two logits, whether the line is still
  right so far given the line before it as written (scripts/train_demo/step_checks.py). Class-balanced
  cross-entropy on both, AdamW, warmup then cosine decay (stage 0: a flat rate), seed {SEED}, one CPU thread.
- Stage 0: {info.get("n_lines", 0)} single lines of training problems, results slipped at rate 1/2,
  {info.get("line_steps", 0)} steps of batch {LINE_BATCH}, flat lr {CHECK_LR}: {info.get("line_train_s", 0)} s
  (held-out line AUC {info.get("line_auc", float("nan")):.3f}).
- Stage 1: {info.get("n_checks", 0)} reference solutions with lines broken at random (rate {SLIP_RATE},
  scripts/train_demo/hard_negatives.py `slipped_steps`) and {info.get("n_check_hard", 0)} with one slip,
  {info.get("check_steps", 0)} steps of batch {BATCH}, lr {CHECK_LR}: {info.get("check_train_s", 0)} s.
- Stage 2: {info["n_train"]} labelled solutions (a seed stream disjoint from evaluation):
  {info["n_sampled"]} sampled from {", ".join(POLICY_NAMES)} at temperatures {", ".join(map(str, TEMPERATURES))}
  and {info["n_hard"]} hard negatives (one step broken the way the policies break them); {info["train_steps_labelled"]}
  labelled steps, {info["good_fraction"]:.1%} good; {info["steps"]} steps of batch {BATCH}, lr {LR}: {info["train_s"]} s
  (plus {info["sample_s"]} s sampling) on the machine that produced these weights.
- Step-label AUC on held-out samples ({info["n_heldout"]} solutions, {HELDOUT_PER_POLICY} per policy at temperature
  {EVAL_TEMPERATURE} on evaluation problems, {info["heldout_steps"]} steps): **{info["auc"]:.3f}**
  (per policy: {per}; after stage 1, before seeing any policy sample: {info.get("auc_after_stage1", float("nan")):.3f}).
- Slip AUC (the wrong step itself against the right steps before it, on 400 held-out problems with one step
  broken on purpose): {info.get("slip_auc", float("nan")):.3f} (after stage 1: {info.get("slip_auc_after_stage1", float("nan")):.3f}).
{table}"""


def train_and_save_prm(out: Path, steps_scale: float, eval_size: int, log) -> dict:
    """Train the verifier in its three stages (module docstring) on data labelled here, with samples
    of the saved policies in `out`; measure AUC and ranking; save to out / "arith-prm"."""
    import itertools

    from scripts.train_demo.artifacts import heldout_problems, save_model
    from scripts.train_demo.hard_negatives import corrupted_rows, slipped_steps
    from scripts.train_demo.prm_tokenizer import build_prm_tokenizer, number_ids, prm_vocab
    from scripts.train_demo.sampling import load
    from scripts.train_demo.verifier import FEATURES, VerifierShape, build_verifier, pin_numbers

    tok = build_prm_tokenizer()
    models = {n: load(out / n) for n in POLICY_NAMES if (out / n).is_dir()}
    frac = min(1.0, steps_scale)

    def n_of(count: int) -> int:
        return max(BATCH, round(count * frac))

    def steps_of(count: int) -> int:
        return max(2, round(count * steps_scale))

    t0 = time.time()
    n_train = n_of(SAMPLES_PER_POLICY)
    n_held = max(8, round(HELDOUT_PER_POLICY * frac))
    streams = {n: training_problems(SEED * 10 + k) for k, n in enumerate(POLICY_NAMES)}
    train_rows = sample_labelled(models, tok, lambda n: [next(streams[n]) for _ in range(n_train)], SEED, log)
    hard = corrupted_rows(itertools.islice(training_problems(SEED * 10 + 9), n_of(HARD_NEGATIVES)), SEED)
    held = heldout_problems(max(eval_size, n_held))
    held_rows = sample_labelled(models, tok, lambda n: held[:n_held], SEED + 100, log, (EVAL_TEMPERATURE,))
    sample_s = round(time.time() - t0, 1)
    train = encode(tok, train_rows) + encode(tok, hard)
    heldout = encode(tok, held_rows)
    by_policy = {n: encode(tok, [r for r in held_rows if r[3] == n]) for n in models}

    # slips made on purpose in problems no training stream holds: is the slip itself caught?
    held_hard = encode(tok, corrupted_rows(itertools.islice(training_problems(SEED * 10 + 7), 400), SEED + 1))

    def probe(model, step):
        auc_h, auc_s = step_auc(model, tok, heldout), first_error_auc(model, tok, held_hard)
        log(f"arith-prm step {step}: held-out AUC {auc_h:.4f}, held-out slip AUC {auc_s}")

    shape = VerifierShape()
    prm, feats = build_verifier(len(tok), number_ids(prm_vocab()), shape, seed=SEED)

    def pin(model):
        pin_numbers(model, feats)

    rng = random.Random(f"lines/{SEED}")
    lines = encode_lines(tok, line_rows(itertools.islice(training_problems(SEED * 10 + 6), n_of(LINE_PROBLEMS)), rng))
    cut = min(3000, len(lines) // 10)  # held-out lines (problems no other stage draws)
    held_lines, lines = lines[:cut], lines[cut:]
    stage0 = train_prm(
        prm,
        tok,
        lines,
        steps_of(LINE_STEPS),
        log,
        batch_size=LINE_BATCH,
        lr=CHECK_LR,
        name="arith-prm lines",
        after_step=pin,
        decay=False,
    )
    line_auc = round(step_auc(prm, tok, held_lines), 4)
    log(f"arith-prm: after stage 0: held-out line AUC {line_auc}")
    rng = random.Random(f"slips/{SEED}")
    checks = [
        (p.question, st, check_steps(p.question, st))
        for p in itertools.islice(training_problems(SEED * 10 + 8), n_of(SLIP_PROBLEMS))
        if (st := slipped_steps(p, rng, SLIP_RATE))
    ]
    check_hard = corrupted_rows(itertools.islice(training_problems(SEED * 10 + 5), n_of(CHECK_HARD)), SEED + 2)
    stage1 = train_prm(
        prm,
        tok,
        encode(tok, checks) + encode(tok, check_hard),
        steps_of(CHECK_STEPS),
        log,
        lr=CHECK_LR,
        eval_fn=probe,
        name="arith-prm checks",
        after_step=pin,
    )
    slip_auc = first_error_auc(prm, tok, held_hard)
    auc_stage1 = round(step_auc(prm, tok, heldout), 4)
    log(f"arith-prm: after stage 1: held-out slip AUC {slip_auc}, step AUC {auc_stage1}")
    info = train_prm(prm, tok, train, steps_of(STEPS), log, eval_fn=probe, after_step=pin)
    info.update(
        line_steps=stage0["steps"],
        line_train_s=stage0["train_s"],
        n_lines=len(lines),
        line_auc=line_auc,
        check_steps=stage1["steps"],
        check_train_s=stage1["train_s"],
        n_checks=len(checks),
        n_check_hard=len(check_hard),
        slip_auc_after_stage1=slip_auc,
        auc_after_stage1=auc_stage1,
        slip_auc=first_error_auc(prm, tok, held_hard),
        features=FEATURES,
        hidden=shape.hidden,
        layers=shape.layers,
        heads=shape.heads,
        intermediate=shape.intermediate,
        vocab=len(tok),
    )
    info.update(
        params=sum(p.numel() for p in prm.parameters()),
        auc=round(step_auc(prm, tok, heldout), 4),
        auc_per_policy={n: round(step_auc(prm, tok, d), 4) for n, d in by_policy.items()},
        n_train=len(train),
        n_sampled=len(train_rows),
        n_hard=len(hard),
        n_heldout=len(heldout),
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
