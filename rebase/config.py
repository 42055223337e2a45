"""Experiment config: YAML -> validated pydantic models, with `--set a.b=v` overrides.

Every component gets its own parameter object with each field documented; unknown keys, wrong
types and unknown registry names are a BadInput naming the file and the key (CLI exit 2).
YAML is read by rebase/yaml_load.py (safe types only, duplicate keys and alias bombs refused).
Strategy-specific options (e.g. `balance_temperature`) are validated by the strategy's own `Params`
model (strategies/*.py). Every number that sizes work has a documented maximum (the MAX_* constants
below) and every float must be finite, so a typo cannot ask for a run that never ends.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rebase.errors import BadInput
from rebase.flops import FlopView
from rebase.model_config import BACKEND_NAMES, ModelConfig, OpenAIModel, TransformersModel, VLLMModel  # noqa: F401 - re-exported
from rebase.config_checks import check_collisions, check_templates, strategy_label  # noqa: F401 - re-exported
from rebase.names import check_name, check_unique
from rebase.yaml_load import load_yaml
from rebase.types import Reduction

# the maxima of everything that sizes a run (README, "Contracts")
MAX_BUDGET = 4096  # samples / finished solutions / expansions per problem
MAX_SEEDS = 100  # entries of `seeds`
MAX_SEED = 2**32 - 1  # seeds are 0 .. 2^32 - 1
MAX_TEMPERATURE = 10.0  # sampling and per-strategy temperatures
MAX_STEP_TOKENS = 32768
MAX_TOKENS = 131072  # per solution
MAX_DEPTH = 1000
MAX_PROBLEMS = 1_000_000  # dataset.limit / sample / size
MAX_BATCH_PROBLEMS = 4096
Budget = Annotated[int, Field(gt=0, le=MAX_BUDGET)]
SeedValue = Annotated[int, Field(ge=0, le=MAX_SEED)]


def _no_repeats(v: list, what: str) -> list:
    if len(set(v)) != len(v):
        raise ValueError(f"{what} {next(x for x in v if v.count(x) > 1)} is listed twice")
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


class PRMConfig(Strict):
    """A process reward model; `family` picks the adapter (reward_models/)."""

    family: str  # step_tag | mean_logit | token_classify | judge | a registered class
    path: str
    name: Optional[str] = None
    gguf_file: Optional[str] = None
    tag: Optional[str] = None  # step_tag / mean_logit: the step tag string, e.g. " ки"
    good: Optional[str] = None  # step_tag: good label token, e.g. "+"; judge: "Yes"
    bad: Optional[str] = None  # step_tag: bad label token, e.g. "-"; judge: "No"
    separator: Optional[str] = None  # token_classify: the step separator, e.g. "<extra_0>"
    positive_label: int = 1  # token_classify: index of the "correct" class
    judge_prompt: Optional[str] = None  # judge: template with {question}, {steps}, {step}
    system: Optional[str] = None  # token_classify / judge: system prompt for chat templates
    chat_template: Optional[bool] = None
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    batch_tokens: PositiveInt = 65536
    kv_reuse: bool = True  # transformers: score a child on its parent's cached KV (only its new tokens run)
    kv_cache_bytes: PositiveInt = 1024**3  # transformers: memory bound of that KV store
    on_error: Literal["raise", "default"] = "raise"  # a failed score: raise, or use default_score
    default_score: float = 0.0
    backend: Literal["transformers", "vllm"] = "transformers"  # vllm: a pooling engine (step_tag only)
    engine_args: dict[str, Any] = Field(
        default_factory=dict
    )  # vllm: extra vllm.LLM(...) arguments (rebase/engine_args.py)

    @field_validator("engine_args")
    @classmethod
    def _engine_args_allowed(cls, v: dict[str, Any]) -> dict[str, Any]:
        from rebase.engine_args import check_engine_args

        return check_engine_args(v)

    @model_validator(mode="after")
    def _engine_args(self) -> "PRMConfig":
        if self.engine_args and self.backend != "vllm":
            raise ValueError("engine_args: only the vllm backend takes engine_args")
        return self

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        from rebase.registry import PRM_FAMILIES

        PRM_FAMILIES.check(v)
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str, info: ValidationInfo) -> str:
        # only step_tag maps onto vLLM's pooling runner (docs/BACKENDS.md, "PRMs on vLLM")
        if v == "vllm" and info.data.get("family", "step_tag") != "step_tag":
            raise ValueError("vllm serves only step_tag")
        return v


class DatasetConfig(Strict):
    name: str  # a registered dataset: gsm8k | math500 | math | aime2024 | aime2025 | amc2023 | arith | a plugin's
    path: Optional[str] = None  # local JSONL instead of the hub
    split: str = "test"
    limit: Optional[int] = Field(None, gt=0, le=MAX_PROBLEMS)  # first k problems (after `sample`)
    sample: Optional[int] = Field(None, gt=0, le=MAX_PROBLEMS)  # a seeded random subset of this size
    sample_seed: int = Field(0, ge=0, le=MAX_SEED)
    levels: Optional[list[int]] = None  # keep only these difficulty levels
    size: int = Field(500, gt=0, le=MAX_PROBLEMS)  # arith: how many problems to generate
    seed: int = Field(0, ge=0, le=MAX_SEED)  # arith: generator seed

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from rebase.registry import DATASETS

        DATASETS.check(v)
        return v


class PromptConfig(Strict):
    """How a problem becomes a prompt; defaults come from the dataset's task (rebase/tasks/prompts.py)."""

    # plain: a bare "Question: ...\nAnswer:\n" (arith's default: its demo models were trained on it)
    style: Optional[Literal["instruction", "few_shot", "plain"]] = None
    system: Optional[str] = None
    instruction: Optional[str] = None  # text before the question; {question} placeholder allowed
    step_delimiter: Optional[str] = None  # stop string between steps, e.g. "\n\n"
    answer_marker: Optional[str] = None  # e.g. "The answer is" or "\\boxed"
    chat_template: Optional[bool] = None  # None: use it when the model has one
    n_shots: int = Field(4, ge=0)


class StrategyConfig(BaseModel):
    """One strategy entry; extra keys are the strategy's own Params (validated there)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str
    label: Optional[str] = None  # the records' `strategy` (default: name); tells two entries of one search apart
    budgets: list[Budget] = Field(default_factory=lambda: [1], min_length=1)
    aggregator: Optional[str] = None  # override the strategy's default aggregator
    aggregators: Optional[list[str]] = None  # several aggregators over the same candidates
    reduction: Reduction = "last"  # step-score reduction for voting
    temperature: Optional[float] = Field(None, ge=0, le=MAX_TEMPERATURE)  # overrides sampling.temperature

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        return _no_repeats(v, "budget")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from rebase.registry import STRATEGIES

        STRATEGIES.check(v)
        return v

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SamplingConfig(Strict):
    temperature: float = Field(1.0, ge=0, le=MAX_TEMPERATURE)
    top_p: float = Field(1.0, gt=0, le=1)
    max_step_tokens: int = Field(256, gt=0, le=MAX_STEP_TOKENS)
    max_tokens: int = Field(1024, gt=0, le=MAX_TOKENS)  # cumulative cap per solution (a true cap)
    max_depth: int = Field(25, gt=0, le=MAX_DEPTH)
    # a step = this many generated tokens, for models that never write the step delimiter (thinking
    # models, code); tree strategies then cut steps by count and finish on the answer or EOS
    step_tokens: Optional[int] = Field(None, gt=0, le=MAX_STEP_TOKENS)


class RayConfig(Strict):
    """`rebase sweep --ray`: actors and local-instance resources (env vars REBASE_RAY_WORKERS,
    REBASE_RAY_CPUS, REBASE_RAY_OBJECT_STORE_MB override these)."""

    workers: Optional[PositiveInt] = None  # CPU actors (default min(2, cluster CPUs)); GPUs: one per GPU
    cpus: Optional[PositiveInt] = None  # CPUs of a local instance (default: all cores)
    object_store_mb: int = Field(256, ge=80)  # object store of a local instance


class RunConfig(Strict):
    """Top-level config; the key names here are the contract (docs/ARCHITECTURE.md)."""

    models: list[ModelConfig] = Field(min_length=1)
    prm: Optional[PRMConfig] = None
    dataset: DatasetConfig
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    strategies: list[StrategyConfig] = Field(min_length=1)
    seeds: list[SeedValue] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    batch_problems: int = Field(
        16, gt=0, le=MAX_BATCH_PROBLEMS
    )  # problems searched together (one generate call per round)
    flops_view: FlopView = "total"  # the report's x-axis
    save_trees: bool = True
    sample_reuse: bool = True  # N-sample strategies share one pool per (model, problem, seed)
    include_truncated: bool = False  # whether truncated solutions vote
    # answers that cannot be extracted vote as one "[invalid]" group, as in the released code
    # (docs/FIDELITY.md): that group can win, and its win is graded wrong
    invalid_votes: bool = False
    output: Optional[str] = None  # default output directory
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return _no_repeats(v, "seed")


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if any(not p.strip() for p in parts):
        raise BadInput(f"--set {key!r}: an empty part in the key path")
    cur: Any = d
    for i, p in enumerate(parts[:-1]):
        nxt, here = parts[i + 1], ".".join(parts[: i + 1])
        if isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                raise BadInput(f"--set {key}: '{p}' is not an index of the list at '{'.'.join(parts[:i])}'")
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            if p not in cur or cur[p] is None:
                cur[p] = [] if nxt.isdigit() else {}
            cur = cur[p]
        if not isinstance(cur, (dict, list)):
            raise BadInput(f"--set {key}: '{here}' holds a {type(cur).__name__}, not a mapping or list")
    last = parts[-1]
    if isinstance(cur, list):
        if not last.isdigit() or int(last) >= len(cur):
            raise BadInput(f"--set {key}: '{last}' is not an index of the list")
        cur[int(last)] = value
    else:
        cur[last] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`--set a.b=v`: v is parsed as YAML (so 0.2, [1, 4], true, null work)."""
    for item in overrides or []:
        if "=" not in item:
            raise BadInput(f"--set '{item}': expected key=value")
        key, _, val = item.partition("=")
        try:
            value = load_yaml(val, f"--set {key.strip()}") if val.strip() else ""
        except yaml.YAMLError:
            value = val
        _set_dotted(raw, key.strip(), value)
    return raw


def _model_label(raw: Any, loc: tuple) -> str:
    """The suffix \" (model 'NAME')\" for an error inside models.N: the line names the model and the key."""
    if len(loc) > 1 and loc[0] == "models" and isinstance(loc[1], int) and isinstance(raw, dict):
        models = raw.get("models")
        if isinstance(models, list) and loc[1] < len(models) and isinstance(models[loc[1]], dict):
            name = models[loc[1]].get("name")
            if name is not None:
                return f" (model '{name}')"
    return ""


def _format_error(source: str, err: ValidationError, raw: Any = None) -> str:
    # an unknown key first: a misspelt key also shows up as the missing key it was meant to be
    errs = sorted(err.errors(), key=lambda x: x["type"] != "extra_forbidden")
    e = errs[0]
    # a discriminated union puts the backend tag into the location: models.0.openai.base_url
    loc = (
        ".".join(
            str(x)
            for i, x in enumerate(e["loc"])
            if not (x in BACKEND_NAMES + ("plugin",) and i and isinstance(e["loc"][i - 1], int))
        )
        or "(top level)"
    )
    msg = e["msg"]
    if e["type"] == "unknown_backend":
        from rebase.registry import BACKENDS

        loc += ".backend"
        try:
            BACKENDS.check(str(e["input"].get("backend")))
            msg = f"backend '{e['input'].get('backend')}' has no model config"
        except BadInput as bad:
            msg = str(bad)
    elif e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{_model_label(raw, e['loc'])}{more}"


def load_config(path: str | Path | None, overrides: list[str] | None = None, raw: dict | None = None) -> RunConfig:
    """Read, override and validate a config; every problem is a one-line BadInput."""
    source = str(path) if path is not None else "<config>"
    if raw is None:
        p = Path(path)  # type: ignore[arg-type]
        if not p.is_file():
            raise BadInput(f"{source}: config file not found")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{source}: not UTF-8 text") from None
        try:
            raw = load_yaml(text, source)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise BadInput(f"{source}:{where}: malformed YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: expected a mapping of keys at the top level")
    raw = apply_overrides(raw, overrides or [])
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise BadInput(_format_error(source, err, raw)) from None
    _check_semantics(source, cfg)
    return cfg


def _check_semantics(source: str, cfg: RunConfig) -> None:
    """Cross-field checks pydantic cannot express locally."""
    from rebase.registry import AGGREGATORS, STRATEGIES

    for i, m in enumerate(cfg.models):
        check_name(m.name, f"{source}: models.{i}.name")
    check_unique(source, ((f"models.{i}.name", m.name) for i, m in enumerate(cfg.models)), "model name")
    for i, s in enumerate(cfg.strategies):
        if s.label is not None:
            check_name(s.label, f"{source}: strategies.{i}.label")
    check_collisions(source, cfg)
    check_templates(source, cfg)
    for i, s in enumerate(cfg.strategies):
        cls = STRATEGIES.get(s.name)
        for a in ([s.aggregator] if s.aggregator else []) + (s.aggregators or []):
            try:
                AGGREGATORS.check(a)
            except BadInput as e:
                raise BadInput(f"{source}: strategies.{i}.aggregator: {e}") from None
        try:
            cls.Params.model_validate(s.options())
        except ValidationError as err:
            raise BadInput(_format_error(f"{source}: strategies.{i}", err)) from None
        if getattr(cls, "needs_prm", False) and cfg.prm is None:
            raise BadInput(f"{source}: strategies.{i}: '{s.name}' needs a 'prm' section")
        fixed = getattr(cls, "fixed_budget", None)
        if fixed is not None and any(b != fixed for b in s.budgets):
            raise BadInput(f"{source}: strategies.{i}.budgets: {s.name} takes budget {fixed} only")


def config_hash(cfg: RunConfig) -> str:
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
