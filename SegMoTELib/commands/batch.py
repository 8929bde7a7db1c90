"""`segmote batch`: segment a cohort of studies from a table, locally or on Ray."""

from __future__ import annotations

import argparse
import json
import sys

from .model_options import add_model_arguments, model_spec
from .ray_options import add_ray_arguments, check_ray_arguments, whole_number

HELP = "segment a cohort (CSV image,prompt,name) into <study>.seg.nrrd files, locally or on Ray"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", metavar="COHORT.csv",
                        help="CSV with columns image (volume file or DICOM folder; relative to the CSV), prompt "
                             "(auto, ras-box:x0,y0,z0,x1,y1,z1 or ras-point:x,y,z in RAS mm), name (segment name) "
                             "and optionally study (output file stem; default: the image's file name)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: <study>.seg.nrrd per row and failures.csv; a rerun skips written studies")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the run summary as one JSON line (for benchmarks)")
    add_model_arguments(parser.add_argument_group("model"))


def run(args) -> int:
    from ..cohort import read_cohort, run_cohort
    from ..cohort.runner import make_cohort_engine, prepare_out_dir
    from ..intensity import normalise_modality

    check_ray_arguments(args)
    if args.modality is not None:
        normalise_modality(args.modality)  # an unknown name fails here, before any model or Ray work
    rows = read_cohort(args.cohort)
    prepare_out_dir(args.out)
    model = model_spec(args, modality=args.modality)
    with make_cohort_engine(model, args.engine, args.address, args.workers, args.num_cpus,
                            args.cpus_per_worker) as engine:
        summary = run_cohort(rows, args.out, engine, progress=not args.quiet)
    if summary["notice"]:
        print(f"note: {summary['notice']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['written']} written, {summary['skipped']} skipped (already written), {summary['failed']} "
              f"failed of {summary['rows']} studies in {summary['seconds']:.1f} s ({summary['engine']} engine, "
              f"{summary['workers']} workers); output: {summary['out_dir']}")
        if summary["failed"]:
            print(f"failures and their reasons: {summary['failures']}")
    return 1 if summary["failed"] else 0
