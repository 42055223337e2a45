"""The append-only record store: DIR/results.jsonl, safe under SIGKILL at any moment.

Records are appended a batch at a time as whole lines in one write, then flushed and fsync'd, so a
kill loses at most the batch being written. A torn last line (a kill mid-write) is detected on open:
it is dropped from the view and cut from the file before new lines are appended, so the file never
holds a line glued to a half line. Reading keeps the last record per key; a record that failed
(`error` set) is superseded by a later success, which is how a resumed sweep retries failures.

Lines are read as bytes: a line that is not UTF-8 or not JSON (a torn write) is skipped with a
warning by the sweep, the report and replay alike; a line that parses but is not a record (not an
object, or missing a key field) is BadInput naming the line, since no kill can produce it. Appends
use O_APPEND | O_NOFOLLOW (never through a link), and an OSError such as a full disk (ENOSPC)
propagates: the CLI exits 1, and whatever whole lines reached the disk stay and are resumed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from rebase.errors import BadInput
from eval.records import is_record, record_key


def numbered_lines(path: Path, warn: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every line; a line that is not UTF-8 JSON (a torn write) is
    skipped with a warning on stderr."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_file():
        raise BadInput(f"{path}: is not a regular file")
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield i, json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is a ValueError too
                if warn:
                    print(f"warning: {path}:{i}: skipping a torn or malformed line", file=sys.stderr)


def read_jsonl(path: Path, warn: bool = True) -> Iterator[Any]:
    """Parsed lines (see numbered_lines)."""
    for _, obj in numbered_lines(path, warn):
        yield obj


def read_records(path: Path, warn: bool = True) -> Iterator[dict]:
    """Records of a results.jsonl; a parsed line that is not a record is BadInput naming it."""
    for i, rec in numbered_lines(path, warn):
        if not is_record(rec):
            raise BadInput(
                f"{path}:{i}: not a record (expected a JSON object with "
                "model, dataset, problem_id, strategy, aggregator, budget, seed)"
            )
        yield rec


def _cut_torn_tail(path: Path) -> None:
    """If the file does not end with a newline, cut it back to the last complete line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data_end = f.seek(0, os.SEEK_END)
        pos = data_end
        chunk = 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            nl = buf.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                break
            pos = start
        else:
            f.truncate(0)
        f.flush()
        os.fsync(f.fileno())


class JsonlAppender:
    """Append whole JSON lines durably (one write + flush + fsync per batch)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)

    def append(self, rows: Iterable[dict]) -> int:
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
        if not text:
            return 0
        blob = text.encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            view = memoryview(blob)
            while view:  # os.write may write less than asked (signals, quotas)
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return text.count("\n")


class RecordStore(JsonlAppender):
    """DIR/results.jsonl keyed by (model, dataset, problem, strategy, aggregator, budget, seed).

    A success is written once: `append` skips records whose key already holds a success, so a
    batch recomputed after a kill (e.g. one whose write was cut after some whole lines) cannot
    leave a key twice in the file."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._done: set[tuple] | None = None

    @staticmethod
    def read_done(path: Path) -> set[tuple]:
        """Keys with a successful record, read without creating or changing anything."""
        return {record_key(r) for r in read_records(Path(path), warn=False) if not r.get("error")}

    def append(self, rows: Iterable[dict]) -> int:
        if self._done is None:
            self._done = self.done_keys()
        fresh, seen = [], set()
        for r in rows:
            key = record_key(r)
            if key in self._done or key in seen:
                continue
            fresh.append(r)
            if not r.get("error"):
                seen.add(key)
        n = super().append(fresh)
        self._done |= seen
        return n

    def load(self) -> dict[tuple, dict]:
        out: dict[tuple, dict] = {}
        for rec in read_records(self.path):
            key = record_key(rec)
            # a success is final; a failure only stands until something replaces it
            if key in out and not out[key].get("error") and rec.get("error"):
                continue
            out[key] = rec
        return out

    def done_keys(self) -> set[tuple]:
        return {k for k, r in self.load().items() if not r.get("error")}
