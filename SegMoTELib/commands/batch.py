"""`segmote batch`: segment a cohort of studies from a table, locally or on Ray."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import InputError, one_line

from .model_options import add_model_arguments, model_spec
from .ray_options import add_ray_arguments, check_ray_arguments, whole_number

HELP = "segment a cohort (CSV image,prompt,name: a structure per row) into <study>.seg.nrrd files, locally or on Ray"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", metavar="COHORT.csv",
                        help="CSV with columns image (volume file or DICOM folder; relative to the CSV), prompt "
                             "(auto, or items separated by ';': ijk-point:i,j,k, ijk-negative:i,j,k, "
                             "ijk-box:i0,j0,k0,i1,j1,k1 in voxel indices, ras-point:R,A,S, ras-negative:R,A,S, "
                             "ras-box:R0,A0,S0,R1,A1,S1 in RAS mm), name (segment name) and optionally study "
                             "(output file stem; default: the image's file name). Rows of one study write one file")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="output folder: <study>.seg.nrrd per study (a segment per row) and failures.csv; "
                             "a rerun skips written structures")
    parser.add_argument("--check", action="store_true",
                        help="check every row (files readable, prompts inside their volume, names) in seconds, "
                             "without the model; exit 2 listing every bad row")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: one predictor in this process (default; no Ray needed); ray: a pool of Ray "
                             "actors, one predictor each (pip install segmote[ray])")
    add_ray_arguments(engine)
    engine.add_argument("--workers", type=whole_number, default=None,
                        help="with --engine ray: actors (default: one per GPU, else one per CPU of Ray)")
    engine.add_argument("--cpus-per-worker", type=whole_number, default=None,
                        help="with --engine ray: CPUs (and torch threads) of each CPU actor (default 1)")
    parser.add_argument("--modality", default=None,
                        help="intensity mapping of every study (CT, MR, ...; default: each file's, else auto)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (nor, when stdout is not a terminal, a line per structure)")
    parser.add_argument("--json", action="store_true", help="print the run summary as one JSON line (for benchmarks)")
    add_model_arguments(parser.add_argument_group("model"))


def run(args) -> int:
    from ..cohort import read_cohort, run_cohort
    from ..cohort.check import check_rows
    from ..cohort.runner import make_cohort_engine, prepare_out_dir
    from ..intensity import normalise_modality

    check_ray_arguments(args)
    if args.engine == "ray":
        from ..ray_session import import_ray

        import_ray()  # not installed: said before the rows are checked
    if args.modality is not None:
        normalise_modality(args.modality)  # an unknown name fails here, before any model or Ray work
    started = time.perf_counter()
    table = read_cohort(args.cohort)
    bad_rows = table.problems + check_rows(table.rows)
    bad_lines = {problem.line for problem in bad_rows}
    good = [row for row in table.rows if row.line not in bad_lines]
    problems = sorted(bad_rows, key=lambda problem: problem.line)
    if args.check or not good:
        return _report_check(table, good, problems, time.perf_counter() - started, args.check)
    for problem in problems:
        print(one_line(f"segmote batch: line {problem.line} ({problem.study or problem.image}, {problem.name}) "
                       f"cannot run: {problem.error}"), file=sys.stderr)
    prepare_out_dir(args.out)
    model = model_spec(args, modality=args.modality)
    with make_cohort_engine(model, args.engine, args.address, args.workers, args.num_cpus,
                            args.cpus_per_worker) as engine:
        summary = run_cohort(good, args.out, engine, progress=not args.quiet, problems=problems)
    if summary["notice"]:
        print(f"note: {summary['notice']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['written']} written, {summary['skipped']} skipped (already written), {summary['failed']} "
              f"failed of {summary['rows']} rows in {summary['seconds']:.1f} s ({summary['studies']} studies "
              f"segmented, {summary['engine']} engine, {summary['workers']} workers); output: {summary['out_dir']}")
        if summary["failed"]:
            print(f"failures and their reasons: {summary['failures']}")
    return 1 if summary["failed"] else 0


def _report_check(table, good, problems, seconds: float, asked: bool) -> int:
    """--check (or a run with no good row): every bad row on stderr, exit 2; else a summary, exit 0."""
    studies = len({row.study for row in good})
    if not problems:
        print(f"all {table.count} rows can run: {studies} studies, {len(good)} structures (checked in {seconds:.1f} s, "
              f"without the model)")
        return 0
    for problem in problems:
        print(one_line(f"line {problem.line} ({problem.study or problem.image}, {problem.name}): {problem.error}"),
              file=sys.stderr)
    then = f"fix them, or run without --check to segment the other {len(good)}" if good and asked else \
        "fix them" if good else "fix them: no row can run"
    raise InputError(f"{len(problems)} of {table.count} rows of {table.path} cannot run (listed above); {then}")
