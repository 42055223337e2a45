"""Lifecycle of a sweep's engines (eval/engines.py): one owner loads the policy generator and the
PRM on first use, swaps the generator between models (closing the old one before loading the next),
keeps the PRM across models and closes both, also when the sweep fails.

    python -m pytest -q tests/test_engines.py
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eval.engines import Engines
from rebase.registry import BACKENDS, PRM_FAMILIES

EVENTS: list[str] = []


class CountingGenerator:
    def __init__(self, cfg):
        self.name = cfg.name
        self.flop_spec = SimpleNamespace(n_params=123)
        EVENTS.append(f"load {cfg.name}")

    def close(self):
        EVENTS.append(f"close {self.name}")


class CountingPRM:
    def __init__(self, cfg):
        EVENTS.append("load prm")

    def close(self):
        EVENTS.append("close prm")


@pytest.fixture
def counting():
    BACKENDS.register("counting_test")(CountingGenerator)
    PRM_FAMILIES.register("counting_test")(CountingPRM)
    EVENTS.clear()
    yield
    BACKENDS.unregister("counting_test")
    PRM_FAMILIES.unregister("counting_test")


def model(name: str, params=None) -> SimpleNamespace:
    return SimpleNamespace(name=name, backend="counting_test", params=params)


def test_one_owner_swaps_policies_keeps_the_prm_and_closes_both(counting):
    cfg = SimpleNamespace(prm=SimpleNamespace(family="counting_test"))
    a, b = model("a"), model("b", params=7)
    with Engines(cfg) as eng:
        assert eng.n_params(b) == 7 and EVENTS == []  # a failure record never loads a model
        assert eng.loaded_prm is None
        g = eng.generator(a)
        assert eng.generator(a) is g and eng.n_params(a) == 123
        p = eng.prm()
        assert eng.prm() is p and eng.loaded_prm is p
        eng.generator(b)
        assert not eng.loaded(a) and eng.loaded(b)
    assert EVENTS == ["load a", "load prm", "close a", "load b", "close b", "close prm"]


def test_engines_close_after_an_error(counting):
    cfg = SimpleNamespace(prm=SimpleNamespace(family="counting_test"))
    with pytest.raises(RuntimeError):
        with Engines(cfg) as eng:
            eng.generator(model("a"))
            eng.prm()
            raise RuntimeError("the sweep failed")
    assert EVENTS[-2:] == ["close a", "close prm"]


def test_no_prm_configured_and_an_installed_generator(counting):
    eng = Engines(SimpleNamespace(prm=None))
    assert eng.prm() is None
    gen = CountingGenerator(model("x"))
    eng.install(model("x"), gen)
    assert eng.generator(model("x")) is gen
    eng.close()
    eng.close()  # idempotent
    assert EVENTS == ["load x", "close x"]
