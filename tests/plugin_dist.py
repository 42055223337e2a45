"""A test-local plugin distribution and a `rebase` command that sees it.

Why: a third-party component reaches every process of a sweep (the CLI, each Ray worker) through
the `rebase.plugins` entry-point group. A package plus its .dist-info (METADATA and
entry_points.txt) in a folder on PYTHONPATH is how an installed wheel looks to importlib.metadata,
and a child process started with that PYTHONPATH passes it on to the Ray workers it starts.

    site = make_plugin(tmp_path / "site", "my-plugin", "my_plugin", SOURCE)
    r = rebase_cli(["run", "c.yaml", "--out", "out"], site, tmp_path)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]


def make_plugin(root: Path, name: str, entry: str, source: str) -> Path:
    """A distribution `name` whose `rebase.plugins` entry point is `entry`, its package `source`."""
    pkg = name.replace("-", "_")
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text(source, encoding="utf-8")
    info = root / f"{pkg}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[rebase.plugins]\n{pkg} = {entry}\n", encoding="utf-8")
    return root


def rebase_cli(
    args: list[str], plugin_dir: Path, cwd: Path, env: Optional[dict[str, str]] = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python -m rebase.cli ARGS` with the plugin folder and this checkout on PYTHONPATH."""
    full = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(plugin_dir), str(ROOT)]), OMP_NUM_THREADS="1", **(env or {})
    )
    return subprocess.run(
        [sys.executable, "-m", "rebase.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )
