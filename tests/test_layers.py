"""The layer rule (docs/ARCHITECTURE.md): imports only go DOWN, never sideways into another
package's privates, and no two modules import each other.

Private names stay private: `obj._name` is read or written only on `self` / `cls`, on the module's
own functions and classes, or on third-party objects (torch internals, say); another module's
object is reached through its public methods.

Layers, bottom to top (a module may import its own group and any group of a lower layer):

    0  core        rebase/*.py, rebase/demo        types, errors, ledger, registry, config, plugins
    1  backends    rebase/backends/                generation backends
    1  tasks       rebase/tasks/                   datasets: loaders, prompts, answers, grading
    2  PRMs        reward_models/                  process reward model families
    3  strategies  strategies/                     search strategies and aggregators
    4  evaluation  eval/                           sweep runner, store, replay, report
    5  CLI         rebase/cli.py                   the `rebase` command
    6  scripts     scripts/                        developer tools outside the installed package

A new file lands in its folder's layer with no change here. Every import counts, lazy ones inside
functions included: a lazy import hides an upward dependency from the import-time graph only.

    python -m pytest -q tests/test_layers.py
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rebase", "reward_models", "strategies", "eval", "scripts")

# (module prefix, group, layer); the longest matching prefix wins
GROUPS = (
    ("rebase.cli", "cli", 5),
    ("rebase.backends", "backends", 1),
    ("rebase.tasks", "tasks", 1),
    ("rebase", "core", 0),
    ("reward_models", "reward_models", 2),
    ("strategies", "strategies", 3),
    ("eval", "eval", 4),
    ("scripts", "scripts", 6),
)


def group_of(module: str) -> tuple[str, int]:
    for prefix, group, layer in GROUPS:
        if module == prefix or module.startswith(prefix + "."):
            return group, layer
    raise AssertionError(f"module {module} is in no layer")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(f)] = f
    return out


MODULES = project_modules()


def imports_of(module: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported project module, imported names) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    out.append((node.lineno, a.name, []))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:  # `from pkg import module`
                    out.append((node.lineno, sub, []))
                else:
                    out.append((node.lineno, base, [a.name]))
    return out


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_of(module: str) -> str:
    return module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]


def violations() -> list[str]:
    bad = []
    for mod, path in MODULES.items():
        g, layer = group_of(mod)
        where = path.relative_to(ROOT)
        for line, target, names in imports_of(mod, path):
            tg, tlayer = group_of(target)
            if tg != g and tlayer >= layer:
                kind = "upward" if tlayer > layer else "sideways"
                bad.append(f"{where}:{line}: {kind} import of {target} ({g} layer {layer} -> {tg} layer {tlayer})")
            # a private module may be imported only from inside its own package
            priv_mod = next((p for p in target.split(".") if is_private(p)), None)
            if priv_mod and not mod.startswith(package_of(target) + ".") and mod != package_of(target):
                bad.append(f"{where}:{line}: import of private module {target}")
            for n in names:
                if is_private(n) and target != mod:
                    bad.append(f"{where}:{line}: import of private name {n} from {target}")
    return bad


def import_cycles() -> list[list[str]]:
    """Strongly connected components of size > 1 of the module import graph (Tarjan)."""
    graph = {
        m: sorted(
            {
                t
                for _, t, _ in imports_of(m, p)
                if t in MODULES and t != m and t != package_of(m) and not m.startswith(t + ".")
            }
        )
        for m, p in MODULES.items()
    }
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def private_reach(path: Path, source: str | None = None) -> list[str]:
    """`x._name` where x is not self/cls, not defined in this module and not a third-party object."""
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    own = {"self", "cls"}
    external: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Import):
            external |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] not in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] not in PACKAGES:
            external |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):  # names bound to third-party objects: aten = torch.ops.aten
        if (
            isinstance(node, ast.Assign)
            and isinstance(_root(node.value), ast.Name)
            and _root(node.value).id in external
        ):
            external |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            root = _root(node.value)
            if isinstance(root, ast.Name) and (root.id in own or root.id in external):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: private attribute {ast.unparse(node)}")
    return bad


def test_no_private_reach_across_objects():
    bad = [b for path in MODULES.values() for b in private_reach(path)]
    assert not bad, "reach into another object's private names:\n" + "\n".join(bad)


def test_private_reach_is_caught():
    path = ROOT / "eval" / "runner.py"
    assert private_reach(path, "def f(worker):\n    return worker._prm\n")
    assert not private_reach(path, "import torch\naten = torch.ops.aten\nx = aten._foo\n")
    assert not private_reach(path, "class A:\n    def f(self):\n        return self._x\n")


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 40
    for m in MODULES:
        group_of(m)


def test_imports_only_go_down():
    bad = violations()
    assert not bad, "layer rule broken (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "source, expect",
    [
        ("from eval.runner import execute\n", "upward import of eval.runner"),
        ("from rebase.tasks.grading import grade\n", "sideways import of rebase.tasks.grading"),
        ("from reward_models._hf import load_model\n", "import of private module reward_models._hf"),
        ("from rebase.config import _private_helper\n", "import of private name _private_helper"),
    ],
)
def test_the_check_catches(tmp_path, monkeypatch, source, expect):
    """The rule itself fails on each kind of bad import (here from a file planted in backends)."""
    fake = ROOT / "rebase" / "backends" / "zz_layer_probe.py"
    monkeypatch.setitem(MODULES, "rebase.backends.zz_layer_probe", fake)
    real_read = Path.read_text

    def read_text(self, *a, **k):
        return source if self == fake else real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert any(expect in v for v in violations())


def test_a_cycle_is_caught(monkeypatch):
    a, b = ROOT / "strategies" / "zz_a.py", ROOT / "strategies" / "zz_b.py"
    monkeypatch.setitem(MODULES, "strategies.zz_a", a)
    monkeypatch.setitem(MODULES, "strategies.zz_b", b)
    real_read = Path.read_text
    src = {a: "def f():\n    from strategies.zz_b import g\n", b: "from strategies.zz_a import f\n"}

    def read_text(self, *args, **kw):
        return src[self] if self in src else real_read(self, *args, **kw)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert ["strategies.zz_a", "strategies.zz_b"] in import_cycles()
