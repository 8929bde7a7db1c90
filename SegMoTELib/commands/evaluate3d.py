"""`segmote evaluate-3d`: per structure of labelled volumes, click + propagation, 3D box, simulated
corrections and the oracle; Dice, HD95, NSD, slices found; per dataset, modality family and overall."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError, InputError
from ..io.outputs import writable_folder
from .model_options import add_model_arguments, check_model_arguments, predictor_from_args

HELP = ("3D Dice, HD95 and NSD per structure of labelled volumes: click + propagation, 3D box, simulated "
        "corrections and a box on every slice")
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
    parser.add_argument("--cases", default=None, metavar="LIST",
                        help="comma-separated case names (or DATASET/CASE) to score (default: every case)")
    parser.add_argument("--max-cases", type=int, default=None, metavar="N", help="score at most N cases")
    parser.add_argument("--axis", choices=("auto", "axial", "coronal", "sagittal"), default="auto",
                        help="slice orientation; auto: the acquisition axis (largest spacing, axial when isotropic)")
    parser.add_argument("--methods", default="click,box3d,oracle", metavar="LIST",
                        help="comma-separated subset of click, box3d, corrections, oracle (default: click, box3d, "
                             "oracle; corrections re-walk up to --corrections times per structure)")
    parser.add_argument("--corrections", type=int, default=5, metavar="N",
                        help="simulated corrections after click + propagation (default 5)")
    parser.add_argument("--walk", choices=("auto", "learned", "rules", "tracking", "legacy"), default="auto",
                        help="when the walk stops: auto (default: the learned decision when the adapter has a "
                             "presence head, else the hand rules), learned, rules (= tracking, the hand rules) or "
                             "legacy (the walk before issue 13; for comparisons)")
    parser.add_argument("--patience", type=int, default=None, metavar="N",
                        help="doubtful slices a walk crosses before it stops (default 1)")
    parser.add_argument("--presence-threshold", type=float, default=None, metavar="P",
                        help="the learned decision's threshold (default: the adapter's calibrated one)")
    parser.add_argument("--nsd-tolerance", type=float, default=2.0, metavar="MM",
                        help="tolerance of the normalised surface Dice (default 2 mm)")
    parser.add_argument("--save-masks", default=None, metavar="DIR",
                        help="write each case's predictions as label maps DIR/<dataset>/<case>__<method>.nii.gz")
    intensity = parser.add_argument_group("intensity")
    intensity.add_argument("--modality", default=None, help="CT, MR, ... (default: from the file, else auto)")
    intensity.add_argument("--preset", default=None, help="CT window preset (abdomen, soft_tissue, ...)")
    add_model_arguments(parser)
    parser.add_argument("-o", "--out", default=None, metavar="DIR",
                        help=f"write {STEM}.md, {STEM}.json and {STEM}.csv (one row per structure) into DIR "
                             f"(created if missing)")
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
    if args.max_cases is not None and args.max_cases < 1:
        raise InputError(f"--max-cases: expected at least 1, got {args.max_cases}")
    if not 1 <= args.corrections <= 20:
        raise InputError(f"--corrections: expected 1..20, got {args.corrections}")
    if args.patience is not None and not 0 <= args.patience <= 3:
        raise InputError(f"--patience: expected 0..3, got {args.patience}")
    if args.presence_threshold is not None and not 0 < args.presence_threshold < 1:
        raise InputError(f"--presence-threshold: expected a probability in (0, 1), got {args.presence_threshold}")
    if not args.nsd_tolerance > 0:
        raise InputError(f"--nsd-tolerance: expected a positive distance in mm, got {args.nsd_tolerance}")
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
    if args.save_masks is not None:
        writable_folder(args.save_masks, "--save-masks")


def _cases(args):
    from ..volume_cases import find_cases, read_label_names

    names = read_label_names(args.label_names, args.label_names_key) if args.label_names else None
    cases = find_cases(args.data, args.pair, args.split, names)
    if not cases:
        raise DataError(f"DATA: no labelled volume found (split {args.split})")
    wanted = _listed(args.cases)
    if wanted:
        chosen = [c for c in cases if c.case in wanted or f"{c.dataset}/{c.case}" in wanted]
        missing = sorted(set(wanted) - {c.case for c in chosen} - {f"{c.dataset}/{c.case}" for c in chosen})
        if missing:
            known = ", ".join(f"{c.dataset}/{c.case}" for c in cases[:12]) + (" …" if len(cases) > 12 else "")
            raise InputError(f"--cases: no case named {', '.join(missing)}; the data hold {known}")
        cases = chosen
    return cases[:args.max_cases] if args.max_cases else cases


def _mapping_for(args):
    from ..intensity import IntensityMapping

    def mapping(volume):
        if args.preset is not None:
            return IntensityMapping(modality=args.modality or "CT", preset=args.preset)
        return IntensityMapping(modality=args.modality or volume.modality or "auto")

    return mapping


def _write_outputs(report, out_dir: str) -> list[Path]:
    from ..io.atomic import atomic_outputs
    from ..io.outputs import make_output_folder

    folder = make_output_folder(out_dir, "--out")
    texts = {folder / f"{STEM}.md": report.to_markdown(), folder / f"{STEM}.json": report.to_json() + "\n",
             folder / f"{STEM}.csv": report.to_csv()}
    with atomic_outputs(list(texts), "--out") as temporaries:  # all three or none
        for temporary, text in zip(temporaries, texts.values()):
            temporary.write_text(text, encoding="utf-8")
    return list(texts)


def _rules(args, predictor):
    from ..walk_rules import PropagationRules

    if args.walk == "legacy":
        return PropagationRules.legacy()
    fields = {"decision": {"tracking": "rules"}.get(args.walk, args.walk)}
    if args.patience is not None:
        fields["patience"] = args.patience
    if args.presence_threshold is not None:
        fields["presence_threshold"] = args.presence_threshold
    return PropagationRules.for_predictor(predictor, **fields)


def run(args) -> int:
    import time

    from ..evaluation3d import evaluate_cases, mask_writer
    from ..walk_rules import uses_learned_decision

    _check_arguments(args)
    cases = _cases(args)  # bad data fails here, before the model loads
    predictor = predictor_from_args(args)
    rules = _rules(args, predictor)
    decision = "learned" if uses_learned_decision(rules, predictor) else "hand rules"
    started, count = time.monotonic(), [0]

    def progress(result) -> None:
        count[0] += 1
        if not args.quiet:
            scores = "  ".join(f"{m} {100 * s.dice:.1f} ({s.slices_found}/{result.true_slices}"
                               f"{'' if s.hd95_mm is None else f', HD95 {s.hd95_mm:.1f} mm'})"
                               for m, s in result.scores.items())
            print(f"[{count[0]}, {time.monotonic() - started:.0f} s] {result.dataset} {result.case} {result.name}: "
                  f"{scores}", file=sys.stderr, flush=True)

    report = evaluate_cases(cases, predictor, axis=args.axis, methods=_listed(args.methods),
                            select=_listed(args.structures) or None, max_structures=args.max_structures,
                            min_slices=args.min_slices, mapping_for=_mapping_for(args), rules=rules,
                            progress=progress, corrections=args.corrections, tolerance_mm=args.nsd_tolerance,
                            save_masks=mask_writer(args.save_masks) if args.save_masks else None)
    report.settings.update({"walk": f"{args.walk} ({decision})", "split": args.split, "backbone": args.backbone,
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
