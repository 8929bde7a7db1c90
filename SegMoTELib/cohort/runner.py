"""Run a cohort on an engine: skip finished studies, segment the rest, log failures.

Output folder: `<study>.seg.nrrd` per written row and `failures.csv` (line, image, prompt, name,
study, error: the engine's message) listing the rows of this run that failed. A study whose output
exists is skipped, so a rerun after a crash, a Ctrl-C or a fixed row segments only what is missing
(delete a study's file to segment it again). Every output is written atomically, so a study never
has a partial file.
"""

from __future__ import annotations

import csv
import io as text_io
import sys
import time
from pathlib import Path

from ..errors import InputError
from ..io.outputs import make_output_folder
from ..model_spec import ModelSpec
from .table import CohortRow

FAILURE_COLUMNS = ("line", "image", "prompt", "name", "study", "error")
FAILURES_FILE = "failures.csv"


def prepare_out_dir(out_dir) -> Path:
    return make_output_folder(out_dir, "--out")


def make_cohort_engine(model: ModelSpec, engine: str = "local", address: str | None = None,
                       workers: int | None = None, num_cpus: int | None = None, cpus_per_worker: int | None = None):
    if engine == "local":
        if address or num_cpus or cpus_per_worker or (workers not in (None, 1)):
            raise InputError("--address/--num-cpus/--workers/--cpus-per-worker: only with --engine ray (the local "
                             "engine runs one predictor in this process)")
        from .local import LocalCohortEngine

        return LocalCohortEngine(model)
    if engine == "ray":
        from .ray_actors import RayCohortEngine

        return RayCohortEngine(model, address=address, workers=workers, num_cpus=num_cpus,
                               cpus_per_worker=cpus_per_worker or 1)
    raise InputError(f"--engine: expected local or ray, got {engine!r}")


def run_cohort(rows: list[CohortRow], out_dir, engine, progress: bool = True) -> dict:
    """Segment `rows` into `out_dir` on an entered engine; returns the run summary."""
    from tqdm import tqdm

    folder = prepare_out_dir(out_dir)
    todo = [row for row in rows if not (folder / row.output_name()).is_file()]
    by_line = {row.line: row for row in rows}
    failures, written, started = [], 0, time.perf_counter()
    with tqdm(total=len(todo), unit="study", desc=f"batch ({engine.name})", file=sys.stderr,
              disable=not progress or not todo, dynamic_ncols=True) as bar:
        for outcome in engine.run(todo, folder) if todo else ():
            if outcome["status"] == "written":
                written += 1
            else:
                failures.append(outcome)
                bar.write(f"failed: line {outcome['line']} ({outcome['study']}): {outcome['error']}", file=sys.stderr)
                _write_failures(folder, failures, by_line)
            bar.update(1)
            bar.set_postfix(written=written, failed=len(failures), refresh=False)
    seconds = time.perf_counter() - started
    _write_failures(folder, failures, by_line)
    return {"engine": engine.name, "workers": engine.workers, "rows": len(rows), "skipped": len(rows) - len(todo),
            "written": written, "failed": len(failures), "seconds": seconds,
            "studies_per_second": len(todo) / seconds if todo and seconds > 0 else 0.0,
            "out_dir": str(folder), "failures": str(folder / FAILURES_FILE), "notice": getattr(engine, "notice", "")}


def _write_failures(folder: Path, failures: list[dict], by_line: dict) -> None:
    from ..io import atomic_output

    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, FAILURE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for outcome in sorted(failures, key=lambda item: item["line"]):
        row = by_line[outcome["line"]]
        writer.writerow({"line": row.line, "image": row.image, "prompt": row.prompt_text, "name": row.name,
                         "study": row.study, "error": outcome["error"]})
    with atomic_output(folder / FAILURES_FILE, "--out") as staged:
        staged.write_text(buffer.getvalue(), encoding="utf-8")
