"""`segmote curate`: MedSeg-HQ curation of 2D pair sets and 3D studies into a training set."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import InputError
from .ray_options import add_ray_arguments, check_ray_arguments, whole_number

HELP = "curate image/mask pairs and 3D studies: quality gates, score, sampling to an exact target"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="train_pool-style folders (images/, masks/, manifest.csv, labels.json), folders of 3D "
                             "image/label volumes or .npz studies, or a studies .csv (image,label[,modality,case])")
    parser.add_argument("--target", "-T", type=whole_number, required=True, help="number of records to select")
    parser.add_argument("-o", "--out", required=True, help="output folder (a rerun with the same folder resumes)")
    parser.add_argument("--class-by", default="dataset",
                        help="what a sampling class is: dataset, label, modality or a comma list (default dataset)")
    parser.add_argument("--workers", type=whole_number, default=None,
                        help="local processes for measuring (--engine local) and export (default: all cores)")
    engine = parser.add_argument_group("engine (where the per-slice measuring runs; the results are identical)")
    engine.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: processes of this machine (default); ray: Ray tasks (pip install segmote[ray])")
    add_ray_arguments(engine)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--axis", type=int, default=0, choices=(0, 1, 2),
                        help="array axis of [k, j, i] volumes to slice 3D studies along (default 0)")
    parser.add_argument("--modality", default="auto",
                        help="intensity mapping of 3D studies that do not name their modality (CT, MR, ...)")
    parser.add_argument("--config", default=None,
                        help="JSON object of curation fields overriding the defaults, e.g. {\"fg_ratio_min\": 0.001} "
                             "for small structures; every field: docs/CURATION.md")
    parser.add_argument("--no-export", action="store_true", help="skip writing the training set")
    parser.add_argument("--no-plots", action="store_true", help="skip the report figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


MAX_LINES = 12


def _print_explanations(summary: dict) -> None:
    """The gates that removed more than 10 % of a class, and the classes short of their quota:
    what a user must know to change the config (the full tables are in report/report.md)."""
    notable = summary["notable_gates"]
    short = [f"{name}: {entry['note']}" for name, entry in summary["classes"].items() if entry["selected"] < entry["quota"]]
    for title, lines in (("gates that removed more than 10 % of a class (the field sets the bound)", notable),
                         ("classes short of their quota", short)):
        if lines:
            print(f"{title}:")
            for line in lines[:MAX_LINES]:
                print(f"  {line}")
            if len(lines) > MAX_LINES:
                print(f"  ... {len(lines) - MAX_LINES} more in report/report.md")


def run(args) -> int:
    from ..curation import CurationWarning, QCConfig, run_curation
    from ..curation.engine import make_engine

    if args.target <= 0:
        raise InputError(f"--target: expected a positive number of records, got {args.target}")
    check_ray_arguments(args)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: expected a positive number of processes, got {args.workers}")
    config = QCConfig.from_file(args.config) if args.config else QCConfig()
    with warnings.catch_warnings(), make_engine(args.engine, args.workers, args.address, args.num_cpus) as engine:
        warnings.simplefilter("ignore", CurationWarning)  # listed in the summary, printed below
        summary = run_curation(args.sources, args.target, args.out, class_by=args.class_by, workers=args.workers,
                               seed=args.seed, config=config, progress=not args.quiet, axis=args.axis,
                               modality=args.modality, export=not args.no_export, plots=not args.no_plots,
                               engine=engine)
    timing = summary["timing"]
    print(f"records {summary['records']}, passed {summary['passed']}, selected {summary['selected']} "
          f"(target {summary['target']}); files with errors {summary['files_with_errors']}")
    print("gate rejections: " + ", ".join(f"{gate} {count}" for gate, count in summary["gate_rejections"].items()))
    _print_explanations(summary)
    print(f"measured {timing['slices_measured']} slices in {timing['measure_seconds']:.1f} s "
          f"({timing['slices_per_second']:.0f} slices/s, {timing['engine']} engine, {timing['workers']} workers, "
          f"{timing['units_resumed']} of {timing['units']} units resumed); wall {timing['wall_seconds']:.1f} s")
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"output: {summary['out_dir']} (manifest.csv, rejects.csv, errors.csv, training_set/, report/)")
    return 0
