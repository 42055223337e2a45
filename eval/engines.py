"""The engines of a sweep: the current policy model's generator and the one PRM all models share.

Why one owner: a vLLM engine (policy or PRM pooling engine) holds GPU memory and processes until it
is closed, and a sweep runs several policy models against one PRM. `Engines` loads each on first
use, swaps the generator when the sweep moves to the next model (closing the old one first, so two
policies never sit in memory together), keeps the PRM across models, and closes both on `close()`
or when its `with` block ends, also after an error. The single-process runner and each Ray actor
hold one.

    with Engines(cfg) as engines:
        gen = engines.generator(cfg.models[0])   # loads it
        prm = engines.prm()                      # loads cfg.prm (None when the config has none)
    # both closed here
"""

from __future__ import annotations

import gc
from typing import Any, Optional

from rebase.config import ModelConfig, RunConfig
from rebase.registry import BACKENDS, PRM_FAMILIES


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if callable(close):
        close()


class Engines:
    def __init__(self, cfg: RunConfig, prm: Any = None):
        self.cfg = cfg
        self._model: Optional[ModelConfig] = None
        self._generator: Any = None
        self._prm = prm

    # -- policy ----------------------------------------------------------------------------------
    def generator(self, model: ModelConfig) -> Any:
        """The generator of `model`, loading it (and closing another model's) when needed."""
        if not self.loaded(model):
            self.release_generator()
            self._generator = BACKENDS.get(model.backend)(model)
            self._model = model
        return self._generator

    def install(self, model: ModelConfig, generator: Any) -> None:
        """Use an already built generator for `model` (it is closed with the others)."""
        self.release_generator()
        self._model, self._generator = model, generator

    def loaded(self, model: ModelConfig) -> bool:
        return self._generator is not None and self._model == model

    def n_params(self, model: ModelConfig) -> Optional[int]:
        """The loaded generator's parameter count, or the config's when `model` is not loaded (a
        failure record must not trigger a model load)."""
        return self._generator.flop_spec.n_params if self.loaded(model) else model.params

    def release_generator(self) -> None:
        if self._generator is not None:
            gen, self._generator, self._model = self._generator, None, None
            _close(gen)
            del gen
            gc.collect()  # free the old policy before the next one loads

    # -- PRM -------------------------------------------------------------------------------------
    def prm(self) -> Optional[Any]:
        """The sweep's PRM, loaded on first use; None when the config has none."""
        if self._prm is None and self.cfg.prm is not None:
            self._prm = PRM_FAMILIES.get(self.cfg.prm.family)(self.cfg.prm)
        return self._prm

    @property
    def loaded_prm(self) -> Optional[Any]:
        """The PRM if it is already loaded, without loading it."""
        return self._prm

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.release_generator()
        finally:
            prm, self._prm = self._prm, None
            if prm is not None:
                _close(prm)

    def __enter__(self) -> "Engines":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
