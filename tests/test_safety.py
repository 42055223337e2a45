"""Safety defaults: YAML never builds objects, remote code never runs unless asked.

Why: configs and model folders come from other people. A YAML `!!python/object` tag must be refused
(only yaml.safe_load is used anywhere), and a model folder's own Python code must not run unless the
config says `trust_remote_code: true`. (That an API key never reaches records, trees, config.json or
stderr is checked against the fault server in tests/test_faults.py.)

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_safety.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rebase.config import PRMConfig, load_config
from rebase.model_config import TransformersModel
from rebase.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rebase", "eval", "strategies", "reward_models")


def test_only_safe_yaml_loading_in_the_packages():
    unsafe = re.compile(
        r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all)\s*\(|yaml\.(Unsafe|Full)?Loader\b"
    )
    hits = [
        f"{f.relative_to(ROOT)}:{i}"
        for pkg in PACKAGES
        for f in sorted((ROOT / pkg).rglob("*.py"))
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not hits, hits


def test_python_object_tag_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.yaml"
    p.write_text(f'models: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(BadInput, match=r"evil\.yaml: line 1: malformed YAML"):
        load_config(p)
    with pytest.raises(BadInput, match="models: Input should be a valid list"):
        # an override is parsed by safe_load too: the tag is kept as plain text, then rejected as a type
        load_config(None, ["models=!!python/object/apply:os.system [x]"], raw={"models": []})
    assert not marker.exists()


def test_trust_remote_code_defaults_off():
    assert TransformersModel(name="m", path="x").trust_remote_code is False
    assert PRMConfig(family="step_tag", path="x").trust_remote_code is False


def test_loaders_pass_trust_remote_code_false(tiny_dir, monkeypatch):
    """Spy on transformers' from_pretrained: every tokenizer and model load of the policy backend and
    of a PRM passes trust_remote_code=False when the config does not turn it on."""
    import transformers

    from rebase.backends.hf import TransformersGenerator
    from reward_models.step_tag import StepTagPRM

    seen = []

    def spy(cls_name, real):
        def wrapped(*args, **kwargs):
            seen.append((cls_name, kwargs.get("trust_remote_code", "absent")))
            return real(*args, **kwargs)

        return wrapped

    for name in ("AutoTokenizer", "AutoModelForCausalLM", "AutoConfig"):
        cls = getattr(transformers, name)
        monkeypatch.setattr(cls, "from_pretrained", spy(name, cls.from_pretrained))
    TransformersGenerator(TransformersModel(name="m", path=str(tiny_dir / "llama")))
    StepTagPRM(PRMConfig(family="step_tag", path=str(tiny_dir / "prm_llama"), tag=" ки", good="+", bad="-"))
    assert {n for n, _ in seen} >= {"AutoTokenizer", "AutoModelForCausalLM"}, seen
    assert all(v is False for _, v in seen), seen
