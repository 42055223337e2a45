"""Prompt formats: how a problem becomes a prompt, what separates steps, what marks the answer.

Each dataset's task (rebase/tasks/base.py) gives the defaults: style, step delimiter and answer
marker (GSM8K and arith: one step per line, "The answer is N"; MATH, AIME, AMC: steps separated by
a blank line, answer in \\boxed{}; arith: the bare "plain" prompt its demo models were trained on),
and every field can be set under `prompt:` in YAML.
With a chat model (a tokenizer with a chat template) the instruction goes in a user turn; otherwise
a plain "Question: ... Answer:" text, optionally with few-shot exemplars, is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rebase.config import PromptConfig
from rebase.tasks.base import DEFAULT, find_task
from rebase.types import Problem

_INSTRUCTIONS = {
    "The answer is": (
        "Solve the following math problem step by step. Write each step on its own line. "
        'End with a line of the form "The answer is N".'
    ),
    "\\boxed": (
        "Solve the following math problem step by step. Separate the steps with blank lines. "
        "Put the final answer in \\boxed{}."
    ),
}

# Exemplars written for this project (not taken from any benchmark split).
_SHOTS = [
    (
        "Tom has 3 boxes with 12 pencils each. He gives away 7 pencils. How many pencils does he have left?",
        ["Tom starts with 3 * 12 = 36 pencils.", "After giving away 7 he has 36 - 7 = 29 pencils."],
        "29",
    ),
    (
        "A train travels 60 km per hour for 2.5 hours. How far does it go?",
        ["Distance is speed times time.", "60 * 2.5 = 150 km."],
        "150",
    ),
    (
        "What is the sum of the first 5 positive odd numbers?",
        ["The first 5 odd numbers are 1, 3, 5, 7, 9.", "Their sum is 1 + 3 + 5 + 7 + 9 = 25."],
        "25",
    ),
    ("Solve for x: 2x + 6 = 20.", ["Subtract 6 from both sides: 2x = 14.", "Divide by 2: x = 7."], "7"),
]


@dataclass
class PromptFormat:
    dataset: str
    style: str = "instruction"
    step_delimiter: str = "\n"
    answer_marker: str = "The answer is"
    instruction: Optional[str] = None
    system: Optional[str] = None
    chat_template: Optional[bool] = None
    n_shots: int = 4

    @classmethod
    def from_config(cls, dataset: str, cfg: Optional[PromptConfig] = None) -> "PromptFormat":
        cfg = cfg or PromptConfig()
        task = find_task(dataset) or DEFAULT
        return cls(
            dataset=dataset,
            style=cfg.style or task.style,
            step_delimiter=cfg.step_delimiter if cfg.step_delimiter is not None else task.step_delimiter,
            answer_marker=cfg.answer_marker or task.answer_marker,
            instruction=cfg.instruction,
            system=cfg.system,
            chat_template=cfg.chat_template,
            n_shots=cfg.n_shots,
        )

    def _finish(self, answer: str) -> str:
        return f"\\boxed{{{answer}}}" if self.answer_marker == "\\boxed" else f"{self.answer_marker} {answer}."

    def _plain(self, problem: Problem) -> str:
        if self.style == "plain":
            return f"Question: {problem.question}\nAnswer:\n"
        parts = []
        if self.style == "few_shot":
            for q, steps, ans in _SHOTS[: self.n_shots]:
                sol = self.step_delimiter.join(steps + [self._finish(ans)])
                parts.append(f"Question: {q}\nAnswer:\n{sol}\n\n")
        head = self.instruction or _INSTRUCTIONS.get(self.answer_marker, _INSTRUCTIONS["The answer is"])
        if "{question}" in head:
            return "".join(parts) + head.format(question=problem.question) + "\nAnswer:\n"
        return (
            "".join(parts)
            + (head + "\n\n" if self.style != "few_shot" else "")
            + f"Question: {problem.question}\nAnswer:\n"
        )

    def render(self, problem: Problem, generator: Any = None) -> str:
        """The prompt text for `problem`; uses the model's chat template unless turned off."""
        if self.chat_template is not False and self.style != "plain" and generator is not None:
            head = self.instruction or _INSTRUCTIONS.get(self.answer_marker, _INSTRUCTIONS["The answer is"])
            user = head.format(question=problem.question) if "{question}" in head else f"{head}\n\n{problem.question}"
            chat = generator.render_chat(user, self.system)
            if chat is not None:
                return chat
            if self.chat_template is True:
                raise ValueError(f"model {generator.name} has no chat template but prompt.chat_template is true")
        return self._plain(problem)

    @property
    def solution_stops(self) -> tuple[str, ...]:
        """Stop strings for a whole-solution sample: plain and few-shot prompts invite a base model
        to write the next "Question:" after its answer, so that ends a solution."""
        return ("\nQuestion:",) if self.style in ("plain", "few_shot") else ()

    def is_final(self, step: str) -> bool:
        """Whether a step gives the final answer (the solution is then finished)."""
        if self.answer_marker == "\\boxed":
            return "\\boxed{" in step
        return self.answer_marker.lower() in step.lower()

    def answer_complete(self, text: str) -> bool:
        """Whether `text` holds a whole answer, wherever it was cut: a closed \\boxed{...}, or the
        answer marker followed later by the end of its line (the step delimiter). Used when steps
        are cut by token count, so "The answer is 1" of "12" does not count as finished."""
        if self.answer_marker == "\\boxed":
            start = text.find("\\boxed{")
            if start < 0:
                return False
            depth = 0
            for ch in text[start + len("\\boxed") :]:
                depth += (ch == "{") - (ch == "}")
                if depth == 0:
                    return True
            return False
        at = text.lower().find(self.answer_marker.lower())
        if at < 0:
            return False
        rest = text[at + len(self.answer_marker) :]
        return self.step_delimiter in rest and bool(rest.split(self.step_delimiter, 1)[0].strip())

    def split_steps(self, text: str) -> list[str]:
        """Steps of a full solution: split on the delimiter, dropping empty pieces."""
        return [s for s in text.split(self.step_delimiter) if s.strip()]

    def truncate_after_answer(self, text: str) -> str:
        """Cut a full-solution sample after the step that gives the answer (models often ramble)."""
        steps = text.split(self.step_delimiter)
        for i, s in enumerate(steps):
            if self.is_final(s):
                return self.step_delimiter.join(steps[: i + 1])
        return text
