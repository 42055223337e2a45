"""Policy model configs: one pydantic model per generation backend, picked by the `backend` key.

Why: a flat model entry accepted `base_url` on a transformers model and let an `openai` model
without `base_url` through, so the mistake surfaced as per-problem failures an hour into a sweep.
With one model per backend, a field of another backend is an "unknown key" and a field a backend
needs is "Field required", both named by `models.N.key` before anything runs.

    from rebase.model_config import TransformersModel, OpenAIModel
    TransformersModel(name="m", path="path/to/model")
    OpenAIModel(name="q", path="Qwen/Qwen2.5-Math-7B-Instruct", base_url="http://127.0.0.1:8000/v1",
                params=7_600_000_000)

`ModelConfig` is the discriminated union used in `RunConfig.models`; `preflight()` on each model
does the checks that need the filesystem or the environment (no weights are loaded).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, field_validator

from rebase.errors import BadInput

BACKEND_NAMES = ("transformers", "vllm", "openai")


class _Model(BaseModel):
    """Fields every backend shares."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str  # label in records and plots
    path: str  # HF hub id, local directory, package:NAME/SUB, or the served model name (openai)
    trust_remote_code: bool = False  # off unless the config says so
    chat_template: Optional[bool] = None  # None: use the tokenizer's chat template if it has one
    params: Optional[PositiveInt] = None  # parameter count override (e.g. for served models)

    def preflight(self, where: str) -> None:
        """Filesystem checks without loading weights; BadInput naming `where` (e.g. models.1)."""
        from rebase.paths import check_path, package_dir

        gguf = getattr(self, "gguf_file", None)
        try:
            check_path(self.path, gguf)
        except BadInput as e:
            raise BadInput(f"{where}.path: {e}") from None
        local = Path(package_dir(self.path)).expanduser()
        if local.is_dir() and not gguf and not (local / "config.json").is_file():
            raise BadInput(f"{where}.path: cannot load '{self.path}' (no config.json: not a model folder)")


class TransformersModel(_Model):
    """In-process transformers generation (rebase/backends/hf.py)."""

    backend: Literal["transformers"] = "transformers"
    gguf_file: Optional[str] = None  # a GGUF file inside `path` (transformers dequantizes it)
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_tokens: PositiveInt = 65536  # max tokens (prompt + new) per forward batch
    kv_cache_bytes: PositiveInt = 2 * 1024**3  # prefix KV cache memory bound
    prefix_reuse: bool = True  # children reuse their parent's KV cache
    cascade_attention: bool = True  # CPU decode reads a prompt's KV once for all its rows (hf_cascade.py)


class VLLMModel(_Model):
    """An in-process vLLM engine (rebase/backends/vllm_backend.py)."""

    backend: Literal["vllm"]
    gguf_file: Optional[str] = None  # vLLM loads the GGUF file with the tokenizer of its folder
    dtype: str = "auto"
    engine_args: dict[str, Any] = Field(default_factory=dict)  # extra vllm.LLM(...) arguments (rebase/engine_args.py)

    @field_validator("engine_args")
    @classmethod
    def _engine_args(cls, v: dict[str, Any]) -> dict[str, Any]:
        from rebase.engine_args import check_engine_args

        return check_engine_args(v)

    def preflight(self, where: str) -> None:
        import importlib.util

        super().preflight(where)
        if importlib.util.find_spec("vllm") is None:
            raise BadInput(f"{where}.backend: 'vllm' is not installed (pip install vllm)")


class OpenAIModel(_Model):
    """An OpenAI-compatible completions server (rebase/backends/openai_backend.py)."""

    backend: Literal["openai"]
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    api_key_env: Optional[str] = None  # env var holding the key (never recorded)
    max_concurrency: int = Field(16, gt=0, le=1024)  # in-flight requests
    max_retries: int = Field(3, ge=0, le=20)  # retries on 429 / 5xx / timeout
    timeout_s: float = Field(120.0, gt=0, le=3600)  # per-request timeout

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            from rebase.secrets import redact_url

            raise ValueError(f"'{redact_url(v)}' is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        return v

    def preflight(self, where: str) -> None:
        local = Path(self.path).expanduser()
        if self.params is None and not (local / "config.json").is_file():
            raise BadInput(
                f"{where}.params: backend 'openai' needs the parameter count when path "
                f"'{self.path}' is not a local model folder with a config.json"
            )
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise BadInput(f"{where}.api_key_env: environment variable {self.api_key_env} is not set")


class PluginModel(_Model):
    """A backend registered by a plugin (`@BACKENDS.register("name")`) that the three models above
    do not know: its own keys pass through to it, and it checks them itself."""

    model_config = ConfigDict(extra="allow")
    backend: str

    def preflight(self, where: str) -> None:
        pass  # the plugin's constructor checks its own keys


def backend_of(v: Any) -> Optional[str]:
    """The discriminator: the `backend` key (default transformers); "plugin" for another registered
    backend; None for an unknown one, which pydantic reports as `unknown_backend` (config.py turns
    that into the registry's did-you-mean message)."""
    b = v.get("backend", "transformers") if isinstance(v, dict) else getattr(v, "backend", None)
    if b in BACKEND_NAMES:
        return b
    from rebase.registry import BACKENDS

    return "plugin" if isinstance(b, str) and b in BACKENDS else None


ModelConfig = Annotated[
    Union[
        Annotated[TransformersModel, Tag("transformers")],
        Annotated[VLLMModel, Tag("vllm")],
        Annotated[OpenAIModel, Tag("openai")],
        Annotated[PluginModel, Tag("plugin")],
    ],
    Discriminator(
        backend_of,
        custom_error_type="unknown_backend",
        custom_error_message="unknown backend",
        custom_error_context={"discriminator": "backend"},
    ),
]
