"""`segmote segment`: segment a 2D image or a 3D volume from the command line.

2D images (PNG/JPEG/TIFF, single-slice NIfTI/NRRD) take pixel prompts (`--box`, `--point`,
`--negative`, `--scribble`, `--lasso` and their negatives, `--auto`) in the image as stored (x =
column, y = row) and give a mask plus an overlay PNG beside it. Volumes (NIfTI, NRRD, MHA, a DICOM
folder, a LiteMedSAM .npz) take prompts in RAS millimetres (what Slicer shows for a markup;
`--ras-point`, `--ras-scribble`, ...), in voxel indices of the file as stored, or as a rotated ROI
(`volume_prompts`), and give a `.seg.nrrd` (or a labelmap such as `.nii.gz`) in the source
geometry; `--correct SEG` corrects an existing segmentation with clicks, a box or strokes and
carries the fix to the neighbouring slices. When a walk ends early, the command says where and
why. The prompt options become one `SlicePrompt`, checked with every file before the model loads.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..intensity import CT_WINDOWS, IntensityMapping
from ..slice_prompt import SlicePrompt
from . import volume_prompts
from .model_options import add_model_arguments, check_model_arguments, predictor_from_args

HELP = "segment a 2D image (pixel prompts) or a 3D volume (RAS prompts, propagation, 3D box)"

MASK_IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")
OVERLAY_COLOUR = np.array([255, 64, 32], dtype=np.float32)
OVERLAY_OPACITY = 0.45
BOX_COLOUR = (255, 215, 0)       # the box prompt's outline
POSITIVE_COLOUR = (0, 200, 60)   # "+" at a positive click
NEGATIVE_COLOUR = (230, 30, 30)  # "−" at a negative click
LOW_IOU = 0.5                    # below this predicted IoU, the mask is flagged as doubtful
# Prompt-free masks are trained on one-object tasks (skin lesions, lungs in chest X-rays, polyps,
# fetal heads, breast lesions in ultrasound); in these modalities an image holds many structures.
MULTI_STRUCTURE_MODALITIES = ("CT", "MR", "PET")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="2D image (PNG/JPEG/TIFF, single-slice NIfTI) or volume (NIfTI, NRRD, MHA, DICOM folder, .npz)")
    parser.add_argument("-o", "--output", "--out", dest="output", required=True, metavar="OUT",
                        help="2D: mask file (.png, 0/255; or .nii.gz), with OUT_overlay.png beside it; "
                             "volume: .seg.nrrd (named segment) or a labelmap (.nii.gz, .nrrd, .mha)")
    pixel = parser.add_argument_group("2D prompts (pixels of the image as stored: x = column, y = row)")
    pixel.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                       help="box corners (inclusive); may be given with --point/--negative clicks")
    pixel.add_argument("--point", nargs=2, type=float, action="append", metavar=("X", "Y"),
                       help="positive click (repeatable)")
    pixel.add_argument("--negative", nargs=2, type=float, action="append", metavar=("X", "Y"),
                       help="negative click (repeatable)")
    pixel.add_argument("--scribble", action="append", metavar="X1,Y1,X2,Y2,...",
                       help="positive scribble: a stroke along the structure, as comma-separated vertices (repeatable)")
    pixel.add_argument("--negative-scribble", action="append", metavar="X1,Y1,...",
                       help="negative scribble: a stroke over what is not the structure (repeatable)")
    pixel.add_argument("--lasso", action="append", metavar="X1,Y1,X2,Y2,X3,Y3,...",
                       help="positive lasso: a closed loop around the structure, 3+ vertices (repeatable)")
    pixel.add_argument("--negative-lasso", action="append", metavar="X1,Y1,...",
                       help="negative lasso: a loop around a region to leave out (repeatable)")
    pixel.add_argument("--auto", action="store_true",
                       help="prompt-free mask (needs a trained adapter); for a volume, of slice --slice")
    volume_prompts.add_arguments(parser)
    ras = parser.add_argument_group("volumes: what to do with the prompt")
    ras.add_argument("--propagate", action="store_true",
                     help="propagate a click or flat-box mask through the volume until the structure ends")
    ras.add_argument("--orientation", default="auto", choices=("auto", "axial", "coronal", "sagittal"),
                     help="slice orientation of the prompt and of the walk (default auto: the acquisition axis, "
                          "the one of largest spacing, axial for isotropic volumes)")
    ras.add_argument("--slice", type=int, default=None, metavar="INDEX",
                     help="with --auto on a volume: the slice index along --orientation (default: the middle)")
    ras.add_argument("--walk", choices=("auto", "learned", "rules"), default="auto",
                     help="when a walk stops: the learned decision (adapters with a presence head), the hand rules, "
                          "or auto (default: learned when the adapter can)")
    ras.add_argument("--patience", type=int, default=None, metavar="N",
                     help="doubtful slices a walk crosses before it stops (default 1)")
    ras.add_argument("--correct", default=None, metavar="SEG",
                     help="correct this segmentation (.seg.nrrd or a labelmap on the input's grid) with the clicks "
                          "or box given, on their slice, and re-walk outward until the masks agree again")
    ras.add_argument("--name", default="segment", help="segment name in the .seg.nrrd (default: segment)")
    intensity = parser.add_argument_group("intensity mapping (one window for the whole volume)")
    window = intensity.add_mutually_exclusive_group()
    window.add_argument("--window", nargs=2, type=float, metavar=("WIDTH", "LEVEL"), help="explicit window")
    window.add_argument("--preset", choices=(*CT_WINDOWS, "auto"), help="CT window preset")
    intensity.add_argument("--modality", default=None,
                           help="CT, MR, US, XRAY, RGB, PET or OTHER (default: from the file, else auto)")
    model = parser.add_argument_group("model")
    add_model_arguments(model)
    model.add_argument("--server", default=None, metavar="URL",
                       help="compute on a `segmote serve` engine at URL (token from SEGMOTE_TOKEN) instead of here")


@dataclass
class _Job:
    """What to do, decided and checked before any model work."""

    mode: str                  # "2d" or "volume"
    volume: object             # Volume
    mapping: IntensityMapping
    output: Path
    overlay: Path | None
    prompt: SlicePrompt | None = None   # pixel (2D) or RAS (volume); None for --auto
    segment: np.ndarray | None = None  # --correct: the segment to correct, bool [k, j, i]


def run(args) -> int:
    job = _prepare(args)
    _warn_about_auto(args, job)
    predictor = _predictor(args)
    if predictor.notice:
        print(f"note: {predictor.notice}", file=sys.stderr)
    try:
        if job.mode == "2d":
            written = _segment_2d(args, job, predictor)
        else:
            written = _segment_volume(args, job, predictor)
    finally:
        if args.server:
            predictor.close()
    for path in written:
        print(f"wrote {path}")
    return 0


# --- checking ----------------------------------------------------------------------------------
def _prepare(args) -> _Job:
    from ..io import extension_of, read_volume, refuse_overwriting_input, writable_target
    from ..io.formats import VOLUME_EXTENSIONS
    from ..names import validate_segment_name

    pixel_prompt = any(_given(args, name) for name in PIXEL_OPTIONS)
    ras_prompt = bool(volume_prompts.given(args))
    if pixel_prompt and ras_prompt:
        raise InputError("prompt: give pixel prompts (--box/--point/--scribble...) for a 2D image or volume prompts "
                         "(--ijk-box, --ijk-point, --ras-point, --ras-box, --ras-scribble, --roi-...) for a volume, "
                         "not both")
    if args.correct is not None and not ras_prompt:
        raise InputError("--correct: give the correcting click(s) (--ijk-point/--ijk-negative, --ras-point/"
                         "--ras-negative), scribbles (--ras-scribble...) or a box on the slice to correct")
    if not (pixel_prompt or ras_prompt or args.auto):
        raise InputError("prompt: give --box, --point, --scribble, --lasso, --auto (2D) or --ijk-box, --ijk-point, "
                         "--ras-point, --ras-box, --ras-scribble, --ras-lasso, --roi-center/--roi-json (volume)")
    if args.auto and (pixel_prompt or ras_prompt):
        raise InputError("--auto: a prompt-free mask takes no other prompt")
    if not any(_given(args, name) for name in ("point", "box", "scribble", "lasso")) and any(
            _given(args, name) for name in ("negative", "negative_scribble", "negative_lasso")):
        raise InputError("prompt: negative prompts need a positive one too (--point, --box, --scribble or --lasso): "
                         "they say what is not the structure")
    volume_prompts.check_combinations(args)
    if args.patience is not None and not 0 <= args.patience <= 3:
        raise InputError(f"--patience: expected 0..3 slices, got {args.patience}")
    check_model_arguments(args)
    output = writable_target(args.output, "--output")
    validate_segment_name(args.name, "--name", ascii_only=extension_of(output) == ".seg.nrrd")
    refuse_overwriting_input(output, [args.input] + ([args.correct] if args.correct else []), "--output")
    volume = read_volume(args.input)
    single_slice = volume.array.shape[0] == 1
    mode = "2d" if pixel_prompt or (args.auto and single_slice) else "volume"
    if mode == "2d" and not single_slice:
        raise InputError(f"--box/--point/--scribble/--lasso: {args.input} is a volume of {volume.array.shape[0]} "
                         f"slices; give prompts in RAS mm (--ras-point, --ras-box, --ras-scribble, --ras-lasso)")
    extension = extension_of(output)
    allowed = MASK_IMAGE_EXTENSIONS + VOLUME_EXTENSIONS + (".seg.nrrd",) if mode == "2d" else \
        VOLUME_EXTENSIONS + (".seg.nrrd",)
    if extension not in allowed:
        raise InputError(f"--output: cannot write a {mode} mask as {extension or '(no extension)'!r}; "
                         f"expected one of {', '.join(allowed)}")
    overlay = None
    if mode == "2d":  # both files are checked now: a failing overlay must not cost a model run or the mask
        overlay = writable_target(_overlay_path(output), "--output (its overlay)")
        refuse_overwriting_input(overlay, [args.input], "--output (its overlay)")
    job = _Job(mode, volume, _mapping(args, volume), output, overlay)
    if mode == "volume":
        _check_volume_content(args, volume)
        job.prompt = _check_volume_prompt(args, volume)
        if args.correct is not None:
            job.segment = _read_segment(args.correct, volume)
    else:
        _check_image_content(args, job)
        if not args.auto:
            job.prompt = prompt_from_args(args)
            job.prompt.check_inside(*volume.array.shape[1:3])
    return job


PIXEL_OPTIONS = ("box", "point", "negative", "scribble", "negative_scribble", "lasso", "negative_lasso")


def _given(args, name: str) -> bool:
    value = getattr(args, name, None)
    return value is not None and value is not False and value != []


def prompt_from_args(args) -> SlicePrompt:
    """The one prompt value of the pixel prompt options (a 2D image); volumes: `volume_prompts`."""
    from ..slice_prompt import parse_vertex_list

    def strokes(name):
        return [parse_vertex_list(text, 2, "--" + name.replace("_", "-")) for text in getattr(args, name, None) or []]

    points = list(args.point or []) + list(args.negative or [])
    labels = [1] * len(args.point or []) + [0] * len(args.negative or [])
    box = None if args.box is None else np.asarray(args.box, dtype=np.float64).reshape(2, 2)
    return SlicePrompt.build("pixel", points=points or None, labels=labels or None, box=box,
                             scribbles=strokes("scribble"), negative_scribbles=strokes("negative_scribble"),
                             lassos=strokes("lasso"), negative_lassos=strokes("negative_lasso"))


def _check_image_content(args, job: _Job) -> None:
    """A constant or too small image fails here, as it would in set_image after the model loads."""
    from ..preprocessing import as_model_uint8

    try:
        as_model_uint8(job.volume.array[0], mapping=None if job.volume.rgb else job.mapping)
    except InputError as error:
        raise InputError(f"{args.input}: {str(error).removeprefix('image: ')}") from None


def _check_volume_content(args, volume) -> None:
    if volume.array.min() == volume.array.max():
        raise InputError(f"{args.input}: the volume is constant (every voxel is {volume.array.flat[0]}); "
                         f"there is nothing to segment")


def _overlay_path(output: Path) -> Path:
    from ..io import extension_of

    stem = output.name[: len(output.name) - len(extension_of(output))]
    return output.with_name(f"{stem}_overlay.png")


def _mapping(args, volume) -> IntensityMapping:
    from ..intensity import normalise_modality

    normalise_modality(args.modality)  # an unknown name fails here, before the model loads
    if args.window is not None:
        if not args.window[0] > 0:
            raise InputError(f"--window: the width must be positive, got {args.window[0]:g}")
        return IntensityMapping(modality=args.modality or "CT", window=args.window[0], level=args.window[1])
    if args.preset is not None:
        if args.modality not in (None, "CT", "ct"):
            raise InputError(f"--preset: CT window presets need CT images, not --modality {args.modality}")
        return IntensityMapping(modality="CT", preset=args.preset)
    return IntensityMapping(modality=args.modality or volume.modality or "auto")


def _check_volume_prompt(args, volume) -> SlicePrompt | None:
    """Map the prompt once without the model, so a point outside, a box with no area or a stroke
    off the prompt's slice fails fast; a box spanning several slices is a 3D box (no other prompt)."""
    from ..geometry import (
        SliceRef,
        prompt_on_slice,
        prompt_slice,
        ras_box_to_slice_box,
        slice_axis_for,
        slice_count,
        slice_extent_of_box,
    )

    prompt = volume_prompts.volume_prompt(args, volume)
    axis = slice_axis_for(volume, args.orientation)

    if args.slice is not None:
        count = slice_count(volume, axis)
        if not 0 <= args.slice < count:
            raise InputError(f"--slice: expected 0..{count - 1} along the {args.orientation} axis, got {args.slice}")
    if prompt is None:
        return None
    if prompt.box is not None:
        option = volume_prompts.box_option(args)
        try:
            first, last = slice_extent_of_box(volume, axis, prompt.box_array())
            if last > first:  # a 3D box: segmented within it, alone
                if prompt.points or prompt.scribbles or prompt.lassos:
                    raise InputError("a box spanning several slices is segmented in 3D and takes no other prompt; "
                                     "give a flat box (on one slice) to combine it with scribbles or lassos")
                ras_box_to_slice_box(volume, SliceRef(axis, (first + last) // 2), prompt.box_array())
                return prompt
        except InputError as error:
            raise InputError(f"{option}: {str(error).removeprefix('corners_ras: ')}") from None
    ref = prompt_slice(volume, args.orientation, prompt)
    volume_prompts.check_on_one_slice(args, volume, ref, prompt)
    prompt_on_slice(volume, ref, prompt)
    return prompt


def _read_segment(path, volume) -> np.ndarray:
    """--correct: the one segment to correct, on the input's grid (a .seg.nrrd or a labelmap)."""
    from ..io import read_labelmap

    labels = read_labelmap(path)
    if labels.array.shape != volume.array.shape[:3] or not np.allclose(labels.spacing, volume.spacing, rtol=1e-3):
        raise InputError(f"--correct: {path} is on a grid of {labels.array.shape[::-1]} voxels (i, j, k), spacing "
                         f"{np.round(labels.spacing, 3).tolist()}; the input's is {volume.array.shape[:3][::-1]}, "
                         f"{np.round(volume.spacing, 3).tolist()}")
    values = [int(v) for v in np.unique(labels.array) if v != 0]
    if len(values) > 1:
        raise InputError(f"--correct: {path} holds {len(values)} labels ({', '.join(map(str, values[:6]))}); give a file "
                         f"with the one segment to correct")
    if not values:
        raise InputError(f"--correct: {path} is empty; there is nothing to correct (segment it first)")
    return labels.array != 0


def _predictor(args):
    if args.server:  # the engine of a `segmote serve` process; same methods as the predictor
        from ..service.remote_cli import RemoteEngine

        return RemoteEngine(args)
    # A cache as large as a typical walk: propagation revisits no slice, but the seed slice is
    # set twice (prompt, then walk start) and several segments may share slices.
    return predictor_from_args(args, cache_size=16)


# --- 2D --------------------------------------------------------------------------------------
def _segment_2d(args, job: _Job, predictor) -> list[Path]:
    from ..io import atomic_outputs, extension_of, write_segmentation, write_volume

    image = job.volume.array[0]
    predictor.set_image(image, mapping=job.mapping if not job.volume.rgb else None)
    prompt = job.prompt
    prediction = predictor.predict_auto() if args.auto else predictor.predict(prompt)
    mask = np.asarray(prediction.masks[0], dtype=bool)
    _note_dropped_negatives(predictor)
    grey = image if job.volume.rgb else _as_uint8(image, job.mapping)
    with atomic_outputs([job.output, job.overlay], "--output") as (mask_file, overlay_file):  # both or neither
        if extension_of(job.output) in MASK_IMAGE_EXTENSIONS:
            write_volume(job.volume.with_array((mask * 255).astype(np.uint8)[None]), mask_file)
        else:
            write_segmentation(mask_file, job.volume.with_array(mask.astype(np.uint8)[None]), _segments(args))
        overlay = overlay_image(grey, mask, **_overlay_prompts(prompt))
        write_volume(job.volume.with_array(overlay[None]), overlay_file)
    score = float(np.ravel(prediction.scores)[0])
    print(f"mask: {int(mask.sum())} pixels, predicted IoU {score:.3f} ({prediction.decoder} decoder)")
    _warn_if_doubtful(score, int(mask.sum()), args.auto)
    return [job.output, job.overlay]


def _warn_if_doubtful(score: float, pixels: int, auto: bool) -> None:
    """The model's own IoU estimate is low: the mask is likely wrong, and the user should know."""
    if score >= LOW_IOU and pixels > 0:
        return
    what = f"the mask is empty (predicted IoU {score:.2f})" if pixels == 0 else \
        f"the model's predicted IoU is {score:.2f} (below {LOW_IOU})"
    hint = "give a box or a click instead" if auto else "add a box, or correction clicks (--point inside, --negative " \
                                                        "outside the structure), and look at the overlay"
    print(f"warning: {what}: this mask may be wrong; {hint}", file=sys.stderr)


def _warn_about_auto(args, job) -> None:
    """--auto on an image with many structures: the prompt-free mask is one of them, any of them."""
    if not args.auto:
        return
    modality = job.mapping.modality.upper() if job.mapping.modality else "AUTO"
    if modality in MULTI_STRUCTURE_MODALITIES or (job.mode == "volume" and modality == "AUTO"):
        kind = f"a {modality} image" if modality != "AUTO" else "a volume"
        print(f"warning: --auto on {kind}: the prompt-free mask is trained for one-object tasks (a skin lesion, the "
              f"lungs of a chest X-ray, a polyp, a fetal head, a breast lesion); {kind} holds many structures and "
              f"the mask may be any of them: give a box or a click for the one you mean", file=sys.stderr)


def _as_uint8(image, mapping):
    from ..intensity import to_uint8

    return to_uint8(image, mapping)


def _overlay_prompts(prompt) -> dict:
    """The overlay's prompt arguments of a pixel SlicePrompt (none for a prompt-free mask)."""
    if prompt is None:
        return {}
    strokes = [(s.array, s.positive, False) for s in prompt.scribbles] + [(s.array, s.positive, True) for s in prompt.lassos]
    return {"box": prompt.pixel_box(), "points": prompt.points_array(), "labels": prompt.labels_array(), "strokes": strokes}


def overlay_image(image_uint8: np.ndarray, mask: np.ndarray, box=None, points=None, labels=None,
                  strokes=()) -> np.ndarray:
    """(H, W, 3) uint8: the image with the mask tinted and its outline drawn, and the prompts that
    made it: the box's outline, a green "+" at each positive click, a red "−" at each negative one
    (each on a dark halo, to stay visible on any background), and each stroke (vertices, positive,
    closed) as a green or red line."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    rgb = image_uint8 if image_uint8.ndim == 3 else np.repeat(image_uint8[..., None], 3, axis=2)
    blended = rgb.astype(np.float32)
    blended[mask] = (1 - OVERLAY_OPACITY) * blended[mask] + OVERLAY_OPACITY * OVERLAY_COLOUR
    outline = mask & ~ndimage.binary_erosion(mask)
    blended[outline] = OVERLAY_COLOUR
    picture = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    size = max(3, round(min(mask.shape) / 40))  # the marker's half length, in pixels
    width = max(1, size // 3)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=width)
    for vertices, positive, closed in strokes:
        line = [tuple(float(v) for v in vertex) for vertex in vertices] + ([tuple(vertices[0])] if closed else [])
        if len(line) > 1:
            draw.line(line, fill=POSITIVE_COLOUR if positive else NEGATIVE_COLOUR, width=width)
    for (x, y), label in zip(np.asarray(points if points is not None else [], dtype=np.float64).reshape(-1, 2),
                             np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)):
        strokes = [((x - size, y), (x + size, y))] + ([((x, y - size), (x, y + size))] if label else [])
        for halo, colour in ((width + 2, (0, 0, 0)), (width, POSITIVE_COLOUR if label else NEGATIVE_COLOUR)):
            for start, end in strokes:
                draw.line([start, end], fill=colour, width=halo)
    return np.asarray(picture)


def _segments(args):
    from ..io import SegmentInfo

    return [SegmentInfo(args.name, 1)]


# --- volumes ---------------------------------------------------------------------------------
def _segment_volume(args, job: _Job, predictor) -> list[Path]:
    from ..geometry import slice_axis_for, slice_count
    from ..io import write_segmentation
    from ..segment3d import VolumeSegmenter

    segmenter = predictor.open_volume(job.volume, job.mapping) if args.server else \
        VolumeSegmenter(predictor, job.volume, job.mapping)
    orientation, prompt = args.orientation, job.prompt
    rules = _rules(args, predictor)
    walked = None  # "propagation" or "3D box" when a walk ran
    with ProgressBar() as progress:
        if args.auto:
            axis = slice_axis_for(job.volume, orientation)
            index = args.slice if args.slice is not None else slice_count(job.volume, axis) // 2
            labelmap = segmenter.segment_auto(orientation, index).labelmap
        elif job.segment is not None:
            correction = segmenter.correct(job.segment, prompt, orientation, rules=rules, progress=progress)
            labelmap, walked = correction.labelmap, "correction"
            print(f"corrected slice {correction.slice_ref.index}; re-segmented slices "
                  f"{_ranges(correction.changed)}", file=sys.stderr)
        elif prompt.box is not None and _spans_slices(job.volume, orientation, prompt):
            labelmap, walked = segmenter.segment_box3d(prompt.box_array(), orientation, progress=progress,
                                                       rules=rules), "3D box"
        else:
            seed = segmenter.segment_slice(prompt, orientation)
            _note_dropped_negatives(predictor)
            labelmap = seed.labelmap
            if args.propagate:
                labelmap, walked = segmenter.propagate(seed, rules=rules, progress=progress), "propagation"
    if walked is not None:
        _explain_walk(walked, segmenter, job.volume, labelmap, orientation)
    write_segmentation(job.output, job.volume.with_array(labelmap.astype(np.uint8)), _segments(args))
    _print_volume_summary(job.volume, labelmap, args.name)
    return [job.output]


def _spans_slices(volume, orientation, prompt) -> bool:
    from ..geometry import slice_axis_for, slice_extent_of_box

    first, last = slice_extent_of_box(volume, slice_axis_for(volume, orientation), prompt.box_array())
    return last > first
def _note_dropped_negatives(predictor) -> None:
    dropped = getattr(predictor, "dropped_negatives", 0)
    if dropped:
        print(f"note: {dropped} negative click(s) far from the mask were ignored (they could only remove nothing "
              f"there; put a negative click on the part of the mask to remove)", file=sys.stderr)


def _rules(args, predictor):
    from ..walk_rules import PropagationRules

    fields = {"decision": args.walk}
    if args.patience is not None:
        fields["patience"] = args.patience
    if args.server:  # the server applies the adapter's declared prompt itself
        return PropagationRules(**fields)
    return PropagationRules.for_predictor(predictor, **fields)


EARLY_STOP_SLICES = 2  # a click's walk that keeps this few slices most likely stopped too early


def _explain_walk(what: str, segmenter, volume, labelmap: np.ndarray, orientation: str) -> None:
    """Where the walk went and why each direction ended; advice when a click's walk ended early."""
    from ..geometry import slice_axis_for, slice_count

    axis = slice_axis_for(volume, orientation)
    total = slice_count(volume, axis)
    kept = np.flatnonzero(labelmap.any(axis=tuple(d for d in range(3) if d != 2 - axis)))
    if kept.size:
        print(f"{what}: {kept.size} of the volume's {total} slices along axis {'ijk'[axis]} "
              f"(slices {_ranges(kept.tolist())})", file=sys.stderr)
    for stop in getattr(segmenter, "last_stops", []):
        print(f"  {stop.describe(total)}", file=sys.stderr)
    decided = [s for s in getattr(segmenter, "last_stops", []) if s.reason not in ("end of range", "agrees")]
    if what == "propagation" and kept.size <= EARLY_STOP_SLICES and decided:
        print(f"note: the propagation stopped after {kept.size} of the volume's {total} slices; if the structure "
              f"goes on, a 3D box around it (--ijk-box or a rotated ROI) is usually more reliable here", file=sys.stderr)


def _ranges(indices) -> str:
    """'3..7, 9' for [3, 4, 5, 6, 7, 9]."""
    indices = sorted(int(i) for i in indices)
    if not indices:
        return "none"
    parts, start, previous = [], indices[0], indices[0]
    for index in indices[1:] + [None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(f"{start}..{previous}" if previous > start else str(start))
        if index is not None:
            start = previous = index
    return ", ".join(parts)


def _print_volume_summary(volume, labelmap: np.ndarray, name: str) -> None:
    voxels = int(labelmap.sum())
    millilitres = voxels * float(np.prod(volume.spacing)) / 1000.0
    slices = np.flatnonzero(labelmap.any(axis=(1, 2)))
    where = f", k {slices[0]}..{slices[-1]}" if voxels else ""
    print(f"{name}: {voxels} voxels ({millilitres:.1f} mL{where})")


class ProgressBar:
    """A tqdm bar fed by segment3d's progress(done, total) callback (hidden when not a terminal)."""

    def __enter__(self):
        self.bar = None
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="slice", desc="propagating", file=sys.stderr, disable=None, leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False
