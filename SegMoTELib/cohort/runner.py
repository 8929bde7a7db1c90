"""Run a cohort on an engine: check every row, skip finished structures, segment the rest by study,
log failures.

Output folder: `<study>.seg.nrrd` per study (one segment per row) and `failures.csv` (line, image,
prompt, name, study, error) listing the rows of this run that cannot run or failed. A row whose
segment is in its study's file is skipped, so a rerun after a crash, a Ctrl-C or a fixed row
segments only what is missing (remove a study's file to segment it again). Every output is written
atomically, so a study never has a partial file. When stdout is not a terminal (a log file, a
pipeline) each finished structure is one line there; a terminal gets a progress bar on stderr.
"""

from __future__ import annotations

import csv
import io as text_io
import sys
import time
from pathlib import Path

from ..errors import InputError, one_line
from ..io.outputs import make_output_folder
from ..model_spec import ModelSpec
from .study import StudyJob, written_segments
from .table import CohortRow, RowProblem

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


def plan_jobs(rows: list[CohortRow], folder: Path) -> tuple[list[StudyJob], int]:
    """(one job per study with rows whose segment is not written yet, the number of rows skipped)."""
    by_study: dict[str, list[CohortRow]] = {}
    for row in rows:
        by_study.setdefault(row.study, []).append(row)
    jobs, skipped = [], 0
    for study, members in by_study.items():
        written = written_segments(folder / f"{study}.seg.nrrd") or {}
        todo = [row for row in members if row.name not in written]
        skipped += len(members) - len(todo)
        if todo:
            jobs.append(StudyJob(study, members[0].path, tuple(todo), tuple(row.name for row in members)))
    return jobs, skipped


def run_cohort(rows: list[CohortRow], out_dir, engine, progress: bool = True,
               problems: list[RowProblem] = ()) -> dict:
    """Segment `rows` into `out_dir` on an entered engine; `problems` (rows found bad before) are
    logged as failures. Returns the run summary."""
    from tqdm import tqdm

    folder = prepare_out_dir(out_dir)
    jobs, skipped = plan_jobs(rows, folder)
    failures = [{"line": p.line, "study": p.study, "name": p.name, "error": p.error, "problem": p} for p in problems]
    by_line = {row.line: row for row in rows}
    log_lines = progress and not sys.stdout.isatty()
    if failures:
        _write_failures(folder, failures, by_line)
    written, started = 0, time.perf_counter()
    todo = sum(len(job.rows) for job in jobs)
    with tqdm(total=todo, unit="structure", desc=f"batch ({engine.name})", file=sys.stderr,
              disable=not progress or not todo or not sys.stderr.isatty(), dynamic_ncols=True) as bar:
        for outcomes in engine.run(jobs, folder) if jobs else ():
            for outcome in outcomes:
                if outcome["status"] == "written":
                    written += 1
                else:
                    failures.append(outcome)
                    _write_failures(folder, failures, by_line)
                    if not log_lines:
                        bar.write(one_line(f"failed: line {outcome['line']} ({outcome['study']}, "
                                           f"{outcome['name']}): {outcome['error']}"), file=sys.stderr)
                if log_lines:
                    print(_log_line(outcome, written + len(failures) - len(problems), todo), flush=True)
            bar.update(len(outcomes))
            bar.set_postfix(written=written, failed=len(failures), refresh=False)
    seconds = time.perf_counter() - started
    _write_failures(folder, failures, by_line)
    return {"engine": engine.name, "workers": engine.workers, "rows": len(rows) + len(problems), "skipped": skipped,
            "written": written, "failed": len(failures), "studies": len(jobs), "seconds": seconds,
            "structures_per_second": todo / seconds if todo and seconds > 0 else 0.0,
            "out_dir": str(folder), "failures": str(folder / FAILURES_FILE), "notice": getattr(engine, "notice", "")}


def _log_line(outcome: dict, done: int, total: int) -> str:
    where = f"[{done}/{total}] line {outcome['line']} ({outcome['study']}, {outcome['name']})"
    if outcome["status"] == "written":
        return f"{where}: written, {outcome['voxels']} voxels in {outcome['seconds']:.1f} s"
    return one_line(f"{where}: failed: {outcome['error']}")


def _write_failures(folder: Path, failures: list[dict], by_line: dict) -> None:
    from ..io import atomic_output

    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, FAILURE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for outcome in sorted(failures, key=lambda item: item["line"]):
        source = outcome.get("problem") or by_line[outcome["line"]]
        writer.writerow({"line": source.line, "image": source.image, "prompt": source.prompt_text,
                         "name": source.name, "study": source.study, "error": outcome["error"]})
    with atomic_output(folder / FAILURES_FILE, "--out") as staged:
        staged.write_text(buffer.getvalue(), encoding="utf-8")
