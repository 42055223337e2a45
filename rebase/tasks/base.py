"""The Task interface: everything the system knows about one dataset, in one registered object.

Why: a dataset's rules (where its rows come from, how a row becomes a Problem, the prompt layout a
model is asked to follow, how an answer is pulled out of a solution, graded and grouped for voting)
belong together, as in lm-evaluation-harness; spread over loaders, grading and prompt tables, a new
dataset had to be taught to three modules. A task is one class in one file, registered under the
name configs use:

    from rebase.registry import DATASETS
    from rebase.tasks.base import MathTask
    from rebase.tasks.sources import required
    from rebase.types import Problem

    @DATASETS.register("my_olympiad")
    class MyOlympiad(MathTask):
        '''My olympiad problems (`path:` JSONL with problem/answer), boxed integer answers.'''

        name = "my_olympiad"
        hub = "me/my_olympiad"           # optional: the hub copy when dataset.path is not set

        def problems(self, rows):
            return [Problem(id=f"olym-{i}", question=str(required(r, "problem")),
                            gold=str(required(r, "answer")), dataset=self.name) for i, r in enumerate(rows)]

Built-in tasks live in rebase/tasks/ (gsm8k.py, hendrycks_math.py, aime.py, amc.py, arith.py);
third-party ones register the same way from a `rebase.plugins` entry point (rebase/plugins.py).
A bare loader function registered as a dataset (`cfg -> list[Problem]`) still works: it becomes a
Task with the defaults below (LaTeX answer rules, one step per line, "The answer is").

The answer rules come from rebase/tasks/rules.py: `NumericTask` (numbers, "The answer is N") and
`MathTask` (\\boxed{} answers, steps separated by blank lines, math-verify grading).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Optional

from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks.rules import extract_boxed, extract_numeric, grade_latex, grade_numeric, latex_answer_key, numeric_key
from rebase.tasks.sources import Row, hub_rows, read_jsonl
from rebase.types import Problem


class Task:
    """One dataset: its rows, its problems, its prompt defaults and its answer rules."""

    name: ClassVar[str] = ""
    # rows: dataset.path (a local JSONL file) when set, else this hub copy
    hub: ClassVar[Optional[str]] = None
    hub_configs: ClassVar[tuple[Optional[str], ...]] = (None,)  # concatenated in this order
    hub_splits: ClassVar[Mapping[str, str]] = {}  # dataset.split -> the hub copy's name for it
    # prompt defaults (rebase/tasks/prompts.py); any of them can be set under `prompt:` in a config
    style: ClassVar[str] = "instruction"  # instruction | few_shot | plain
    step_delimiter: ClassVar[str] = "\n"
    answer_marker: ClassVar[str] = "The answer is"

    def __init__(self, name: Optional[str] = None):
        self.name = name or type(self).name  # type: ignore[misc]

    def load(self, cfg: Any) -> list[Problem]:
        """Every problem of the configured source (DatasetConfig), before levels / sample / limit."""
        return self.problems(self.rows(cfg))

    def rows(self, cfg: Any) -> list[Row]:
        if cfg.path:
            return read_jsonl(cfg.path)
        if not self.hub:
            raise BadInput(f"dataset '{self.name}' has no hub copy; set dataset.path to a local JSONL file")
        return hub_rows(self.hub, self.hub_configs, self.hub_splits.get(cfg.split, cfg.split))

    def problems(self, rows: list[Row]) -> list[Problem]:
        """Rows -> problems with stable ids and extracted golds; BadInput naming the row on bad data."""
        raise NotImplementedError(f"task '{self.name}' defines neither load() nor problems()")

    def extract_answer(self, text: str) -> Optional[str]:
        """The final answer written in a solution, or None (then the candidate never wins a vote)."""
        return extract_boxed(text)

    def grade(self, answer: Optional[str], gold: str) -> bool:
        """Whether an extracted answer matches the gold one; never raises."""
        return grade_latex(answer, gold)

    def answer_key(self, answer: Optional[str]) -> str:
        """The canonical string equivalent answers share (the vote groups); None -> ""."""
        return latex_answer_key(answer)


class NumericTask(Task):
    """Numeric answers: "The answer is N", one step per line, numbers compared exactly."""

    def extract_answer(self, text: str) -> Optional[str]:
        return extract_numeric(text)

    def grade(self, answer: Optional[str], gold: str) -> bool:
        return grade_numeric(answer, gold)

    def answer_key(self, answer: Optional[str]) -> str:
        return numeric_key(answer)


class MathTask(Task):
    """Competition-math answers: \\boxed{...}, steps separated by blank lines, graded with math-verify."""

    step_delimiter = "\n\n"
    answer_marker = "\\boxed"


class LoaderTask(Task):
    """A bare loader function registered as a dataset, with the Task defaults for everything else."""

    def __init__(self, name: str, loader: Callable[[Any], list[Problem]]):
        super().__init__(name)
        self.loader = loader

    def load(self, cfg: Any) -> list[Problem]:
        return list(self.loader(cfg))


_made: dict[tuple[Any, str], Task] = {}  # one instance per registered object and name


def as_task(obj: Any, name: str) -> Task:
    """The Task a DATASETS entry stands for: a Task, a Task class, or a loader function."""
    if isinstance(obj, Task):
        return obj
    key = (obj, name)
    if key not in _made:
        if isinstance(obj, type) and issubclass(obj, Task):
            _made[key] = obj(name)
        elif callable(obj):
            _made[key] = LoaderTask(name, obj)
        else:
            raise BadInput(f"dataset '{name}' is registered as {obj!r}, which is neither a Task nor a loader function")
    return _made[key]


def task_of(name: str) -> Task:
    """The registered task `name`; BadInput with suggestions when there is none."""
    return as_task(DATASETS.get(name), name)


def find_task(name: str) -> Optional[Task]:
    """The registered task `name`, or None (answers of an unregistered dataset get the defaults)."""
    return task_of(name) if isinstance(name, str) and name in DATASETS else None


DEFAULT = Task("")  # the rules and prompt defaults of a dataset no task describes
