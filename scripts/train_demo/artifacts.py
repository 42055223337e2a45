"""What the policy and PRM trainers share: the held-out evaluation problems and how a trained model
is saved (weights, tokenizer, train_info.json, MODEL_CARD.md)."""

from __future__ import annotations

import json
from pathlib import Path


def heldout_problems(n: int):
    """The first n evaluation problems (seed 0, levels 1-5 in turn): never seen in training."""
    from rebase.tasks.arith import LEVELS, make_problem

    return [make_problem(0, i, LEVELS[i % len(LEVELS)]) for i in range(n)]


def save_model(model, tok, out: Path, info: dict, card: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
