"""The curation run: measure every (slice, label) of the sources, gate, score, sample, export.

Output folder layout:
  manifest.csv        one row per record: identity, metrics, gate verdicts, score, selected
  rejects.csv         one row per failed gate (gate, metric, value, bounds)
  errors.csv          files that could not be curated and why (the run goes past them)
  config.json         the QCConfig used
  training_set/       the selected records in the train_pool layout (see export.py)
  report/             classes.png, histograms_by_class*.png, score_by_modality.png, summary.json, report.md
  work/journal.jsonl  finished work units: a rerun with the same --out resumes from it
  .segmote.lock       held while a run writes the folder: a second run into it is refused

A run with export=False removes the training_set/ of an earlier run, which would contradict the
new manifest.

Sources are only read. Measuring runs on an engine (`engine.py`: `workers` local processes by
default, or Ray tasks) over work units (64 pairs or one study); each finished unit is journalled as
it arrives, so an interrupted run loses only the units in flight, and a rerun measures only what is
missing, giving the same records whatever the engine. Gates, scores and sampling run here.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from ..errors import InputError
from ..intensity import normalise_modality
from ..io.folder_lock import FolderLock
from ..io.outputs import output_errors, writable_folder
from .config import QCConfig
from .engine import LocalCurationEngine
from .export import assign_names, export_records, prepare_folder, write_manifest
from .gates import apply_quality
from .journal import Journal
from .report import summarise, write_plots, write_report
from .sampler import parse_class_by, sample_records
from .sources import plan_units
from .tables import ERROR_COLUMNS, MANIFEST_COLUMNS, REJECT_COLUMNS, reject_rows, write_csv, write_text_atomic
from .work import process_unit


def run_curation(sources, target, out_dir, class_by=("dataset",), workers=None, seed=0, config=None,
                 progress=True, axis=0, modality="auto", export=True, plots=True, engine=None) -> dict:
    """Curate `sources` into `out_dir` (see the module notes); returns the run summary.

    `engine` runs the measuring (`engine.LocalCurationEngine`, `ray_engine.RayCurationEngine`); None: `workers`
    local processes. The export always runs in `workers` local processes.
    """
    started = time.perf_counter()
    config = config or QCConfig()
    class_by = parse_class_by(class_by)
    _check_arguments(sources, target, workers, axis, modality)
    workers = int(workers or os.cpu_count() or 1)
    out_dir = Path(out_dir).expanduser().resolve()
    _check_out_dir(out_dir, sources)
    writable_folder(out_dir, "--out")
    units = plan_units(sources, modality=modality, axis=axis)
    with output_errors("--out", out_dir):  # a full disk or a vanished folder: one line, not a traceback
        out_dir.mkdir(parents=True, exist_ok=True)
        with FolderLock(out_dir, "segmote curate") as lock:  # a second run into this folder is refused
            notes = [f"took over the lock of a run that no longer runs ({lock.took_over})"] if lock.took_over else []
            return _curate(units, target, out_dir, class_by, workers, seed, config, progress, axis, modality,
                           export, plots, started, notes, engine)


def _curate(units, target, out_dir: Path, class_by, workers, seed, config, progress, axis, modality, export,
            plots, started, notes: list[str], engine=None) -> dict:
    """The run proper, with `out_dir` locked; `notes` go into the summary's warnings."""
    with Journal(out_dir / "work" / "journal.jsonl") as journal:
        results = journal.load()
        pending = [unit for unit in units if unit.key not in results]
        notes = notes + _changed_since_measured(pending, results)
        measure_started = time.perf_counter()
        engine = engine or LocalCurationEngine(workers)
        fresh = _measure(pending, engine, axis, modality, journal, progress)
        measure_seconds = time.perf_counter() - measure_started
    results.update(fresh)
    records = [record for unit in units for record in results[unit.key]["records"]]
    errors = [error for unit in units for error in results[unit.key]["errors"]]

    apply_quality(records, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selected = sample_records(records, int(target), class_by, seed, config)
    chosen = set(selected)
    for index, record in enumerate(records):
        record["selected"] = index in chosen

    export_started = time.perf_counter()
    notes = notes + journal.problems
    training_set = out_dir / "training_set"
    # The new training set is written beside the earlier one and swapped in after the tables: a
    # failure (a full disk) leaves the earlier manifest and training set as they were, in agreement.
    partial = _export(training_set, [records[i] for i in selected], modality, workers) if export else None
    export_seconds = time.perf_counter() - export_started
    try:
        write_csv(out_dir / "manifest.csv", MANIFEST_COLUMNS, records)
        write_csv(out_dir / "rejects.csv", REJECT_COLUMNS, reject_rows(records, config))
        write_csv(out_dir / "errors.csv", ERROR_COLUMNS, errors)
        write_text_atomic(out_dir / "config.json", _json(config.to_dict()))
    except BaseException:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if partial is not None:
        _swap_in(partial, training_set)
    elif _remove_training_set(training_set):
        notes.append(f"removed {training_set} of an earlier run: it did not match this run's manifest (--no-export)")

    summary = summarise(records, selected, int(target), class_by, errors, config)
    fresh_slices = sum(result["slices"] for result in fresh.values())
    summary["timing"] = {"engine": engine.name, "workers": engine.workers,
                         "units": len(units), "units_resumed": len(units) - len(pending),
                         "slices_measured": fresh_slices, "measure_seconds": measure_seconds,
                         "slices_per_second": fresh_slices / measure_seconds if measure_seconds > 0 else 0.0,
                         "export_seconds": export_seconds}
    summary["warnings"] = [str(item.message) for item in caught] + notes
    summary["out_dir"] = str(out_dir)
    report_started = time.perf_counter()
    summary["plots"] = write_plots(records, selected, class_by, config, out_dir / "report") if plots else []
    summary["timing"]["report_seconds"] = time.perf_counter() - report_started
    summary["timing"]["wall_seconds"] = time.perf_counter() - started
    write_report(summary, out_dir / "report")
    for item in caught:
        warnings.warn(item.message, item.category, stacklevel=2)
    return summary


def _changed_since_measured(pending, results: dict) -> list[str]:
    """A note naming the units measured again because their files changed since the journal's run."""
    journalled = {entry.get("identity") for entry in results.values()}
    changed = [unit for unit in pending if unit.identity in journalled]
    if not changed:
        return []
    first = changed[0].items[0]
    example = getattr(first, "mask", None) or getattr(first, "label", "")
    return [f"{len(changed)} work unit(s) measured again: their files changed since they were measured "
            f"(e.g. the unit of {example})"]


def _json(value) -> str:
    import json

    return json.dumps(value, indent=1) + "\n"


def _check_arguments(sources, target, workers, axis, modality) -> None:
    if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
        raise InputError(f"target: expected a positive whole number of slices, got {target!r}")
    if isinstance(sources, (str, Path)) or not list(sources):
        raise InputError("sources: give a list of one or more source folders or files")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers: expected a positive number of processes, got {workers!r}")
    if axis not in (0, 1, 2):
        raise InputError(f"axis: expected 0, 1 or 2 (array axis of [k, j, i] volumes), got {axis!r}")
    normalise_modality(modality)


def _check_out_dir(out_dir: Path, sources) -> None:
    """Sources are never modified: the output may not live inside one."""
    for source in sources:
        source_path = Path(source).expanduser().resolve()
        if source_path.is_dir() and (out_dir == source_path or source_path in out_dir.parents):
            raise InputError(f"out: {out_dir} lies inside the source {source}; choose a folder outside the sources")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"out: {out_dir} exists and is not a folder")


def _measure(units, engine, axis, modality, journal: Journal, progress: bool) -> dict[str, dict]:
    """Measure `units` on `engine`, journalling each as it finishes. Progress: a bar on stderr when
    it is a terminal; a line per unit on stdout when stdout is not one (a log file, a pipeline)."""
    from tqdm import tqdm

    results: dict[str, dict] = {}
    by_key = {unit.key: unit for unit in units}
    log_lines = progress and not sys.stdout.isatty()
    with tqdm(total=sum(unit.size for unit in units), unit="item", desc="curate: measuring",
              disable=not progress or not units or not sys.stderr.isatty(), file=sys.stderr,
              dynamic_ncols=True) as bar:
        def finished(result):
            size = result.pop("size")
            journal.append(result)
            results[result["key"]] = result
            bar.update(size)
            bar.set_postfix(records=sum(len(r["records"]) for r in results.values()), refresh=False)
            if log_lines:
                print(f"[{len(results)}/{len(units)}] {_unit_label(by_key[result['key']])}: "
                      f"{len(result['records'])} records" + (f", {len(result['errors'])} files with errors"
                                                             if result["errors"] else ""), flush=True)

        for result in engine.map_unordered(_process_task, [(unit, axis, modality) for unit in units]):
            finished(result)
    return results


def _unit_label(unit) -> str:
    """'acdc_cardiac_mri: 64 pairs (patient001_frame01_slice03.png ...)' or 'volumes: study case_07'."""
    if unit.kind == "pairs":
        return f"{unit.dataset}: {unit.size} pairs ({Path(unit.items[0].image).name} ...)"
    return f"{unit.dataset}: study {unit.items[0].case}"


def _process_task(task) -> dict:
    unit, axis, modality = task
    result = process_unit(unit, axis, modality)
    result["size"] = unit.size
    return result


def _remove_training_set(folder: Path) -> bool:
    """Remove an earlier run's training set (and its leftovers); True if there was one."""
    for leftover in (".partial", ".earlier"):
        shutil.rmtree(folder.with_name(folder.name + leftover), ignore_errors=True)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def _export(folder: Path, records: list[dict], modality: str, workers: int) -> Path:
    """Training set of the selected records, written in parallel into `<folder>.partial`, which is
    returned (`_swap_in` puts it in place)."""
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _export_into(partial, records, modality, workers)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed export (disk full) leaves nothing half written
        raise
    return partial


def _swap_in(partial: Path, folder: Path) -> None:
    earlier = folder.with_name(folder.name + ".earlier")
    shutil.rmtree(earlier, ignore_errors=True)
    if folder.exists():
        os.replace(folder, earlier)
    os.replace(partial, folder)
    shutil.rmtree(earlier, ignore_errors=True)


def _export_into(partial: Path, records: list[dict], modality: str, workers: int) -> None:
    prepare_folder(partial)
    names = assign_names(records)
    tasks = [(partial, chunk, [names[i] for i in indices], modality) for chunk, indices in _export_chunks(records)]
    parts = LocalCurationEngine(workers).map_unordered(_export_task, tasks)  # order is restored by the names below
    row_of = {row["file"]: row for part in parts for row in part}
    write_manifest(partial, [row_of[f"{name}.png"] for name in names])


def _export_chunks(records: list[dict], size: int = 64):
    """2D records in runs of `size`; the records of one 3D study together (read once)."""
    studies: dict[tuple, list[int]] = {}
    flat = []
    for index, record in enumerate(records):
        if record.get("axis") is None:
            flat.append(index)
        else:
            studies.setdefault((record["image_file"], record["mask_file"]), []).append(index)
    groups = [flat[start:start + size] for start in range(0, len(flat), size)] + list(studies.values())
    return [([records[i] for i in group], group) for group in groups]


def _export_task(task) -> list[dict]:
    folder, records, names, modality = task
    return export_records(folder, records, names, modality)
