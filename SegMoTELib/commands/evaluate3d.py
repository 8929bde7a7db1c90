"""`segmote evaluate-3d`: per structure of labelled volumes, click + propagation, 3D box and the oracle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError, InputError
from ..io.outputs import writable_folder
from .model_options import add_model_arguments, check_model_arguments, predictor_from_args

HELP = "3D Dice per structure of labelled volumes: click + propagation, 3D box and a box on every slice"
STEM = "evaluation3d"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="*", metavar="DATA",
                        help="folders with an INVENTORY.json (the volumes3d layout) or their parent, "
                             "LiteMedSAM .npz files with 'gts'")
    parser.add_argument("--pair", nargs=2, action="append", default=[], metavar=("IMAGE", "LABELS"),
                        help="a volume and its label map on the same grid (NIfTI, NRRD, MHA); repeatable")
    parser.add_argument("--split", choices=("all", "holdout", "train"), default="all",
                        help="inventory folders: the hold-out suggested by volumes3d/README.md, the rest, or "
                             "all cases (default: all)")
    parser.add_argument("--label-names", default=None, metavar="JSON",
                        help="label value -> name table for cases without names (e.g. TotalSegmentator's "
                             "class map); inventories name their own labels")
    parser.add_argument("--label-names-key", default=None, metavar="KEY",
                        help="the table to use when the JSON holds several (e.g. total, total_mr)")
    parser.add_argument("--structures", default=None, metavar="LIST",
                        help="comma-separated label values or names to score (default: every label)")
    parser.add_argument("--max-structures", type=int, default=None, metavar="N",
                        help="score at most N structures per volume (in label-value order)")
    parser.add_argument("--min-slices", type=int, default=1, metavar="N",
                        help="skip structures on fewer than N slices (default: 1)")
    parser.add_argument("--axis", choices=("auto", "axial", "coronal", "sagittal"), default="auto",
                        help="slice orientation; auto: the axis of largest spacing, axial when isotropic")
    parser.add_argument("--methods", default="click,box3d,oracle", metavar="LIST",
                        help="comma-separated subset of click, box3d, oracle (default: all three)")
    parser.add_argument("--walk", choices=("tracking", "legacy"), default="tracking",
                        help="propagation rules: tracking (default: stops on area growth and centroid jumps "
                             "too) or legacy (the walk before issue 13; for comparisons)")
    intensity = parser.add_argument_group("intensity")
    intensity.add_argument("--modality", default=None, help="CT, MR, ... (default: from the file, else auto)")
    intensity.add_argument("--preset", default=None, help="CT window preset (abdomen, soft_tissue, ...)")
    add_model_arguments(parser)
    parser.add_argument("-o", "--out", default=None, metavar="DIR",
                        help=f"write {STEM}.md and {STEM}.json into DIR (created if missing)")
    parser.add_argument("--quiet", action="store_true", help="no per-structure progress lines")


def _listed(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _check_arguments(args) -> None:
    from ..evaluation3d import METHODS
    from ..intensity import CT_WINDOWS, normalise_modality

    if not args.data and not args.pair:
        raise InputError("DATA: give inventory folders, .npz files or --pair IMAGE LABELS")
    if args.max_structures is not None and args.max_structures < 1:
        raise InputError(f"--max-structures: expected at least 1, got {args.max_structures}")
    if args.min_slices < 1:
        raise InputError(f"--min-slices: expected at least 1, got {args.min_slices}")
    unknown = [m for m in _listed(args.methods) if m not in METHODS]
    if unknown or not _listed(args.methods):
        raise InputError(f"--methods: expected some of {', '.join(METHODS)}, got {args.methods!r}")
    normalise_modality(args.modality)
    if args.preset is not None and args.preset not in (*CT_WINDOWS, "auto"):
        raise InputError(f"--preset: expected auto or one of {', '.join(CT_WINDOWS)}, got {args.preset!r}")
    if args.label_names_key is not None and args.label_names is None:
        raise InputError("--label-names-key: only meaningful with --label-names")
    check_model_arguments(args)  # a wrong adapter or device fails before the data are searched
    if args.out is not None:  # an hour of evaluation must not end on a folder it cannot write
        writable_folder(args.out, "--out")


def _cases(args):
    from ..volume_cases import find_cases, read_label_names

    names = read_label_names(args.label_names, args.label_names_key) if args.label_names else None
    cases = find_cases(args.data, args.pair, args.split, names)
    if not cases:
        raise DataError(f"DATA: no labelled volume found (split {args.split})")
    return cases


def _mapping_for(args):
    from ..intensity import IntensityMapping

    def mapping(volume):
        if args.preset is not None:
            return IntensityMapping(modality=args.modality or "CT", preset=args.preset)
        return IntensityMapping(modality=args.modality or volume.modality or "auto")

    return mapping


def _write_outputs(report, out_dir: str) -> list[Path]:
    from .evaluate import write_report

    return write_report(report, out_dir, STEM)


def run(args) -> int:
    from ..evaluation3d import evaluate_cases
    from ..segment3d import PropagationRules

    _check_arguments(args)
    cases = _cases(args)  # bad data fails here, before the model loads
    predictor = predictor_from_args(args)

    def progress(result) -> None:
        if not args.quiet:
            scores = "  ".join(f"{m} {100 * s.dice:.1f} ({s.slices_found}/{result.true_slices})"
                               for m, s in result.scores.items())
            print(f"{result.dataset} {result.case} {result.name}: {scores}", file=sys.stderr)

    rules = PropagationRules.legacy() if args.walk == "legacy" else None  # None: as the adapter declares
    report = evaluate_cases(cases, predictor, axis=args.axis, methods=_listed(args.methods),
                            select=_listed(args.structures) or None, max_structures=args.max_structures,
                            min_slices=args.min_slices, mapping_for=_mapping_for(args), rules=rules,
                            progress=progress)
    report.settings.update({"walk": args.walk, "split": args.split, "backbone": args.backbone,
                            "adapter": "shipped" if args.adapter == "default" and predictor.uses_adapter
                            else str(args.adapter), "runtime": predictor.runtime_name,
                            "runtime_detail": predictor.runtime_description})
    if predictor.notice:
        report.notes.append(predictor.notice)
    if not report.results:
        raise DataError("DATA: no structure was scored (check --structures / --min-slices)")
    print(report.to_markdown())
    if args.out:
        for path in _write_outputs(report, args.out):
            print(f"wrote {path}")
    return 0
