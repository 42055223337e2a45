"""The resume fingerprint: everything that changes what a record means, as flat dotted keys.

Why: `rebase sweep` resumes into a directory that already holds records; reusing them is right only
when the new config would have written the same records. The grid may grow between resumes (more
models, strategies, budgets, seeds, problems), but for every model name, strategy name and setting
already in the directory the meaning must be the same. So the fingerprint is a flat mapping, e.g.

    models.arith-s.path = ".../arith-s"        strategies.rebase.balance_temperature = 0.1
    sampling.max_tokens = 1024                  dataset.split = "test"

config.json keeps the union of the fingerprints of every run into the directory, and a key present
in both the stored and the new fingerprint must have the same value; the first that differs is the
exit-2 error. Covered: dataset name/path/split/generator seed; every sampling, prompt and PRM
setting (not the PRM's engine: either backend gives the same scores); include_truncated and
sample_reuse; per model: path, backend, gguf_file, dtype, chat_template, params,
trust_remote_code, engine arguments that change outputs, and a digest of a local model's files
(eval/weights_digest.py: weights retrained in place change the meaning of every record; the PRM's
too); per strategy: the search, its options
(defaults filled in), its effective temperature and step-score reduction. The problems themselves
are covered by each record's `problem_hash` (question and gold), checked against the problems
loaded now (`check_problems`).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Optional

from eval.weights_digest import weights_digest
from rebase.config import RunConfig, StrategyConfig, strategy_label
from rebase.registry import STRATEGIES

MODEL_KEYS = ("path", "backend", "gguf_file", "dtype", "chat_template", "params", "trust_remote_code")
DATASET_KEYS = ("name", "path", "split", "seed")
# vLLM engine arguments that only change speed or memory, not the tokens a model writes
RESOURCE_ENGINE_ARGS = {
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_num_seqs",
    "max_num_batched_tokens",
    "swap_space",
    "cpu_offload_gb",
    "enforce_eager",
    "block_size",
    "kv_cache_memory_bytes",
    "disable_log_stats",
    "enable_chunked_prefill",
    "distributed_executor_backend",
}


def _flat(out: dict[str, Any], prefix: str, value: Any) -> None:
    if isinstance(value, dict) and value:
        for k in sorted(value):
            _flat(out, f"{prefix}.{k}", value[k])
    else:
        out[prefix] = value


def strategy_spec(cfg: RunConfig, entry: StrategyConfig) -> dict[str, Any]:
    params = STRATEGIES.get(entry.name).Params.model_validate(entry.options()).model_dump(mode="json")
    temp = entry.temperature if entry.temperature is not None else cfg.sampling.temperature
    return {"search": entry.name, "temperature": temp, "reduction": entry.reduction, **params}


def fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The flat fingerprint of `cfg` (see the module docstring)."""
    d = cfg.model_dump(mode="json")
    fp: dict[str, Any] = {}
    _flat(fp, "dataset", {k: d["dataset"][k] for k in DATASET_KEYS})
    _flat(fp, "sampling", d["sampling"])
    _flat(fp, "prompt", d["prompt"])
    prm = {k: v for k, v in (d.get("prm") or {}).items() if k not in ("backend", "engine_args")}
    if prm:
        _flat(fp, "prm", prm)
        fp["prm.weights"] = weights_digest(prm["path"]) if prm.get("path") else None
    else:
        fp["prm.family"] = None  # adding or removing the PRM differs from any PRM
    fp["include_truncated"] = cfg.include_truncated
    fp["invalid_votes"] = cfg.invalid_votes
    fp["sample_reuse"] = cfg.sample_reuse
    for m in d["models"]:
        spec = {k: m.get(k) for k in MODEL_KEYS}
        # one value, not flattened: a free-form mapping whose keys may come and go
        spec["engine_args"] = json.dumps(
            {k: v for k, v in (m.get("engine_args") or {}).items() if k not in RESOURCE_ENGINE_ARGS}, sort_keys=True
        )
        spec["weights"] = weights_digest(m["path"], m.get("gguf_file"))
        _flat(fp, f"models.{m['name']}", spec)
    for entry in cfg.strategies:
        _flat(fp, f"strategies.{strategy_label(entry)}", strategy_spec(cfg, entry))
    return fp


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def first_difference(old: dict[str, Any], new: dict[str, Any]) -> Optional[str]:
    """The first key (in the new fingerprint's order) present in both with different values."""
    for key, value in new.items():
        if key in old and not _same(old[key], value):
            return key
    return None


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What config.json keeps: every key ever fingerprinted into the directory."""
    return {**old, **new}


def show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_problems(records: Iterable[dict], hashes: dict[str, str], dataset: str) -> Optional[str]:
    """The id of the first problem whose stored `problem_hash` differs from the one loaded now."""
    for rec in records:
        pid, old = rec.get("problem_id"), rec.get("problem_hash")
        if old is None or rec.get("dataset") != dataset or pid not in hashes:
            continue  # records written before problem hashes existed, or problems not loaded now
        if old != hashes[pid]:
            return str(pid)
    return None
