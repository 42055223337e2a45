"""A digest of a local model's files, so that a resume notices weights replaced at the same path.

Why: the resume fingerprint (eval/fingerprint.py) names each model and PRM by its path. Retraining
a model in place (e.g. `rebase train-demo`) keeps the path but changes every score, and records
written by the old weights would silently be reused. The digest reads the weight, config and
tokenizer files of a local folder (or a single GGUF file): files up to FULL_BYTES whole, larger ones
by their size plus SAMPLES evenly spaced 1 MiB chunks, so a 15 GB checkpoint costs a few hundred MB
of reads at most and a retrained one (which differs everywhere) still changes the digest. Hub ids
and missing paths have no digest (None): the hub's own revision pins those.

    weights_digest("rebase/demo/models/arith-prm")   # "sha256:…" or None
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from rebase.errors import BadInput
from rebase.paths import looks_local, package_dir

SUFFIXES = {".safetensors", ".bin", ".gguf", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken"}
SKIP = {"train_info.json"}  # training notes: rewriting them does not change the model
FULL_BYTES = 64 << 20
CHUNK = 1 << 20
SAMPLES = 16


def _file_digest(h: "hashlib._Hash", path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        if size <= FULL_BYTES:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
            return
        for k in range(SAMPLES):
            f.seek((size - CHUNK) * k // (SAMPLES - 1))
            h.update(f.read(CHUNK))


def weights_digest(path: str, gguf_file: Optional[str] = None) -> Optional[str]:
    """sha256 over the model's files (see the module docstring); None for a hub id or no path."""
    try:
        resolved = package_dir(path)
    except BadInput:  # an uninstalled package: the config's own checks report it
        return None
    p = Path(resolved).expanduser()
    if not looks_local(resolved) or not p.exists():
        return None
    if p.is_dir() and gguf_file:
        files = [p / gguf_file] + [f for f in p.iterdir() if f.suffix == ".json" and f.name not in SKIP]
    elif p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES and f.name not in SKIP]
    else:
        files = [p]
    h = hashlib.sha256()
    for f in sorted(set(files)):
        if f.is_file():
            _file_digest(h, f)
    return "sha256:" + h.hexdigest()
