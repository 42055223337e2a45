"""Sampling the demo policies for the model cards and the PRM's data, through the project's own
transformers backend and the arith prompt format the evaluator uses.

Why: a training script with its own decode loop and its own copy of the prompt layout can drift
from what `rebase run` measures; here the cards' accuracies and the PRM's training samples come
from exactly the code path and prompt a sweep uses (rebase/backends/hf.py, rebase/tasks/prompts.py).

    texts = solutions(Path("rebase/demo/models/arith-m"), questions, temperature=0.7, seed=3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rebase.backends.hf import TransformersGenerator
from rebase.model_config import TransformersModel
from rebase.tasks.prompts import PromptFormat
from rebase.types import GenerationRequest, Problem

MAX_NEW_TOKENS = 160  # a level-5 reference solution is ~130 characters
CHUNK = 2048  # requests per generate call (bounds the result lists held at once)


def prompt_text(question: str) -> str:
    """The arith prompt exactly as a sweep renders it (the `plain` style)."""
    return PromptFormat.from_config("arith").render(Problem(id="", question=question, gold="", dataset="arith"))


def load(model_dir: Path) -> TransformersGenerator:
    # no prefix store: every prompt here is new, keeping KV states would only cost memory
    return TransformersGenerator(TransformersModel(name=Path(model_dir).name, path=str(model_dir), prefix_reuse=False))


def solutions(
    model_dir: Path | TransformersGenerator,
    questions: Sequence[str],
    temperature: float = 0.0,
    seed: int = 0,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[str]:
    """One completion per question (greedy at temperature 0). Request i has seed (seed, i), so the
    same call gives the same samples whatever the batching."""
    gen = model_dir if isinstance(model_dir, TransformersGenerator) else load(model_dir)
    fmt = PromptFormat.from_config("arith")
    out: list[str] = []
    for s in range(0, len(questions), CHUNK):
        reqs = [
            GenerationRequest(
                prompt=prompt_text(q),
                n=1,
                temperature=temperature,
                max_tokens=max_new_tokens,
                stop=fmt.solution_stops,
                seed=seed * 1_000_003 + s + i,
            )
            for i, q in enumerate(questions[s : s + CHUNK])
        ]
        out += [c[0].text for c in gen.generate(reqs)]
    return out
