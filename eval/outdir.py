"""The output directory's guard: every path written under DIR is checked, and one process writes.

Why: names from configs become paths (DIR/trees/<model>/<unit>.jsonl), and a DIR may hold links
or directories planted where files belong. Every file the sweep, report or replay writes goes
through `inside(DIR, *parts)`, which refuses (BadInput, exit 2) a part that is not a plain name, a
symbolic link anywhere below DIR, and an existing path of the wrong kind (a directory where a file
belongs or the reverse), so a write provably stays inside DIR. `DirLock` makes one writer per
directory: an exclusive `flock` on DIR/.rebase.lock, which the kernel drops when the holder exits
in any way (so a lock left by a killed process is stale by construction and taken over); the file
holds the holder's pid, which a second process names in its exit-2 error.

    with DirLock(Path("runs/x")):
        path = inside(Path("runs/x"), "trees", "m", "pool-b4-s0.jsonl")
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Optional

from rebase.errors import BadInput

LOCK_NAME = ".rebase.lock"


def _plain_part(part: str) -> bool:
    return bool(part) and part not in (".", "..") and "/" not in part and "\\" not in part and "\0" not in part


def inside(root: Path, *parts: str, kind: str = "file") -> Path:
    """root/parts, checked: plain parts only, no symbolic link at root's level or below, and an
    existing final path must be a `kind` ("file" or "dir")."""
    root = Path(root)
    path = root
    for i, part in enumerate(parts):
        if not _plain_part(str(part)):
            raise BadInput(f"{root}: refusing to write to {'/'.join(map(str, parts))!r} ({part!r} is not a plain name)")
        path = path / part
        if path.is_symlink():
            raise BadInput(f"{path}: is a symbolic link; refusing to follow links out of {root}")
        last = i == len(parts) - 1
        want = kind if last else "dir"
        if path.exists() and (path.is_dir() != (want == "dir")):
            raise BadInput(
                f"{path}: is a {'directory' if path.is_dir() else 'file'} where a "
                f"{'directory' if want == 'dir' else 'file'} belongs"
            )
    return path


def check_writable(directory: Path, what: str) -> None:
    """BadInput unless a file can be made in `directory` (or in the nearest existing parent): tried,
    not asked of os.access, which is always True for root even on a read-only mount."""
    import tempfile

    probe = Path(directory)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rebase-probe-", dir=probe))
    except OSError as e:
        raise BadInput(f"{what} {directory}: not writable ({e.strerror or type(e).__name__} in '{probe}')") from None


def tree_path(root: Path, model: str, unit: str) -> Path:
    """DIR/trees/<model>/<unit>.jsonl, checked (model names follow the safe name rule already)."""
    inside(root, "trees", model, kind="dir")
    return inside(root, "trees", model, f"{unit}.jsonl")


def check_tree(root: Path, top: str) -> None:
    """Refuse symbolic links anywhere under root/top (a tree the run rewrites or reads back)."""
    base = inside(root, top, kind="dir")
    if not base.exists():
        return
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise BadInput(f"{p}: is a symbolic link; refusing to follow links out of {root}")


class DirLock:
    """An exclusive lock on an output directory (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "DirLock":
        import fcntl

        if self.fd is not None:
            return self
        path = inside(self.root, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise BadInput(
                    f"--out {self.root}: in use by another rebase process ({holder}); wait for it "
                    "to finish or pick another --out"
                ) from None
            raise BadInput(f"--out {self.root}: cannot lock {path} ({e.strerror})") from None
        # we hold it: any pid left in the file was a process that died without unlocking (stale)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # an empty file: nobody holds it
            except OSError:
                pass
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if not text:
        return "pid unknown"
    return f"pid {text[0]}" + (f" on {text[1]}" if len(text) > 1 and text[1] != socket.gethostname() else "")
