"""Name -> implementation registries with decorator registration and lazy imports.

Strategies, aggregators, PRM families, backends and datasets are looked up by the names used in
YAML configs. Heavy implementations (torch, vllm, ray) are registered *lazily* as "module:attr"
strings so that importing rebase, or validating a config, never imports them.

    STRATEGIES = Registry("strategy")

    @STRATEGIES.register("rebase")
    class Rebase: ...

A miss raises BadInput: "unknown strategy 'rebse'; did you mean 'rebase'?; available: ...". A name
registered twice by different objects (two plugins, or a plugin and a built-in) is a BadInput too:
nothing is silently overwritten. Third-party components arrive through the `rebase.plugins`
entry-point group (rebase/plugins.py).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable

from rebase.errors import BadInput


class Registry:
    """A named table of implementations; values are objects or lazy "module:attr" paths."""

    def __init__(self, kind: str, plural: str):
        self.kind = kind
        self.plural = plural  # the `rebase ls` word: strategies, aggregators, prms, backends, datasets
        self._table: dict[str, Any] = {}
        self._docs: dict[str, str] = {}

    def _add(self, name: str, obj: Any) -> None:
        old = self._table.get(name)
        if old is not None and old is not obj and not _same(old, obj):
            raise BadInput(
                f"{self.kind} '{name}' is registered twice ({_where(old)} and {_where(obj)}); rename one of them"
            )
        self._table[name] = obj

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: `@STRATEGIES.register("my_search")`. A name taken by another object is an error."""

        def deco(obj: Any) -> Any:
            self._add(name, obj)
            return obj

        return deco

    def register_lazy(self, name: str, target: str, doc: str = "") -> None:
        """Register "package.module:attr", imported only when `name` is first looked up; `doc` is
        its one-line description for `rebase ls` (read without importing it)."""
        self._add(name, target)
        if doc:
            self._docs[name] = doc

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register a component of their own clean up with this)."""
        self._table.pop(name, None)
        self._docs.pop(name, None)

    def names(self) -> list[str]:
        from rebase.plugins import load_plugins

        load_plugins()  # built-in components and `rebase.plugins` entry points register themselves
        return sorted(self._table)

    def in_order(self) -> list[str]:
        """The names in registration order (built-ins first, as their modules declare them)."""
        self.names()
        return list(self._table)

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

    def describe(self) -> dict[str, str]:
        """name -> one-line description: the lazy entry's doc, else the first docstring line."""
        out = {}
        for name in self.names():
            doc = self._docs.get(name)
            if doc is None:
                try:
                    doc = (inspect.getdoc(self.get(name)) or "").strip().splitlines()
                    doc = doc[0] if doc else ""
                except Exception as e:  # noqa: BLE001 - a broken plugin is listed, not fatal
                    doc = f"(cannot import: {type(e).__name__}: {e})".splitlines()[0]
            out[name] = doc
        return out


def _same(a: Any, b: Any) -> bool:
    """A lazy path and the object it names are the same registration (a module imported twice, or
    an entry resolved by get)."""
    return _where(a) == _where(b)


def _where(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


# The project's registries; rebase/plugins.py fills them (built-ins first, then entry points).
STRATEGIES = Registry("strategy", "strategies")
AGGREGATORS = Registry("aggregator", "aggregators")
PRM_FAMILIES = Registry("PRM family", "prms")
BACKENDS = Registry("backend", "backends")
DATASETS = Registry("dataset", "datasets")
ALL = (STRATEGIES, AGGREGATORS, PRM_FAMILIES, BACKENDS, DATASETS)
