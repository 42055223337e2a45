"""Configs that would execute, exhaust, collide or fail late are refused at load time, in one line.

Why: a config is input from other people and from tired people. A YAML alias bomb must not hang
the loader, a repeated key must not silently pick one of two values, a budget of a billion or an
infinite temperature must not start, names that become paths must be safe, two strategy entries
must not write the same record keys, template placeholders and `--set` paths are checked before
anything runs.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_config_limits.py
"""

from __future__ import annotations

import time

import pytest
import yaml

from rebase.config import MAX_BUDGET, MAX_SEED, MAX_TOKENS, load_config
from rebase.errors import BadInput
from rebase.names import SAFE_NAME
from rebase.yaml_load import MAX_NODES, load_yaml

BASE = {
    "models": [{"name": "m", "path": "some/model"}],
    "prm": {"family": "step_tag", "path": "some/prm", "tag": " ки", "good": "+", "bad": "-"},
    "dataset": {"name": "gsm8k", "limit": 5},
    "strategies": [
        {"name": "weighted_majority", "budgets": [1, 4]},
        {"name": "rebase", "budgets": [4], "balance_temperature": 0.2},
    ],
}


def write(tmp_path, d) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d) if isinstance(d, dict) else d, encoding="utf-8")
    return str(p)


def refused(tmp_path, d, fragment: str, overrides=None) -> str:
    with pytest.raises(BadInput) as e:
        load_config(write(tmp_path, d), overrides)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg, msg
    return msg


def mutated(fn):
    d = yaml.safe_load(yaml.safe_dump(BASE))
    fn(d)
    return d


# -- YAML --------------------------------------------------------------------------------------------


def test_duplicate_keys_are_errors(tmp_path):
    text = "models: [{name: m, path: p}]\ndataset: {name: gsm8k}\nstrategies:\n  - {name: majority, budgets: [1], budgets: [64]}\n"
    refused(tmp_path, text, "line 4: duplicate key 'budgets'")
    text = "models: [{name: m, path: p}]\ndataset: {name: gsm8k}\nstrategies: [{name: greedy}]\nseeds: [0]\nseeds: [1, 2]\n"
    refused(tmp_path, text, "line 5: duplicate key 'seeds' (first at line 4)")


def bomb(levels: int = 9, indent: str = "") -> str:
    lines = [f"{indent}a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_alias_bomb_in_a_free_form_mapping_is_refused_quickly(tmp_path):
    # 9^9 = 387 million strings once expanded, inside vLLM's free-form engine_args
    text = (
        "models:\n  - {name: m, path: p, backend: vllm}\n  - name: m2\n    path: p\n    backend: vllm\n"
        "    engine_args:\n" + bomb(indent="      ") + "\ndataset: {name: gsm8k}\nstrategies: [{name: greedy}]\n"
    )
    t0 = time.perf_counter()
    refused(tmp_path, text, f"expands to more than {MAX_NODES} nodes")
    assert time.perf_counter() - t0 < 5
    # through --set as well: its value is YAML too
    t0 = time.perf_counter()
    with pytest.raises(BadInput, match="expands to more than"):
        load_config(write(tmp_path, BASE), ["models.0.path=" + "{" + bomb().replace("\n", ", ") + "}"])
    assert time.perf_counter() - t0 < 5


def test_recursive_alias_and_honest_aliases(tmp_path):
    with pytest.raises(BadInput, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n", "x.yaml")
    # ordinary anchors still work and count once per use
    assert load_yaml("b: &b {t: 1}\nc: [*b, *b]\n", "x.yaml") == {"b": {"t": 1}, "c": [{"t": 1}, {"t": 1}]}


# -- bounds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(seeds=[]), "seeds: List should have at least 1 item"),
        (lambda d: d.update(seeds=[0, 0]), "seeds: seed 0 is listed twice"),
        (lambda d: d.update(seeds=[-1]), "seeds.0: Input should be greater than or equal to 0"),
        (lambda d: d.update(seeds=[MAX_SEED + 1]), "seeds.0: Input should be less than or equal to"),
        (lambda d: d.update(seeds=list(range(101))), "seeds: List should have at most 100 items"),
        (
            lambda d: d["strategies"][0].update(budgets=[10**9]),
            f"strategies.0.budgets.0: Input should be less than or equal to {MAX_BUDGET}",
        ),
        (lambda d: d["strategies"][0].update(budgets=[4, 4]), "budget 4 is listed twice"),
        (lambda d: d["strategies"][0].update(budgets=[]), "strategies.0.budgets: List should have at least 1 item"),
        (
            lambda d: d.update(sampling={"temperature": float("inf")}),
            "sampling.temperature: Input should be a finite number",
        ),
        (
            lambda d: d.update(sampling={"temperature": float("nan")}),
            "sampling.temperature: Input should be a finite number",
        ),
        (
            lambda d: d.update(sampling={"temperature": 1e6}),
            "sampling.temperature: Input should be less than or equal to 10",
        ),
        (lambda d: d.update(sampling={"top_p": float("nan")}), "sampling.top_p"),
        (
            lambda d: d.update(sampling={"max_tokens": 10**9}),
            f"sampling.max_tokens: Input should be less than or equal to {MAX_TOKENS}",
        ),
        (
            lambda d: d.update(sampling={"max_step_tokens": 10**9}),
            "sampling.max_step_tokens: Input should be less than",
        ),
        (lambda d: d.update(sampling={"max_depth": 10**9}), "sampling.max_depth: Input should be less than"),
        (
            lambda d: d["strategies"][0].update(temperature=float("inf")),
            "strategies.0.temperature: Input should be a finite number",
        ),
        (
            lambda d: d["strategies"][1].update(balance_temperature=float("inf")),
            "strategies.1: balance_temperature: Input should be a finite number",
        ),
        (lambda d: d["prm"].update(default_score=float("nan")), "prm.default_score: Input should be a finite number"),
        (lambda d: d["dataset"].update(limit=10**12), "dataset.limit: Input should be less than"),
        (lambda d: d.update(batch_problems=10**9), "batch_problems: Input should be less than"),
    ],
)
def test_bounds_and_finite_numbers(tmp_path, mutate, fragment):
    refused(tmp_path, mutated(mutate), fragment)


# -- names that become paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/etc/x", "./a", "a/b", "..", ".hidden", "a" * 65, "", "a b", "a\\b", "é"])
def test_unsafe_model_names_are_refused(tmp_path, name):
    refused(tmp_path, mutated(lambda d: d["models"][0].update(name=name)), "models.0.name:")


def test_safe_names_and_case_duplicates(tmp_path):
    for ok in ("qwen2.5-math-1.5b", "arith-s", "A_1", "x" * 64):
        assert SAFE_NAME.fullmatch(ok)
    two = lambda d: d["models"].append({"name": "M", "path": "other"})  # noqa: E731
    refused(tmp_path, mutated(two), "models.1.name: duplicate model name 'M'")


# -- one record key, one entry ------------------------------------------------------------------------


def test_entries_differing_only_in_options_collide(tmp_path):
    both = lambda d: d["strategies"].append({"name": "rebase", "budgets": [4, 8], "balance_temperature": 0.5})  # noqa: E731
    refused(
        tmp_path,
        mutated(both),
        "strategies.2: its records (rebase, weighted_majority, budget 4) collide with those of strategies.1",
    )
    temps = lambda d: d["strategies"].append({"name": "weighted_majority", "budgets": [4], "temperature": 0.5})  # noqa: E731
    refused(tmp_path, mutated(temps), "give one a distinct 'label'")


def test_labels_keep_entries_apart_in_records_and_tree_files(tmp_path):
    from eval.plan import plan_units

    d = mutated(
        lambda d: d["strategies"].append(
            {"name": "rebase", "label": "rebase-t0.5", "budgets": [4], "balance_temperature": 0.5}
        )
    )
    cfg = load_config(write(tmp_path, d))
    units = [u for u in plan_units(cfg) if u.strategy == "rebase"]
    assert [o.strategy for u in units for o in u.outputs] == ["rebase", "rebase-t0.5"]
    assert len({u.label for u in units}) == 2 and all(u.label.startswith("rebase-") for u in units)
    refused(tmp_path, mutated(lambda d: d["strategies"][1].update(label="../x")), "strategies.1.label:")
    dup = lambda d: d["strategies"].append({"name": "rebase", "label": "rebase", "budgets": [4]})  # noqa: E731
    refused(tmp_path, mutated(dup), "collide")


# -- templates and --set --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where, text, fragment",
    [
        ("prompt", "Solve: {qustion}", "prompt.instruction: unknown placeholder {qustion}; allowed: {question}"),
        ("prompt", "{question} Put it in \\boxed{}.", "prompt.instruction: unknown placeholder {}"),
        ("prompt", "{question} {", "prompt.instruction: not a valid template"),
        ("prm", "Is {stp} right?", "prm.judge_prompt: must contain the {step} placeholder"),
        ("prm", "{question} {steps} {step} {verdict}", "prm.judge_prompt: unknown placeholder {verdict}"),
    ],
)
def test_template_placeholders_are_checked_at_load(tmp_path, where, text, fragment):
    def mut(d):
        if where == "prompt":
            d["prompt"] = {"instruction": text}
        else:
            d["prm"] = {"family": "judge", "path": "p", "judge_prompt": text}

    refused(tmp_path, mutated(mut), fragment)


def test_valid_templates_still_load(tmp_path):
    for text in (
        "Put the final answer in \\boxed{}.",
        "Q: {question}\nUse {{braces}} freely.",
        "Give x^{2} and \\frac{a}{b}.",
    ):
        assert (
            load_config(write(tmp_path, mutated(lambda d: d.update(prompt={"instruction": text})))).prompt.instruction
            == text
        )
    judge = "{question}\n{steps}\nIs {step} right? Answer {good} or {bad}. \\boxed{x}"
    cfg = load_config(
        write(tmp_path, mutated(lambda d: d.update(prm={"family": "judge", "path": "p", "judge_prompt": judge})))
    )
    assert cfg.prm.judge_prompt == judge


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("models.0.name.x=1", "--set models.0.name.x: 'models.0.name' holds a str"),
        ("dataset..limit=3", "an empty part in the key path"),
        ("=3", "an empty part"),
        (".x=3", "an empty part"),
        ("models.9.name=x", "'9' is not an index of the list"),
        ("seeds.0.x=1", "'0' is not an index of the list at 'seeds'"),
        ("dataset.limit.x=1", "'dataset.limit' holds a int"),
    ],
)
def test_malformed_set_paths_are_one_line_errors(tmp_path, item, fragment):
    refused(tmp_path, BASE, fragment, [item])


# -- engine arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"worker_extension_cls": "os.system"}, "'worker_extension_cls' is not an allowed engine argument"),
        ({"logits_processors": ["evil.mod:Proc"]}, "'logits_processors' is not an allowed engine argument"),
        (
            {"trust_remote_code": True},
            "'trust_remote_code' is not an allowed engine argument (set it with the model's own key)",
        ),
        ({"kv_transfer_config": {"kv_connector_module_path": "evil"}}, "'kv_transfer_config' is not an allowed"),
        ({"max_model_len": {"nested": 1}}, "'max_model_len' must be a number, a string or a boolean"),
    ],
)
def test_engine_args_outside_the_allow_list_are_refused(tmp_path, args, fragment):
    refused(
        tmp_path,
        mutated(lambda d: d["models"][0].update(backend="vllm", engine_args=args)),
        "models.0.engine_args: " + fragment,
    )
    refused(
        tmp_path, mutated(lambda d: d["prm"].update(backend="vllm", engine_args=args)), "prm.engine_args: " + fragment
    )


def test_allowed_engine_args_load(tmp_path):
    ok = {"gpu_memory_utilization": 0.5, "max_model_len": 2048, "enforce_eager": True, "quantization": "fp8"}
    cfg = load_config(write(tmp_path, mutated(lambda d: d["models"][0].update(backend="vllm", engine_args=ok))))
    assert cfg.models[0].engine_args == ok


@pytest.mark.real_engine
def test_project_settings_win_over_engine_args(tiny_dir, monkeypatch):
    """What reaches vllm.LLM: the config's trust_remote_code (off) and prefix caching, whatever the
    engine arguments say (validation is bypassed here to prove the backend's own order)."""
    vllm = pytest.importorskip("vllm")
    from rebase.backends.vllm_backend import VLLMGenerator
    from rebase.model_config import VLLMModel

    seen = {}

    class Stop(Exception):
        pass

    def spy(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(vllm, "LLM", spy)
    cfg = VLLMModel.model_construct(
        name="m",
        path=str(tiny_dir / "llama"),
        backend="vllm",
        gguf_file=None,
        dtype="float32",
        trust_remote_code=False,
        chat_template=None,
        params=None,
        engine_args={"trust_remote_code": True, "enable_prefix_caching": False, "max_model_len": 512},
    )
    with pytest.raises(Stop):
        VLLMGenerator(cfg)
    assert seen["trust_remote_code"] is False and seen["enable_prefix_caching"] is True
    assert seen["max_model_len"] == 512 and seen["model"] == str(tiny_dir / "llama")
