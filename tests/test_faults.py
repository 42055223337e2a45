"""Faults during a run: one problem fails with its reason, the others complete, resume retries it.

Why: at sweep scale some request will fail (a backend error on one prompt, a PRM that returns NaN
or the wrong number of step scores). The contract (docs/ARCHITECTURE.md, eval/worker.py): the failing problem
gets records with `error` set and correct 0, every other problem completes, the CLI exits 1,
`rebase report` lists the failure, and `rebase sweep` on the same directory searches only the
failed problem again.

How: a scripted policy backend (tests/fakes.FakeGenerator behind a config-constructible class,
registered in rebase.registry.BACKENDS for the test) raises mid-batch whenever a chosen problem's
prompt is in the batch; the tiny step_tag PRM has its forward outputs poisoned (NaN, or one score
dropped) for the chosen problem only, so the real score check (reward_models/common.check_scores)
is what notices. Everything runs in-process through rebase.cli.main.

The HTTP half (openai backend against tests/fault_server.py) runs only when both files exist.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_faults.py
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fakes import FakeGenerator
from rebase.cli import main
from rebase.registry import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
TARGET = "gsm8k-1"


class Script:
    """What the scripted backend does: which question makes it raise, and every prompt it saw."""

    fail_on: str | None = None
    bug: bool = False  # raise a programming error (TypeError) instead of a backend fault
    prompts: list[str] = []


def key(text: str) -> str:
    """Token ids as a string, so `key(question) in <prompt key>` finds a question in a tree request,
    which carries token ids only (the fake's encoding is one id per character)."""
    return "".join(map(chr, FakeGenerator().encode(text)))


class ScriptedBackend(FakeGenerator):
    """A policy built from a ModelConfig like any backend; raises for prompts holding Script.fail_on."""

    def __init__(self, cfg):
        super().__init__(p_final=0.5, answers=("18", "3", "7"))
        self.name = cfg.name

    def generate(self, requests):
        # sampling strategies send text only; tokenise it as a real backend would
        requests = [
            r if r.prompt_token_ids is not None else replace(r, prompt_token_ids=self.encode(r.prompt))
            for r in requests
        ]
        seen = ["".join(map(chr, r.prompt_token_ids)) for r in requests]
        Script.prompts += seen
        if Script.fail_on and any(key(Script.fail_on) in k for k in seen):
            if Script.bug:
                raise TypeError("injected bug: unsupported operand type(s)")
            raise ConnectionResetError("injected backend fault: connection reset")
        return super().generate(requests)


@pytest.fixture
def scripted():
    BACKENDS.register("scripted_test")(ScriptedBackend)
    Script.fail_on, Script.prompts, Script.bug = None, [], False
    yield Script
    BACKENDS.unregister("scripted_test")


def questions(data_dir: Path, k: int) -> list[str]:
    lines = (data_dir / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:k]
    return [json.loads(x)["question"] for x in lines]


def write_cfg(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return p


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def base_cfg(tiny_dir: Path, data_dir: Path, backend: str, path: str, strategies: list[dict]) -> dict:
    return {
        "models": [{"name": "policy", "path": path, "backend": backend}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 4},
        "strategies": strategies,
        "sampling": {"max_tokens": 16, "max_step_tokens": 8},
        "batch_problems": 4,  # one batch: the fault happens mid-batch, next to healthy problems
    }


def check_failed_run(out: Path, code: int, summary: dict, reason: str, n_outputs: int) -> None:
    assert code == 1
    assert summary["failed"] == 1 and summary["failures"][0].startswith(f"{TARGET}: ")
    assert reason in summary["failures"][0]
    recs = records(out)
    bad = [r for r in recs if r["error"]]
    assert {r["problem_id"] for r in bad} == {TARGET} and len(bad) == n_outputs
    assert all(reason in r["error"] and r["correct"] == 0 for r in bad)
    good = [r for r in recs if not r["error"]]
    assert len({r["problem_id"] for r in good}) == 3 and len(good) == 3 * n_outputs
    assert all(r["n_candidates"] > 0 for r in good)


def check_report_lists(out: Path, capsys, reason: str) -> None:
    assert main(["report", str(out)]) == 0
    assert last_json(capsys)["failures"] >= 1
    fits = json.loads((out / "report" / "scaling_fit.json").read_text())
    assert any(TARGET in json.dumps(f) and reason in json.dumps(f) for f in fits["failures"])
    assert TARGET in (out / "report" / "index.html").read_text(encoding="utf-8")


def test_a_bug_stops_the_sweep_at_once_with_its_traceback_in_errors_log(tmp_path, tiny_dir, data_dir, scripted, capsys):
    """A programming error is not a fault: no per-problem retries, no error records, exit 1 with
    one stderr line, the records written before it kept, the full traceback in DIR/errors.log."""
    qs = questions(data_dir, 4)
    cfg = base_cfg(tiny_dir, data_dir, "scripted_test", "scripted/policy", [{"name": "majority", "budgets": [2]}])
    cfg["batch_problems"] = 2
    p, out = write_cfg(tmp_path, cfg), tmp_path / "out"
    scripted.fail_on, scripted.bug = qs[2], True  # the second batch hits the bug
    code = main(["sweep", str(p), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and not captured.out.strip()
    err = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "bug: TypeError: injected bug" in err[0] and "errors.log" in err[0], captured.err
    assert "records written so far are kept" in err[0]
    recs = records(out)
    assert len(recs) == 2 and not any(r["error"] for r in recs)  # the first batch, nothing recorded as failed
    calls_with_target = sum(key(qs[2]) in k for k in scripted.prompts)
    assert calls_with_target == 1  # not retried problem by problem
    log = (out / "errors.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "TypeError: injected bug" in log and "generate" in log


def test_fault_tracebacks_go_to_errors_log(tmp_path, tiny_dir, data_dir, scripted, capsys):
    qs = questions(data_dir, 4)
    cfg = base_cfg(tiny_dir, data_dir, "scripted_test", "scripted/policy", [{"name": "majority", "budgets": [1]}])
    p, out = write_cfg(tmp_path, cfg), tmp_path / "out"
    scripted.fail_on = qs[1]
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 1
    assert last_json(capsys)["failed"] == 1
    log = (out / "errors.log").read_text(encoding="utf-8")
    assert log.count(": fault\n") == 1 and "Traceback (most recent call last)" in log and "ConnectionResetError" in log


def test_backend_fault_mid_batch_then_resume_retries_only_it(tmp_path, tiny_dir, data_dir, scripted, capsys):
    qs = questions(data_dir, 4)
    cfg = base_cfg(
        tiny_dir,
        data_dir,
        "scripted_test",
        "scripted/policy",
        [{"name": "majority", "budgets": [1, 2]}, {"name": "rebase", "budgets": [2]}],
    )
    p, out = write_cfg(tmp_path, cfg), tmp_path / "out"
    scripted.fail_on = qs[1]
    code = main(["sweep", str(p), "--out", str(out), "--no-progress"])
    summary = last_json(capsys)
    # two units (majority pool, rebase): the problem fails in each, with the backend's reason
    assert code == 1 and summary["failed"] == 2, summary
    assert all(f.startswith(f"{TARGET}: ConnectionResetError: injected backend fault") for f in summary["failures"])
    recs = records(out)
    assert {r["problem_id"] for r in recs if r["error"]} == {TARGET}
    assert sum(1 for r in recs if r["error"]) == 3  # majority@1, majority@2, rebase@2
    assert sum(1 for r in recs if not r["error"]) == 3 * 3
    check_report_lists(out, capsys, "injected backend fault")

    # the fault is gone: a resumed sweep searches the failed problem only, and all of it
    scripted.fail_on, scripted.prompts = None, []
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    summary = last_json(capsys)
    assert summary["new_records"] == 3 and summary["failed"] == 0
    assert scripted.prompts and all(key(qs[1]) in pr for pr in scripted.prompts)
    assert not any(key(q) in pr for q in (qs[0], qs[2], qs[3]) for pr in scripted.prompts)
    final = {}
    for r in records(out):  # failures stay in the file as history; a later success supersedes them
        k = (r["problem_id"], r["strategy"], r["aggregator"], r["budget"])
        final[k] = r if not r["error"] or k not in final else final[k]
    assert len(final) == 12 and not any(r["error"] for r in final.values())


@pytest.mark.parametrize("fault,reason", [("nan", "non-finite score"), ("short", "scores for")])
def test_prm_fault_for_one_problem(tmp_path, tiny_dir, data_dir, scripted, capsys, monkeypatch, fault, reason):
    import reward_models.common as common
    from reward_models.step_tag import StepTagPRM

    qs = questions(data_dir, 4)
    real_score, real_readout = StepTagPRM.score, common.readout

    def poisoned_score(self, requests):
        hit = [qs[1] in r.question for r in requests]

        def readout(prm, seqs, positions):
            got = real_readout(prm, seqs, positions)
            return [
                ((g * float("nan") if fault == "nan" else g[:-1]), c) if h and len(g) else (g, c)
                for (g, c), h in zip(got, hit)
            ]

        monkeypatch.setattr(common, "readout", readout)
        try:
            return real_score(self, requests)
        finally:
            monkeypatch.setattr(common, "readout", real_readout)

    monkeypatch.setattr(StepTagPRM, "score", poisoned_score)
    cfg = base_cfg(tiny_dir, data_dir, "scripted_test", "scripted/policy", [{"name": "best_of_n", "budgets": [2]}])
    p, out = write_cfg(tmp_path, cfg), tmp_path / "out"
    code = main(["run", str(p), "--out", str(out), "--no-progress"])
    summary = last_json(capsys)
    check_failed_run(out, code, summary, reason, n_outputs=1)
    assert "PRMError" in summary["failures"][0]
    check_report_lists(out, capsys, reason)

    monkeypatch.setattr(StepTagPRM, "score", real_score)
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    assert last_json(capsys)["new_records"] == 1


# -- HTTP: the openai backend against the fault-injecting server -----------------------------------

HAVE_HTTP = (ROOT / "tests" / "fault_server.py").exists() and (
    ROOT / "rebase" / "backends" / "openai_backend.py"
).exists()
http = pytest.mark.skipif(not HAVE_HTTP, reason="tests/fault_server.py or the openai backend is not in the tree")
SECRET = "sk-rebase-test-5ecret-9f2c"


def http_cfg(tiny_dir: Path, data_dir: Path, url: str, retries: int, budget: int = 2) -> dict:
    return {
        # a local folder as path: tokenizer and FLOP spec come from it, generation from the server
        "models": [
            {
                "name": "served",
                "path": str(tiny_dir / "llama"),
                "backend": "openai",
                "base_url": url,
                "api_key_env": "REBASE_TEST_KEY",
                "max_retries": retries,
                "timeout_s": 5,
            }
        ],
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 2},
        "strategies": [{"name": "majority", "budgets": [budget]}],
        "sampling": {"max_tokens": 8, "max_step_tokens": 4},
        "batch_problems": 1,
    }


def no_secret(out: Path, *texts: str) -> None:
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(encoding="utf-8", errors="replace"), f
    for t in texts:
        assert SECRET not in t


@http
def test_http_faults_retried_then_success(tmp_path, tiny_dir, data_dir, monkeypatch, capsys, caplog):
    from fault_server import FaultServer

    monkeypatch.setenv("REBASE_TEST_KEY", SECRET)
    with FaultServer(script=["500", "429", "503"]) as srv:
        p = write_cfg(tmp_path, http_cfg(tiny_dir, data_dir, srv.base_url, retries=3))
        code = main(["run", str(p), "--out", str(tmp_path / "out"), "--no-progress"])
        calls, sent = srv.calls, srv.requests
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert code == 0 and summary["failed"] == 0 and summary["records"] == 2
    # every fault was retried, and no request was sent again once it had succeeded (how the backend
    # splits n samples into requests is its own business)
    bodies = {json.dumps(r["body"], sort_keys=True) for r in sent}
    assert calls == len(bodies) + 3 and len(bodies) >= 2
    assert all(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in sent)
    no_secret(tmp_path / "out", cap.out, cap.err, caplog.text)


@http
def test_http_retries_exhausted_records_failure(tmp_path, tiny_dir, data_dir, monkeypatch, capsys, caplog):
    from fault_server import FaultServer

    monkeypatch.setenv("REBASE_TEST_KEY", SECRET)
    out = tmp_path / "out"
    # budget 1 and one problem a batch: one request at a time, so the script's faults hit known
    # problems: problem 0 meets 500 twice (1 retry allowed), problem 1 a 401 that echoes the key back
    with FaultServer(script=["500", "500", "401echo"]) as srv:
        p = write_cfg(tmp_path, http_cfg(tiny_dir, data_dir, srv.base_url, retries=1, budget=1))
        code = main(["run", str(p), "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert code == 1 and summary["failed"] == 2
    recs = records(out)
    errs = {r["problem_id"]: r["error"] for r in recs}
    assert "HTTP 500" in errs["gsm8k-0"] and "2 attempt" in errs["gsm8k-0"]
    assert "401" in errs["gsm8k-1"]
    no_secret(out, cap.out, cap.err, caplog.text)

    # the server is healthy again: the resumed sweep fills in exactly the two failures
    with FaultServer() as srv:
        p = write_cfg(tmp_path, http_cfg(tiny_dir, data_dir, srv.base_url, retries=1, budget=1))
        assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
        assert srv.calls == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_records"] == 2
