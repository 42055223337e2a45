"""Cross-entry checks of a config that pydantic cannot express field by field.

Why: two strategy entries whose records would share a key (strategy, aggregator, budget) would
overwrite each other's records and tree files, and a template placeholder that is misspelt or not
fillable only fails (or silently stays in the prompt) once the run has started. Both are found here
at load time, as one-line BadInput errors naming the key. Called by rebase/config.py.

    check_collisions("c.yaml", cfg); check_templates("c.yaml", cfg)
"""

from __future__ import annotations

import re
from typing import Any

from rebase.errors import BadInput
from rebase.names import check_unique


def strategy_label(entry: Any) -> str:
    """The `strategy` field of the entry's records (and part of its tree file names)."""
    return entry.label or entry.name


def check_collisions(source: str, cfg: Any) -> None:
    """Two entries whose records would share a key (strategy, aggregator, budget) would overwrite
    each other's records and trees: refuse, and say how to tell them apart."""
    from rebase.registry import STRATEGIES

    check_unique(
        source, ((f"strategies.{i}.label", s.label) for i, s in enumerate(cfg.strategies) if s.label), "strategy label"
    )
    owner: dict[tuple, int] = {}
    for i, s in enumerate(cfg.strategies):
        aggs = s.aggregators or [s.aggregator or STRATEGIES.get(s.name).default_aggregator]
        if len(set(aggs)) != len(aggs):
            raise BadInput(f"{source}: strategies.{i}.aggregators: an aggregator is listed twice")
        for a in aggs:
            for b in s.budgets:
                key = (strategy_label(s).casefold(), a, b)
                if key in owner:
                    raise BadInput(
                        f"{source}: strategies.{i}: its records ({strategy_label(s)}, {a}, budget {b}) "
                        f"collide with those of strategies.{owner[key]}; give one a distinct 'label'"
                    )
                owner[key] = i


# the placeholders each template may use; `{name}` right after a letter, digit, \, ^, _, { or } is a
# LaTeX argument (\boxed{answer}, x^{2}, \frac{a}{b}) or an escaped brace, not a placeholder
TEMPLATE_FIELDS = {
    "prompt.instruction": ("question",),
    "prm.judge_prompt": ("question", "steps", "step", "good", "bad"),
}
_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9\\^_{}]){([A-Za-z_][A-Za-z0-9_]*)}")


def check_templates(source: str, cfg: Any) -> None:
    import string

    texts = {
        "prompt.instruction": cfg.prompt.instruction,
        "prm.judge_prompt": cfg.prm.judge_prompt if cfg.prm else None,
    }
    for key, text in texts.items():
        if text is None:
            continue
        allowed = TEMPLATE_FIELDS[key]
        used = set(_PLACEHOLDER.findall(text))
        if key == "prompt.instruction" and "{question}" in text:
            # filled with str.format: every brace must be {question} or an escaped {{ }}
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as e:
                raise BadInput(
                    f"{source}: {key}: not a valid template ({e}); write {{{{ and }}}} for literal braces"
                ) from None
        if key == "prm.judge_prompt" and "{step}" not in text:
            raise BadInput(f"{source}: {key}: must contain the {{step}} placeholder")
        unknown = sorted(u for u in used if u not in allowed)
        if unknown:
            raise BadInput(
                f"{source}: {key}: unknown placeholder {{{unknown[0]}}}; allowed: "
                + ", ".join(f"{{{a}}}" for a in allowed)
            )
