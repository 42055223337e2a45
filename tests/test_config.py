"""Config validation: the contract keys load; every mistake is one BadInput line naming the key."""

from __future__ import annotations

import pytest
import yaml

from rebase.config import load_config
from rebase.errors import BadInput

BASE = {
    "models": [{"name": "m", "path": "some/model"}],
    "prm": {"family": "step_tag", "path": "some/prm", "tag": " ки", "good": "+", "bad": "-"},
    "dataset": {"name": "gsm8k", "limit": 5},
    "strategies": [
        {"name": "weighted_majority", "budgets": [1, 4]},
        {"name": "rebase", "budgets": [4], "balance_temperature": 0.2},
    ],
}


def write(tmp_path, d):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_valid_config_and_overrides(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE), ["sampling.temperature=0.7", "strategies.0.budgets=[2, 8]", "dataset.limit=3"]
    )
    assert cfg.sampling.temperature == 0.7
    assert cfg.strategies[0].budgets == [2, 8]
    assert cfg.dataset.limit == 3
    assert cfg.strategies[1].options() == {"balance_temperature": 0.2}


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["models"][0].update(colour="red"), "models.0.colour: unknown key"),
        (lambda d: d["dataset"].update(limit="many"), "dataset.limit"),
        (lambda d: d["strategies"][0].update(budgets=[0]), "strategies.0.budgets.0"),
        (lambda d: d["strategies"][0].update(name="rebse"), "did you mean 'rebase'"),
        (lambda d: d["prm"].update(family="stepTag"), "unknown PRM family 'stepTag'"),
        (lambda d: d["models"][0].update(backend="tgi"), "unknown backend 'tgi'"),
        (lambda d: d["dataset"].update(name="gsm9k"), "did you mean 'gsm8k'"),
        (lambda d: d["strategies"][1].update(balance_temp=0.1), "strategies.1: balance_temp: unknown key"),
        (lambda d: d.pop("prm"), "needs a 'prm' section"),
        (lambda d: d["strategies"].append({"name": "greedy", "budgets": [4]}), "greedy takes budget 1 only"),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, fragment):
    d = yaml.safe_load(yaml.safe_dump(BASE))
    mutate(d)
    with pytest.raises(BadInput) as e:
        load_config(write(tmp_path, d))
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg and "c.yaml" in msg


def test_malformed_yaml_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("models: [\n  - name: x\n")
    with pytest.raises(BadInput, match="bad.yaml.*malformed YAML"):
        load_config(p)
    with pytest.raises(BadInput, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_validate():
    from pathlib import Path

    from rebase.demo import DEMO_CONFIG

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")) + [DEMO_CONFIG]
    assert DEMO_CONFIG.is_file() and len(configs) > 1
    for p in configs:
        load_config(p)
