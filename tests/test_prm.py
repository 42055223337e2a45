"""Tests of the four PRM families (reward_models/) on tiny random local models.

Each family must return exactly one finite score in (0, 1) per step, deterministically, the same
batched as one by one and in request order; step_tag must equal a hand computation from the
model's logits; bad tags/labels are BadInput naming the key; NaN logits and count mismatches are a
PRMError naming the request's tag, or the default score with `on_error: default`.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_prm.py
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from rebase.config import PRMConfig
from rebase.errors import BadInput, PRMError
from rebase.registry import PRM_FAMILIES
from reward_models.base import PRM, ScoreRequest, step_tag_text
from reward_models.common import length_buckets

# family -> (fixture model, extra config); the tiny tokenizer has no single-token "Yes"/"No"
FAMILIES = {
    "step_tag": ("prm_llama", {"tag": " ки", "good": "+", "bad": "-"}),
    "mean_logit": ("prm_llama", {"tag": " ки"}),
    "token_classify": ("tokclf", {}),
    "judge": ("llama", {"good": "Y", "bad": "N"}),
}


def make(tiny_dir, family, **over):
    model, extra = FAMILIES[family]
    cfg = PRMConfig(**{"family": family, "path": str(tiny_dir / model), **extra, **over})
    return PRM_FAMILIES.get(cfg.family)(cfg)


@pytest.fixture(scope="module")
def prms(tiny_dir):
    return {f: make(tiny_dir, f) for f in FAMILIES}


def round_of_requests():
    """Paths of very different lengths from several problems, as one search round sends them."""
    return [
        ScoreRequest("What is 2 + 3?", ["Start with 2.", "Add 3. The answer is 5."], tag="problem a node 1"),
        ScoreRequest(
            "Start with 17. " * 12 + "What is the result?",
            [f"Step {i}: add {i} to get {17 + i}." for i in range(9)],
            tag="problem b node 4",
        ),
        ScoreRequest("Tiny?", ["Yes."], tag="problem c node 2"),
        ScoreRequest("What is 9 * 9?", ["9 * 9 = 81.", "The answer is 81.", "Done."], tag="problem a node 3"),
    ]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_registry_construction_and_protocol(prms, family, tiny_dir):
    prm = prms[family]
    assert isinstance(prm, PRM)
    assert prm.role == ("judge" if family == "judge" else "prm")
    assert prm.name == str(tiny_dir / FAMILIES[family][0])
    assert prm.flop_spec.n_params == sum(p.numel() for p in prm.model.parameters())
    assert prm.flop_spec.n_layer == prm.model.config.num_hidden_layers


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_score_per_step_deterministic_batched_equals_single(prms, family):
    prm = prms[family]
    reqs = round_of_requests()
    first = prm.score(reqs)
    assert [len(r.scores) for r in first] == [len(q.steps) for q in reqs]
    for r in first:
        assert all(0.0 < s < 1.0 and math.isfinite(s) for s in r.scores)
        assert r.prompt_tokens > 0
    assert [r.scores for r in prm.score(reqs)] == [r.scores for r in first]
    single = [prm.score([q])[0] for q in reqs]
    for a, b in zip(first, single):
        assert a.prompt_tokens == b.prompt_tokens
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    # results follow request order, not the length-sorted batch order
    rev = prm.score(reqs[::-1])
    for a, b in zip(first[::-1], rev):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    # scores differ between paths: the model really read each one
    assert len({round(r.scores[0], 6) for r in first}) > 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_small_batches_give_the_same_scores(tiny_dir, prms, family):
    reqs = round_of_requests()
    small = make(tiny_dir, family, batch_tokens=64)  # forces one path (or prompt) per batch
    for a, b in zip(prms[family].score(reqs), small.score(reqs)):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_step_tag_matches_hand_computation(prms):
    prm = prms["step_tag"]
    tok, model = prm.tok, prm.model
    req = round_of_requests()[3]
    ids = tok(step_tag_text(req.question, req.steps, " ки"))["input_ids"]
    tag_id = tok.convert_tokens_to_ids(" ки")
    good, bad = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    want = []
    for p, t in enumerate(ids):
        if t == tag_id:
            g, b = logits[p, good].item(), logits[p, bad].item()
            want.append(math.exp(g) / (math.exp(g) + math.exp(b)))
    assert len(want) == 3
    got = prm.score([req])[0]
    assert got.scores == pytest.approx(want, abs=1e-5)
    assert got.prompt_tokens == len(ids)


def test_mean_logit_matches_hand_computation(prms):
    prm = prms["mean_logit"]
    req = round_of_requests()[0]
    ids = prm.tok(step_tag_text(req.question, req.steps, " ки"))["input_ids"]
    tag_id = prm.tok.convert_tokens_to_ids(" ки")
    with torch.no_grad():
        logits = prm.model(torch.tensor([ids])).logits[0]
    want = [torch.sigmoid(logits[p].mean()).item() for p, t in enumerate(ids) if t == tag_id]
    assert prm.score([req])[0].scores == pytest.approx(want, abs=1e-5)


def test_token_classify_reads_the_separator_with_the_positive_label(prms, tiny_dir):
    prm = prms["token_classify"]
    req = round_of_requests()[0]
    text = prm.text(req.question, req.steps)
    assert "<|im_start|>system\nPlease reason step by step" in text
    assert text.count("<extra_0>") == 2
    ids = prm.tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = prm.model(torch.tensor([ids])).logits[0]
    sep = prm.tok.convert_tokens_to_ids("<extra_0>")
    want = [logits[p].softmax(-1)[1].item() for p, t in enumerate(ids) if t == sep]
    assert prm.score([req])[0].scores == pytest.approx(want, abs=1e-5)
    neg = make(tiny_dir, "token_classify", positive_label=0).score([req])[0].scores
    assert [a + b for a, b in zip(want, neg)] == pytest.approx([1.0, 1.0], abs=1e-5)
    plain = make(tiny_dir, "token_classify", chat_template=False)
    assert plain.text("Q?", ["a", "b"]) == "Q?\na<extra_0>b<extra_0>"
    assert len(plain.score([req])[0].scores) == 2


def test_judge_asks_one_prompt_per_step(prms):
    prm = prms["judge"]
    req = round_of_requests()[3]
    p = prm.prompt(req.question, req.steps, 1)
    assert "Step 1: 9 * 9 = 81." in p and "New step:\nThe answer is 81." in p and "Done." not in p
    assert p.endswith("<|im_start|>assistant\n")
    res = prm.score([req])[0]
    assert res.prompt_tokens == sum(
        len(prm.tok(prm.prompt(req.question, req.steps, k), add_special_tokens=False)["input_ids"]) for k in range(3)
    )
    ids = prm.tok(prm.prompt(req.question, req.steps, 2), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        last = prm.model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    py, pn = last[prm.good_ids].sum().item(), last[prm.bad_ids].sum().item()
    assert res.scores[2] == pytest.approx(py / (py + pn), abs=1e-5)


@pytest.mark.parametrize(
    "key,value,family",
    [
        ("tag", " ки x", "step_tag"),
        ("good", "++ +", "step_tag"),
        ("tag", "Start with", "mean_logit"),
        ("separator", "<extra_0><extra_0>", "token_classify"),
        ("good", "Yes", "judge"),
        ("bad", "No", "judge"),
    ],
)
def test_multi_token_marker_or_label_is_bad_input(tiny_dir, key, value, family):
    with pytest.raises(BadInput, match=rf"^prm\.{key}: .*{re.escape(repr(value))}"):
        make(tiny_dir, family, **{key: value})


def test_bad_paths_and_heads_are_bad_input(tiny_dir):
    with pytest.raises(BadInput, match="^prm.path: .*does not exist"):
        PRM_FAMILIES.get("step_tag")(PRMConfig(family="step_tag", path=str(tiny_dir / "nope")))
    with pytest.raises(BadInput, match="^prm.path: .*no trained weights"):  # a causal LM has no 2-label head
        make(tiny_dir, "token_classify", path=str(tiny_dir / "prm_llama"))
    with pytest.raises(BadInput, match="^prm.positive_label"):
        make(tiny_dir, "token_classify", positive_label=2)


def test_tag_inside_step_text_does_not_add_a_score(prms):
    req = ScoreRequest("What ки is 2 + 3?", ["Start ки with 2. ки", "Add 3 ки"], tag="p")
    for family in ("step_tag", "mean_logit"):
        assert len(prms[family].score([req])[0].scores) == 2
    req = ScoreRequest("Q<extra_0>?", ["a<extra_0>b", "c"], tag="p")
    assert len(prms["token_classify"].score([req])[0].scores) == 2


def _nan_forward(model, monkeypatch, only_first=False):
    """NaN logits from the output head (which runs at the read positions only): all of them, or
    the first read position's row of a single-path call."""
    from reward_models._hf import output_head

    head = output_head(model)
    assert head is not None  # the tiny models' heads are plain Linear layers
    orig = head.forward

    def forward(x):
        out = orig(x)
        if only_first:
            out[0] = float("nan")
        else:
            out.fill_(float("nan"))
        return out

    monkeypatch.setattr(head, "forward", forward)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_nan_logits_raise_or_default(tiny_dir, family, monkeypatch):
    reqs = round_of_requests()[:2]
    prm = make(tiny_dir, family)
    _nan_forward(prm.model, monkeypatch)
    with pytest.raises(PRMError, match="^problem (a node 1|b node 4): .*non-finite"):
        prm.score(reqs)
    soft = make(tiny_dir, family, on_error="default", default_score=0.25)
    _nan_forward(soft.model, monkeypatch)
    assert [r.scores for r in soft.score(reqs)] == [[0.25] * len(q.steps) for q in reqs]


def test_only_the_bad_step_gets_the_default(tiny_dir, monkeypatch):
    # no KV reuse: the second call must run the (patched) model, not return the stored scores
    prm = make(tiny_dir, "step_tag", on_error="default", default_score=-1.0, kv_reuse=False)
    req = round_of_requests()[3]
    clean = prm.score([req])[0].scores
    _nan_forward(prm.model, monkeypatch, only_first=True)
    got = prm.score([req])[0].scores
    assert got[0] == -1.0 and got[1:] == pytest.approx(clean[1:], abs=1e-5)


def test_count_mismatch_from_truncation_raises_or_defaults(tiny_dir):
    req = ScoreRequest(
        "A question. " * 10, ["first step.", "second step.", "third step."], tag="problem gsm8k-3 node 12"
    )
    prm = make(tiny_dir, "step_tag")
    prm.max_length = 12  # the first tags fall off the left end
    with pytest.raises(PRMError, match=r"^problem gsm8k-3 node 12: PRM gave [0-2] scores for 3 steps"):
        prm.score([req])
    soft = make(tiny_dir, "step_tag", on_error="default", default_score=0.5)
    soft.max_length = 12
    res = soft.score([req])[0]
    assert len(res.scores) == 3 and res.scores[0] == 0.5 and res.prompt_tokens == 12
    assert 0 < res.scores[-1] < 1 and res.scores[-1] != 0.5  # the surviving tag is still read


def test_empty_round_and_empty_path(prms):
    for prm in prms.values():
        assert prm.score([]) == []
        res = prm.score([ScoreRequest("Q?", [], tag="p")])[0]
        assert res.scores == [] and res.prompt_tokens == 0


def test_length_buckets_respect_the_token_budget():
    lengths = [5, 300, 40, 41, 7, 120, 2]
    batches = length_buckets(lengths, 100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100
    assert batches[0] == [1]  # the long path alone, first
