"""`segmote evaluate`: Dice of the SegMoTE adapter and of the base decoder on 2D evaluation sets."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from ..errors import DataError, InputError
from .model_options import add_model_arguments, check_model_arguments, predictor_from_args

HELP = ("Dice of the SegMoTE adapter vs the base decoder on 2D image-mask sets (box, clicks, scribbles, lasso or "
        "prompt-free)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="+", metavar="DATA",
                        help="evaluation folders: train_pool layout (or a parent of such folders), "
                             "MedScribble-style case folders, images/ + masks/ (same stem or <stem>_<target>)")
    parser.add_argument("--prompt", choices=("box", "click", "auto", "scribble", "lasso"), default="box",
                        help="box: tight box of each mask; click: central click then refinements; "
                             "scribble: a stroke along the centre line then corrections, and a negative scribble "
                             "after a leaking click; lasso: a loop around the mask; "
                             "auto: prompt-free, foreground/background targets only (default: box)")
    parser.add_argument("--clicks", type=int, default=1,
                        help="with --prompt click (or scribble): total clicks (scribbles) per target, each after "
                             "the first at the largest error region; reports Dice after each and NoC@85/90, a target "
                             "that never reaches the Dice counting as --clicks (default: 1)")
    add_model_arguments(parser)
    parser.add_argument("-o", "--out", default=None, metavar="DIR",
                        help="write evaluation_<prompt>.md, .json, _cases.csv (one row per target and decoder) and, "
                             "with clicks, _curve.png into DIR (created if missing)")
    parser.add_argument("--split", choices=("all", "train", "val"), default="all",
                        help="train_pool-layout data: which side of the case split to score (default: all)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="case fraction of the val split (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case split (default: 0)")
    parser.add_argument("--max-per-dataset", type=int, default=None, metavar="N",
                        help="score at most N images per dataset (the first in file order)")
    parser.add_argument("--quiet", action="store_true", help="no per-target progress lines")


def _check_arguments(args) -> None:
    from ..training.evalsets import detect_layout

    if args.clicks < 1:
        raise InputError(f"--clicks: expected at least 1, got {args.clicks}")
    if args.prompt not in ("click", "scribble") and args.clicks != 1:
        raise InputError("--clicks: only meaningful with --prompt click or scribble")
    if args.max_per_dataset is not None and args.max_per_dataset < 1:
        raise InputError(f"--max-per-dataset: expected at least 1, got {args.max_per_dataset}")
    if args.prompt == "auto" and str(args.adapter).lower() == "none":
        raise InputError("--prompt auto: prompt-free segmentation needs an adapter; --adapter none has none")
    for path in args.data:
        detect_layout(path)  # DataError naming the folder before the model loads
    check_model_arguments(args)
    if args.out:  # a report that cannot be written must not cost the whole evaluation first
        from ..io.outputs import writable_folder

        writable_folder(args.out, "--out")


def _samples(args):
    from ..training.evalsets import iter_eval_samples

    return itertools.chain.from_iterable(
        iter_eval_samples(path, prompt_free_only=args.prompt == "auto", split=args.split,
                          val_fraction=args.val_fraction, seed=args.seed, max_per_dataset=args.max_per_dataset)
        for path in args.data
    )


def _predictor(args):
    predictor = predictor_from_args(args)
    if args.prompt == "auto" and not predictor.uses_adapter:
        raise InputError("--prompt auto: no adapter could be loaded (no shipped adapter); give --adapter PATH")
    return predictor


def _write_outputs(report, out_dir: str, prompt: str, clicks: int) -> list[Path]:
    stem = f"evaluation_{prompt}" + (f"_{clicks}{prompt}s" if prompt in ("click", "scribble") else "")
    return write_report(report, out_dir, stem)


def write_report(report, out_dir: str, stem: str) -> list[Path]:
    """`<stem>.md` and `<stem>.json` of a report (`to_markdown`, `to_json`) in `out_dir`, with
    `<stem>_cases.csv` where the report has `to_csv` and `<stem>_curve.png` where it draws a click
    curve: all or none."""
    from ..io.atomic import atomic_outputs
    from ..io.outputs import make_output_folder

    folder = make_output_folder(out_dir, "--out")  # checked again: the folder may have changed meanwhile
    texts = {folder / f"{stem}.md": report.to_markdown(), folder / f"{stem}.json": report.to_json() + "\n"}
    if hasattr(report, "to_csv"):
        texts[folder / f"{stem}_cases.csv"] = report.to_csv()
    curve = folder / f"{stem}_curve.png" if getattr(report, "prompt", None) in ("click", "scribble") else None
    with atomic_outputs(list(texts) + ([curve] if curve else []), "--out") as temporaries:  # all or none
        for temporary, text in zip(temporaries, texts.values()):
            temporary.write_text(text, encoding="utf-8")
        if curve is not None:
            report.draw_click_curve(temporaries[-1])
    return list(texts) + ([curve] if curve else [])


def run(args) -> int:
    from ..evaluation import decoder_views, evaluate

    _check_arguments(args)
    predictor = _predictor(args)
    views = decoder_views(predictor)
    done = itertools.count(1)

    def progress(result) -> None:
        if not args.quiet:
            scores = "  ".join(f"{name} {100 * dice:.1f}" for name, dice in result.dice.items())
            print(f"[{next(done)}] {result.dataset} {result.case} {result.target}: {scores}", file=sys.stderr)

    report = evaluate(_samples(args), views, prompt=args.prompt, clicks=args.clicks, progress=progress)
    report.notes.append(f"runtime: {predictor.runtime_name} ({predictor.runtime_description})")
    if predictor.notice:
        report.notes.append(predictor.notice)
    if not report.samples:
        what = "prompt-free (foreground/background) targets" if args.prompt == "auto" else "targets"
        raise DataError(f"DATA: no {what} found in {', '.join(args.data)}")
    print(report.to_markdown())
    if args.out:
        for path in _write_outputs(report, args.out, args.prompt, args.clicks):
            print(f"wrote {path}")
    return 0
