"""Plugins (rebase/plugins.py) and `rebase ls`: a third-party distribution registers a strategy and
a dataset through the `rebase.plugins` entry-point group, `rebase ls` lists them, `rebase run`
uses them, and a duplicate name or a broken plugin is a one-line error with exit code 2.

The plugin is a test-local distribution (tests/plugin_dist.py): a package plus its .dist-info in a
temporary folder put on PYTHONPATH, which is how an installed wheel looks to importlib.metadata.

    python -m pytest -q tests/test_plugins.py
"""

from __future__ import annotations

import json

import pytest
import yaml

from plugin_dist import make_plugin, rebase_cli
from rebase.errors import BadInput
from rebase.registry import STRATEGIES, Registry

PLUGIN = '''"""A tiny third-party plugin: a strategy and a dataset."""
from rebase.registry import DATASETS, STRATEGIES
from rebase.types import Problem
from strategies.sampling import Greedy


@STRATEGIES.register("plugin_greedy")
class PluginGreedy(Greedy):
    """Greedy decoding, registered by a plugin."""

    name = "plugin_greedy"


@DATASETS.register("plugin_sums")
def load_sums(cfg):
    """Two fixed sums, registered by a plugin."""
    return [Problem(id=f"sum-{i}", question=f"Start with {a}. Add {b}. What is the result?", gold=str(a + b),
                    dataset="plugin_sums") for i, (a, b) in enumerate([(3, 4), (10, 5)])]
'''


def test_duplicate_name_is_an_error_and_same_object_is_not():
    reg = Registry("widget", "widgets")

    @reg.register("a")
    def one():
        """One."""

    reg.register("a")(one)  # the same object again (a module imported twice): fine
    with pytest.raises(BadInput, match="widget 'a' is registered twice"):
        reg.register("a")(lambda: None)
    reg.register_lazy("b", "json:dumps", "dumps")
    reg.register("b")(json.dumps)  # the lazy path and the object it names are one registration
    with pytest.raises(BadInput, match="registered twice"):
        reg.register_lazy("b", "json:loads")
    reg.unregister("a")
    assert "a" not in reg._table


def test_builtin_name_cannot_be_taken():
    assert "greedy" in STRATEGIES.names()
    with pytest.raises(BadInput, match="strategy 'greedy' is registered twice"):
        STRATEGIES.register("greedy")(type("Impostor", (), {}))


def test_rebase_ls_lists_every_kind_with_docs(tmp_path):
    r = rebase_cli(["ls"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(summary) == {"strategies", "aggregators", "prms", "backends", "datasets"}
    assert {"greedy", "rebase", "mcts"} <= set(summary["strategies"])
    assert {"step_tag", "judge"} <= set(summary["prms"]) and {"transformers", "vllm", "openai"} <= set(
        summary["backends"]
    )
    assert all(doc for kind in summary.values() for doc in kind.values()), "every built-in has a one-line doc"
    r = rebase_cli(["ls", "backends"], tmp_path, tmp_path)
    assert list(json.loads(r.stdout.strip().splitlines()[-1])) == ["backends"]
    assert "transformers" in r.stdout and "strategies:" not in r.stdout
    r = rebase_cli(["ls", "widgets"], tmp_path, tmp_path)
    assert r.returncode == 2


def test_entry_point_plugin_is_listed_and_run(tmp_path):
    plugins = make_plugin(tmp_path / "site", "rebase-test-plugin", "rebase_test_plugin", PLUGIN)
    r = rebase_cli(["ls", "strategies"], plugins, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "plugin_greedy" in r.stdout and "Greedy decoding, registered by a plugin." in r.stdout
    cfg = {
        "models": [{"name": "arith-s", "path": "package:rebase.demo/models/arith-s"}],
        "dataset": {"name": "plugin_sums"},
        "strategies": [{"name": "plugin_greedy", "budgets": [1]}],
        "sampling": {"max_tokens": 64},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    r = rebase_cli(["run", "c.yaml", "--out", "out", "--no-progress"], plugins, tmp_path)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {(x["strategy"], x["dataset"]) for x in recs} == {("plugin_greedy", "plugin_sums")} and len(recs) == 2


def test_plugin_taking_a_builtin_name_or_failing_to_import_exits_2(tmp_path):
    clash = make_plugin(
        tmp_path / "a",
        "clash-plugin",
        "clash_plugin",
        "from rebase.registry import STRATEGIES\n\n@STRATEGIES.register('greedy')\nclass G:\n    pass\n",
    )
    r = rebase_cli(["ls"], clash, tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "clash_plugin" in err[0] and "strategy 'greedy' is registered twice" in err[0]
    broken = make_plugin(tmp_path / "b", "broken-plugin", "broken_plugin", "import no_such_module_xyz\n")
    r = rebase_cli(["ls"], broken, tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "broken_plugin" in err[0] and "no_such_module_xyz" in err[0]
