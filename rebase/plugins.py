"""Component loading: the built-in strategies, aggregators, PRM families, backends and datasets,
then third-party ones from the `rebase.plugins` entry-point group. No fork needed to add one.

A plugin is an installed distribution that declares, in its pyproject.toml,

    [project.entry-points."rebase.plugins"]
    my_search = "my_package.search"            # a module: importing it runs its @register decorators
    my_prms = "my_package.prms:register"        # or a function, called with no arguments

and registers with the project's registries (rebase/registry.py):

    from rebase.registry import STRATEGIES
    from strategies.base import Strategy

    @STRATEGIES.register("my_search")
    class MySearch(Strategy): ...

Everything loads once, on the first registry lookup (never at `import rebase`). A plugin that fails
to import, or that takes a name already registered, is a BadInput naming the entry point.
`rebase ls` lists what is registered.

The built-ins load the same way, from the list below: the one place where the core names the
packages above it, as data (module names), never as imports. They are deliberately not declared as
the package's own `rebase.plugins` entry points: those are read from installed metadata, so a
source checkout run with PYTHONPATH would have no built-ins, and an editable install would miss a
new built-in module until it is reinstalled. The list is always the code's own.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

from rebase.errors import BadInput

GROUP = "rebase.plugins"
BUILTIN = ("rebase.backends", "rebase.tasks.datasets", "reward_models", "strategies", "strategies.aggregators")

_lock = threading.RLock()
_state = {"loaded": False, "loading": False}


def load_plugins() -> None:
    """Import the built-in component modules, then every `rebase.plugins` entry point (once)."""
    with _lock:
        if _state["loaded"] or _state["loading"]:
            return  # `loading`: a component module looked a name up while being imported
        _state["loading"] = True
        try:
            for mod in BUILTIN:
                importlib.import_module(mod)
            for ep in entry_points():
                load_entry_point(ep)
            _state["loaded"] = True
        finally:
            _state["loading"] = False


def entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=GROUP)
    seen, out = set(), []
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        if (ep.name, ep.value) not in seen:  # one distribution found twice on sys.path
            seen.add((ep.name, ep.value))
            out.append(ep)
    return out


def load_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
    where = f"plugin entry point '{ep.name} = {ep.value}' (distribution {dist})"
    try:
        obj = ep.load()
        if callable(obj):
            obj()
    except BadInput as e:
        raise BadInput(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any import-time failure of third-party code
        raise BadInput(
            f"{where}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
