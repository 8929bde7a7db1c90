"""Append-only journal of finished work units: what makes a curation run resumable.

One JSON line per finished unit (its key, its records and errors), flushed and fsynced before the
next is taken, so a crash or Ctrl-C loses only the units in flight. A torn last line (killed
mid-write: no newline at its end) is dropped on reopening. Floats are written with `repr`
precision, so a resumed run rebuilds exactly the records an uninterrupted run would have. A unit's
key covers its files' contents (`fingerprint.py`): an entry whose files changed since is simply not
found, and the unit is measured again.

A complete line that is not a finished unit (not JSON, JSON without its key, records of another
version, an edited file) is moved to `<journal>.rejected` beside it: its unit is measured again,
the lines after it are kept, and `problems` names the journal's path and line for the run's
summary, once (the next resume does not meet the line again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .work import RECORD_FIELDS


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = None
        self.problems: list[str] = []  # skipped lines, by path and line number

    def load(self) -> dict[str, dict]:
        """Finished units by key; truncates the file after its last complete line."""
        done: dict[str, dict] = {}
        if not self.path.is_file():
            return done
        good_bytes, rejected = 0, set()
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break  # torn by a kill mid-write: only ever the last line
                good_bytes += len(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = _NOT_JSON
                fault = _fault_of(entry)
                if fault:
                    rejected.add(number)
                    self.problems.append(f"{self.path} line {number}: {fault}; moved to {self.rejected_path.name}, "
                                         f"its unit is measured again")
                    continue
                done[entry["key"]] = entry
        if rejected:
            self._set_aside(rejected, good_bytes)
        elif good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good_bytes)
        return done

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def _set_aside(self, numbers: set[int], good_bytes: int) -> None:
        """Append the rejected lines to the rejected file, then replace the journal by its other
        complete lines (written beside it and renamed: a crash leaves one or the other whole)."""
        staging = self.path.with_name(self.path.name + ".rewrite")
        with self.path.open("rb") as source, self.rejected_path.open("ab") as aside, staging.open("wb") as kept:
            remaining = good_bytes
            for number, line in enumerate(source, start=1):
                if remaining <= 0:
                    break
                remaining -= len(line)
                (aside if number in numbers else kept).write(line)
            for stream in (aside, kept):
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(staging, self.path)

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


_NOT_JSON = object()


def _fault_of(entry) -> str | None:
    """What makes a journal entry unusable, or None for a finished unit."""
    if entry is _NOT_JSON:
        return "not a JSON line (the file was edited or damaged)"
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {type(entry).__name__}"
    for field, kind in (("key", str), ("records", list), ("errors", list), ("slices", int)):
        if not isinstance(entry.get(field), kind):
            return f"no valid '{field}' field" if field in entry else f"no '{field}' field"
    for record in entry["records"]:
        missing = [name for name in RECORD_FIELDS if not isinstance(record, dict) or name not in record]
        if missing:
            return f"a record lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    return None
