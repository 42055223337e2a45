"""Resume never mixes incompatible work: the fingerprint, problem hashes and problem ids.

Why: `rebase sweep` reuses every record already in --out. That is right only when the config would
have written the same records: the same model behind a name, the same strategy options and
temperature, the same problems. A changed setting is exit 2 naming the first key that differs; a
directory with records but no readable config.json is refused; a data file edited since (a gold
fixed, rows shifted) is caught by each record's problem_hash; two problems with one id are refused
at load. The grid itself (models, strategies, budgets, seeds, problems) may still grow.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_resume_guard.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from eval.fingerprint import first_difference, fingerprint
from rebase.cli import main
from rebase.config import load_config
from rebase.errors import BadInput

ARITH_S = "package:rebase.demo/models/arith-s"
ARITH_M = "package:rebase.demo/models/arith-m"


def gsm8k_file(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("".join(json.dumps({"question": q, "answer": f"work\n#### {a}"}) + "\n" for q, a in rows))
    return str(path)


ROWS = [("Start with 3. Add 4.", "7"), ("Start with 5. Add 1.", "6"), ("Start with 2. Add 2.", "4")]


def base_cfg(data: str) -> dict:
    return {
        "models": [{"name": "s", "path": ARITH_S}],
        "dataset": {"name": "gsm8k", "path": data},
        "strategies": [{"name": "greedy"}, {"name": "majority", "budgets": [2], "temperature": 0.7}],
        "sampling": {"max_tokens": 24, "max_step_tokens": 12},
    }


def write(tmp_path: Path, d: dict) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d), encoding="utf-8")
    return str(p)


def sweep(capsys, tmp_path: Path, d: dict, out: Path) -> tuple[int, str]:
    code = main(["sweep", write(tmp_path, d), "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    if code == 2:
        assert len(cap.err.strip().splitlines()) == 1 and not cap.out, cap.err
    return code, cap.err.strip()


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("resume")
    data = gsm8k_file(tmp / "g.jsonl", ROWS)
    out = tmp / "out"
    assert main(["sweep", write(tmp, base_cfg(data)), "--out", str(out), "--no-progress"]) == 0
    return out, data


def fresh_copy(done: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out"
    shutil.copytree(done[0], out)
    return out, done[1]


# -- the fingerprint itself -----------------------------------------------------------------------------

BASE = {
    "models": [{"name": "m", "path": "org/a"}],
    "prm": {"family": "step_tag", "path": "org/prm", "tag": " ки", "good": "+", "bad": "-"},
    "dataset": {"name": "gsm8k", "path": "d.jsonl", "limit": 5},
    "strategies": [
        {"name": "majority", "budgets": [1, 4]},
        {"name": "rebase", "budgets": [4], "balance_temperature": 0.1},
    ],
}


def cfg_of(mutate=None):
    d = json.loads(json.dumps(BASE))
    if mutate:
        mutate(d)
    return load_config(None, raw=d)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda d: d["models"][0].update(path="org/b"), "models.m.path"),
        (lambda d: d["models"][0].update(dtype="bfloat16"), "models.m.dtype"),
        (lambda d: d["models"][0].update(chat_template=False), "models.m.chat_template"),
        (lambda d: d["models"][0].update(backend="vllm", engine_args={"quantization": "fp8"}), "models.m.backend"),
        (lambda d: d["strategies"][1].update(balance_temperature=0.2), "strategies.rebase.balance_temperature"),
        (lambda d: d["strategies"][1].update(temperature=0.5), "strategies.rebase.temperature"),
        (lambda d: d["strategies"][0].update(reduction="min"), "strategies.majority.reduction"),
        (lambda d: d.update(sampling={"max_tokens": 512}), "sampling.max_tokens"),
        (lambda d: d.update(prompt={"instruction": "Solve {question}"}), "prompt.instruction"),
        (lambda d: d["prm"].update(path="org/prm2"), "prm.path"),
        (lambda d: d.pop("prm") and d.update(strategies=[{"name": "majority", "budgets": [1]}]), "prm.family"),
        (lambda d: d["dataset"].update(path="other.jsonl"), "dataset.path"),
        (lambda d: d.update(include_truncated=True), "include_truncated"),
        (lambda d: d.update(invalid_votes=True), "invalid_votes"),
        (lambda d: d.update(sample_reuse=False), "sample_reuse"),
    ],
)
def test_every_record_changing_setting_is_fingerprinted(mutate, key):
    assert first_difference(fingerprint(cfg_of()), fingerprint(cfg_of(mutate))) == key


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["models"].append({"name": "m2", "path": "org/c"}),
        lambda d: d["strategies"][0].update(budgets=[1, 4, 16]),
        lambda d: d["strategies"].append({"name": "mcts", "budgets": [8]}),
        lambda d: d.update(seeds=[0, 1]),
        lambda d: d["dataset"].update(limit=50),
        lambda d: d.update(batch_problems=4, save_trees=False),
        lambda d: d["prm"].update(backend="vllm"),
        lambda d: d["strategies"][1].update(
            balance_temperature=0.1, rounding="sequential_ceil"
        ),  # the defaults, spelt out
        lambda d: d["strategies"][1].update(temperature=1.0),  # the sampling temperature, spelt out
    ],
)
def test_growing_the_grid_is_not_a_difference(mutate):
    assert first_difference(fingerprint(cfg_of()), fingerprint(cfg_of(mutate))) is None


# -- the sweep refuses ----------------------------------------------------------------------------------


def test_another_model_under_the_same_name_is_refused(tmp_path, capsys, done):
    out, data = fresh_copy(done, tmp_path)
    before = (out / "results.jsonl").read_bytes()
    d = base_cfg(data)
    d["models"][0]["path"] = ARITH_M
    code, err = sweep(capsys, tmp_path, d, out)
    assert code == 2 and f'models.s.path = "{ARITH_S}", this config has "{ARITH_M}"' in err, err
    assert (out / "results.jsonl").read_bytes() == before


def test_a_changed_strategy_temperature_is_refused_and_config_json_kept(tmp_path, capsys, done):
    out, data = fresh_copy(done, tmp_path)
    cfg_before = (out / "config.json").read_bytes()
    d = base_cfg(data)
    d["strategies"][1]["temperature"] = 0.9
    code, err = sweep(capsys, tmp_path, d, out)
    assert code == 2 and "strategies.majority.temperature = 0.7, this config has 0.9" in err
    assert (out / "config.json").read_bytes() == cfg_before


def test_the_fingerprint_remembers_models_left_out_of_a_resume(tmp_path, capsys, done):
    out, data = fresh_copy(done, tmp_path)
    d = base_cfg(data)
    d["models"] = [{"name": "m", "path": ARITH_M}]  # a resume with another model only
    assert sweep(capsys, tmp_path, d, out)[0] == 0
    d["models"] = [{"name": "s", "path": ARITH_M}]  # then `s` again, now a different model
    code, err = sweep(capsys, tmp_path, d, out)
    assert code == 2 and "models.s.path" in err


@pytest.mark.parametrize("damage", ["missing", "garbage", "not_a_config"])
def test_records_without_a_readable_config_are_refused(tmp_path, capsys, done, damage):
    out, data = fresh_copy(done, tmp_path)
    if damage == "missing":
        (out / "config.json").unlink()
    elif damage == "garbage":
        (out / "config.json").write_bytes(b"\x00\xff{")
    else:
        (out / "config.json").write_text('{"config": {"models": "none"}}')
    code, err = sweep(capsys, tmp_path, base_cfg(data), out)
    assert code == 2 and "holds records but no readable config.json" in err


def test_a_config_json_from_before_fingerprints_still_resumes(tmp_path, capsys, done):
    out, data = fresh_copy(done, tmp_path)
    blob = json.loads((out / "config.json").read_text())
    blob.pop("fingerprint")
    blob["fixed_hash"] = "0123456789abcdef"
    (out / "config.json").write_text(json.dumps(blob))
    d = base_cfg(data)
    d["strategies"][0]["budgets"] = [1]
    assert sweep(capsys, tmp_path, d, out)[0] == 0
    d["models"][0]["path"] = ARITH_M
    assert sweep(capsys, tmp_path, d, out)[0] == 2


# -- problems ---------------------------------------------------------------------------------------


def test_records_carry_the_problem_hash(done):
    from eval.records import problem_hash

    recs = [json.loads(x) for x in (done[0] / "results.jsonl").read_text().splitlines()]
    by_id = {f"gsm8k-{i}": problem_hash(q, a) for i, (q, a) in enumerate(ROWS)}
    assert recs and all(r["problem_hash"] == by_id[r["problem_id"]] for r in recs)


@pytest.mark.parametrize("edit", ["gold_fixed", "row_deleted"])
def test_an_edited_data_file_is_caught_on_resume(tmp_path, capsys, done, edit):
    out, data = fresh_copy(done, tmp_path)
    rows = [ROWS[0], (ROWS[1][0], "60"), ROWS[2]] if edit == "gold_fixed" else ROWS[1:]
    original = Path(data).read_bytes()
    gsm8k_file(Path(data), rows)  # the same path (the fingerprint's dataset.path), new content
    try:
        code, err = sweep(capsys, tmp_path, base_cfg(data), out)
    finally:
        Path(data).write_bytes(original)
    assert code == 2 and "problem 'gsm8k-" in err and "question or gold changed" in err, err


def test_duplicate_problem_ids_are_refused(tmp_path, capsys):
    rows = [
        {"unique_id": "alg/1.json", "problem": "1+1?", "answer": "2"},
        {"unique_id": "alg/2.json", "problem": "2+2?", "answer": "4"},
        {"unique_id": "alg/1.json", "problem": "3+3?", "answer": "6"},
    ]
    data = tmp_path / "m.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = {
        "models": [{"name": "s", "path": ARITH_S}],
        "dataset": {"name": "math500", "path": str(data)},
        "strategies": [{"name": "greedy"}],
    }
    code, err = sweep(capsys, tmp_path, d, tmp_path / "out")
    assert code == 2 and "problem id 'alg/1.json' appears twice (problems 1 and 3)" in err
    assert not (tmp_path / "out").exists()


def test_labelled_entries_of_one_strategy_both_keep_their_records(tmp_path, capsys, done):
    _, data = done
    d = base_cfg(data)
    d["strategies"] = [
        {"name": "majority", "budgets": [2], "temperature": 0.7, "label": "maj-t0.7"},
        {"name": "majority", "budgets": [2], "temperature": 1.0, "label": "maj-t1.0"},
    ]
    out = tmp_path / "out"
    assert sweep(capsys, tmp_path, d, out)[0] == 0
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted({r["strategy"] for r in recs}) == ["maj-t0.7", "maj-t1.0"] and len(recs) == 2 * len(ROWS)
    d["strategies"][1]["label"] = "MAJ-T0.7"
    with pytest.raises(
        BadInput,
        match="strategies.1.label: duplicate strategy label 'MAJ-T0.7' "
        r"\(as strategies.0.label",
    ):
        load_config(write(tmp_path, d))


def test_weights_retrained_in_place_are_refused(tmp_path, capsys):
    # same path, same config.json, new weights: the records of the old weights must not be reused
    from eval.weights_digest import weights_digest
    from rebase.paths import package_dir

    model = tmp_path / "model"
    shutil.copytree(package_dir(ARITH_S), model)
    d = base_cfg(gsm8k_file(tmp_path / "g.jsonl", ROWS[:1]))
    d["models"][0]["path"] = str(model)
    d["strategies"] = [{"name": "greedy"}]
    out = tmp_path / "out"
    assert sweep(capsys, tmp_path, d, out)[0] == 0
    before = weights_digest(str(model))
    (model / "train_info.json").write_text("{}")  # notes only: still the same model
    assert weights_digest(str(model)) == before
    blob = bytearray((model / "model.safetensors").read_bytes())
    blob[-5] ^= 0x01  # one bit of the last tensor's data
    (model / "model.safetensors").write_bytes(bytes(blob))
    assert weights_digest(str(model)) != before
    code, err = sweep(capsys, tmp_path, d, out)
    assert code == 2 and "models.s.weights" in err, err
    assert weights_digest("org/name") is None  # a hub id: its revision pins it
