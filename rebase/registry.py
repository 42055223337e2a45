"""Name -> implementation registries with decorator registration and lazy imports.

Strategies, aggregators, PRM families, backends and datasets are looked up by the names used in
YAML configs. Heavy implementations (torch, vllm, ray) are registered *lazily* as "module:attr"
strings so that importing rebase, or validating a config, never imports them.

    STRATEGIES = Registry("strategy")

    @STRATEGIES.register("rebase")
    class Rebase: ...

A miss raises BadInput: "unknown strategy 'rebse'; did you mean 'rebase'?; available: ...".
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable

from rebase.errors import BadInput


class Registry:
    """A named table of implementations; values are objects or lazy "module:attr" paths."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._table: dict[str, Any] = {}
        # modules imported on first lookup so their @register decorators run (no import-time work)
        self._modules = modules
        self._loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            self._table[name] = obj
            return obj

        return deco

    def register_lazy(self, name: str, target: str) -> None:
        """Register "package.module:attr", imported only when `name` is first looked up."""
        self._table[name] = target

    def _load_modules(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        self._load_modules()
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def check(self, name: str) -> None:
        """Raise BadInput with suggestions when `name` is not registered (no heavy import)."""
        names = self.names()
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise BadInput(f"unknown {self.kind} '{name}'{hint}; available: {', '.join(names)}")

    def get(self, name: str) -> Any:
        self.check(name)
        obj = self._table[name]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._table[name] = obj
        return obj


# The project's registries. Modules listed here hold only light code or lazy registrations.
STRATEGIES = Registry("strategy", ("strategies",))
AGGREGATORS = Registry("aggregator", ("strategies.aggregators",))
PRM_FAMILIES = Registry("PRM family", ("reward_models",))
BACKENDS = Registry("backend", ("rebase.backends",))
DATASETS = Registry("dataset", ("rebase.tasks.datasets",))
