"""The append-only record store: DIR/results.jsonl, safe under SIGKILL at any moment.

Records are appended a batch at a time as whole lines in one write, then flushed and fsync'd, so a
kill loses at most the batch being written. A torn last line (a kill mid-write) is detected on open:
it is dropped from the view and cut from the file before new lines are appended, so the file never
holds a line glued to a half line. Reading keeps the last record per key; a record that failed
(`error` set) is superseded by a later success, which is how a resumed sweep retries failures.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

from eval.records import record_key


def read_jsonl(path: Path, warn: bool = True) -> Iterator[dict]:
    """Yield parsed lines; a line that does not parse (a torn write) is skipped with a warning."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except ValueError:
                if warn:
                    print(f"warning: {path}:{i}: skipping a torn or malformed line", file=sys.stderr)


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
        blob = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
        if not blob:
            return 0
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        return blob.count("\n")


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
        return {record_key(r) for r in read_jsonl(Path(path), warn=False) if not r.get("error")}

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
        for rec in read_jsonl(self.path):
            key = record_key(rec)
            # a success is final; a failure only stands until something replaces it
            if key in out and not out[key].get("error") and rec.get("error"):
                continue
            out[key] = rec
        return out

    def done_keys(self) -> set[tuple]:
        return {k for k, r in self.load().items() if not r.get("error")}
