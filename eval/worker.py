"""A worker runs search units on batches of problems for one policy model and turns the results
into records and tree lines. The single-process runner and each Ray actor hold one.

Failure isolation: when a batch raises a fault (a RunFailure such as a backend error or a PRM NaN,
an OS-level or out-of-memory error), each of its problems is retried alone, so one bad problem
cannot take its batch down with it; a problem that still fails is recorded with `error` set
(correct 0) and the rest of the sweep goes on. Any other exception (TypeError, KeyError, ...) is a
bug: it is not retried, and SearchBug stops the sweep. Every failure's full traceback goes to
DIR/errors.log; stderr keeps its one line.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Optional

from rebase.config import ModelConfig, RunConfig
from rebase.errors import BadInput, RunFailure, SearchBug, is_fault
from rebase.registry import STRATEGIES
from rebase.types import Problem, SearchResult
from eval.engines import Engines
from eval.plan import Output, Unit
from eval.records import COST_FIELDS, problem_hash
from rebase.tasks.prompts import PromptFormat
from strategies.aggregators import aggregate
from strategies.base import SearchContext


class Worker:
    """Runs units for one policy model on the engines it is given (it never closes them: the
    Engines' owner does)."""

    def __init__(self, cfg: RunConfig, model: ModelConfig, engines: Engines, errors_log: Optional[Path] = None):
        self.cfg = cfg
        self.model = model
        self.engines = engines
        self.prompts = PromptFormat.from_config(cfg.dataset.name, cfg.prompt)
        self.errors_log = errors_log  # DIR/errors.log: full tracebacks of every failure

    @property
    def generator(self) -> Any:
        return self.engines.generator(self.model)

    def prm(self) -> Optional[Any]:
        return self.engines.prm()

    # -- running ---------------------------------------------------------------------------------
    def _context(self, unit: Unit) -> SearchContext:
        sampling = self.cfg.sampling
        if unit.temperature is not None:
            sampling = sampling.model_copy(update={"temperature": unit.temperature})
        return SearchContext(
            generator=self.generator,
            prm=self.prm() if unit.needs_prm else None,
            prompts=self.prompts,
            sampling=sampling,
            seed=unit.seed,
            dataset=self.cfg.dataset.name,
            include_truncated=self.cfg.include_truncated,
        )

    def _search(self, unit: Unit, problems: list[Problem]) -> list[SearchResult]:
        strategy = STRATEGIES.get(unit.strategy)(**unit.options)
        try:  # the engines load here the first time: a model that cannot load is a fault, not a bug
            ctx = self._context(unit)
        except (BadInput, RunFailure):
            raise
        except Exception as e:  # noqa: BLE001 - any load error, named with the model
            raise RunFailure(f"model '{self.model.name}' could not be loaded: {type(e).__name__}: {e}") from e
        # PRM reads are reused within one search only: a unit pays for the PRM tokens it reads whatever
        # ran before it, so records do not depend on unit order or on how a sweep is sharded over workers
        forget = getattr(getattr(ctx.prm, "scorer", None), "forget", None)
        if forget is not None:
            forget()
        if strategy.scores_on_request:
            return strategy.search(problems, unit.budget, ctx, score=unit.needs_prm)
        return strategy.search(problems, unit.budget, ctx)

    def run(self, unit: Unit, problems: list[Problem]) -> tuple[list[dict], list[dict], list[str]]:
        """Search `problems` with `unit`; returns (records, tree lines, failure messages). A fault
        (rebase.errors.is_fault) isolates the failing problem(s); any other exception is a bug and
        raises SearchBug at once, without retrying each problem."""
        t0 = time.perf_counter()
        try:
            results = self._search(unit, problems)
            wall = [(time.perf_counter() - t0) / len(problems)] * len(problems)
        except Exception as e:  # noqa: BLE001 - sorted into faults and bugs right here
            if not is_fault(e):
                where = ", ".join(p.id for p in problems[:5]) + (" ..." if len(problems) > 5 else "")
                tb = traceback.format_exc()
                self.log_error(f"{unit.label} problems {where}: bug", tb)
                raise SearchBug(
                    f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                    f"(in {unit.label}, problems {where})"[:500],
                    tb,
                ) from e
            if len(problems) == 1:
                msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
                self.log_error(f"{unit.label} problem {problems[0].id}: fault", traceback.format_exc())
                return self.failed_records(unit, problems[0], msg), [], [f"{problems[0].id}: {msg}"]
            recs, trees, fails = [], [], []
            for p in problems:
                r, t, f = self.run(unit, [p])
                recs += r
                trees += t
                fails += f
            return recs, trees, fails
        recs, trees = [], []
        for p, res, w in zip(problems, results, wall):
            recs += self._records(unit, p, res, w)
            trees += [dict(problem_id=p.id, **n.to_json()) for n in res.nodes]
        return recs, trees, []

    def log_error(self, what: str, tb: str) -> None:
        """Append a failure's full traceback to DIR/errors.log (when the runner set `errors_log`)."""
        if self.errors_log is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.errors_log, "a", encoding="utf-8") as f:
            f.write(f"=== {stamp} model {self.model.name} {what}\n{tb.rstrip()}\n\n")

    # -- records ---------------------------------------------------------------------------------
    def _base(self, out: Output, unit: Unit, p: Problem) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "dataset": self.cfg.dataset.name,
            "problem_id": p.id,
            "strategy": out.strategy,
            "aggregator": out.aggregator,
            "budget": out.budget,
            "seed": unit.seed,
            "model_params": self.engines.n_params(self.model),
            "problem_hash": problem_hash(p.question, p.gold),
            "level": p.level,
            "reduction": out.reduction,
            "gold": p.gold,
            "error": None,
        }

    def failed_records(self, unit: Unit, p: Problem, msg: str) -> list[dict]:
        """The records of a problem that failed: zero cost, no answer, `error` set."""
        zeros = dict.fromkeys(COST_FIELDS, 0)
        return [
            {
                **self._base(o, unit, p),
                **zeros,
                "answer": None,
                "correct": 0.0,
                "n_candidates": 0,
                "n_finished": 0,
                "n_truncated": 0,
                "subsets": 0,
                "error": msg,
            }
            for o in unit.outputs
        ]

    def _records(self, unit: Unit, p: Problem, res: SearchResult, wall: float) -> list[dict]:
        from rebase.tasks.grading import grade
        from eval.pool import derive

        def grade_p(ans: Optional[str]) -> bool:
            return grade(ans, p.gold, self.cfg.dataset.name)

        out = []
        for o in unit.outputs:
            rec = self._base(o, unit, p)
            if unit.pool:
                rec.update(
                    derive(
                        res,
                        o.budget,
                        o.aggregator,
                        o.reduction,
                        self.cfg.include_truncated,
                        grade_p,
                        self.generator,
                        self.engines.loaded_prm,
                        (unit.seed, p.id),
                        dataset=self.cfg.dataset.name,
                        include_invalid=self.cfg.invalid_votes,
                    )
                )
                rec["wall_s"] = wall * o.budget / unit.budget
            else:
                res_o, wall_o = res, wall
                if o.budget != unit.budget:  # a nested budget, cut from the run at unit.budget
                    res_o = STRATEGIES.get(unit.strategy)(**unit.options).at_budget(res, o.budget)
                    wall_o = wall * len(res_o.candidates) / max(len(res.candidates), 1)
                rec.update(self._direct(o, res_o, grade_p, wall_o))
            out.append(rec)
        return out

    def _direct(self, o: Output, res: SearchResult, grade_p: Any, wall: float) -> dict[str, Any]:
        """The record fields of one search's result."""
        ans = aggregate(
            o.aggregator,
            res.candidates,
            o.reduction,
            self.cfg.include_truncated,
            dataset=self.cfg.dataset.name,
            include_invalid=self.cfg.invalid_votes,
        )
        rec: dict[str, Any] = res.ledger.summary()
        rec.update(
            answer=ans,
            correct=float(grade_p(ans)),
            n_candidates=len(res.candidates),
            n_finished=sum(c.finished and not c.truncated for c in res.candidates),
            n_truncated=sum(c.truncated for c in res.candidates),
            subsets=1,
            wall_s=wall,
        )
        rec.update(res.info.get("record", {}))  # a strategy's own per-problem fields
        return rec
