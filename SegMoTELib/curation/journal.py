"""Append-only journal of finished work units: what makes a curation run resumable.

One JSON line per finished unit (its metric records and errors), flushed and fsynced before the
next is taken, so a crash or Ctrl-C loses only the units in flight. A torn last line (killed
mid-write) is dropped on reopening. Floats are written with `repr` precision, so a resumed run
rebuilds exactly the records an uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = None

    def load(self) -> dict[str, dict]:
        """Finished units by key; truncates the file after its last complete line."""
        done: dict[str, dict] = {}
        if not self.path.is_file():
            return done
        good_bytes = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    entry = json.loads(line)
                except ValueError:
                    break
                done[entry["key"]] = entry
                good_bytes += len(line)
        if good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good_bytes)
        return done

    def append(self, entry: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
