"""The CSV tables a curation run writes: manifest, reject log, error log (atomically).

Manifest: one row per (slice, label) record with identity, every metric, every gate verdict,
`passed`, `failures`, `score` and `selected`. Reject log: one row per failed gate of a record
(gate, metric, value, bounds). Error log: one row per file that could not be curated.
CSV rather than Parquet: pyarrow is not a dependency of the engine.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .config import QCConfig
from .gates import GATE_NAMES, GATES
from .metrics import METRIC_NAMES
from .records import IDENTITY_FIELDS

MANIFEST_COLUMNS = IDENTITY_FIELDS + METRIC_NAMES + GATE_NAMES + ("passed", "failures", "score", "selected")
REJECT_COLUMNS = ("record_id", "dataset", "case", "slice_index", "label_name", "modality", "image_file",
                  "gate", "metric", "value", "min", "max")
ERROR_COLUMNS = ("source", "dataset", "file", "error")


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, then rename: never a partial file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # after a failure (disk full): no leftover beside the target


def write_csv(path: Path, columns, rows) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    write_text_atomic(path, buffer.getvalue())


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def reject_rows(records: list[dict], config: QCConfig) -> list[dict]:
    rows = []
    for record in records:
        for gate in GATES:
            if record.get(gate.name, True):
                continue
            low, high = gate.bounds(config)
            rows.append({**{key: record.get(key) for key in REJECT_COLUMNS[:7]}, "gate": gate.name,
                         "metric": gate.metric, "value": record[gate.metric], "min": low, "max": high})
    return rows


def read_csv(path: Path) -> list[dict]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
