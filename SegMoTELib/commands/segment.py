"""`segmote segment`: segment a 2D image or a 3D volume from the command line.

2D images (PNG/JPEG/TIFF, single-slice NIfTI/NRRD) take pixel prompts (`--box`, `--point`,
`--negative`, `--scribble`, `--lasso` and their negatives, `--auto`) in the image as stored (x =
column, y = row) and give a mask plus an overlay PNG beside it. Volumes (NIfTI, NRRD, MHA, a DICOM
folder, a LiteMedSAM .npz) take prompts in RAS millimetres (what Slicer shows for a markup;
`--ras-point`, `--ras-scribble`, ...) and give a `.seg.nrrd` (or a labelmap such as `.nii.gz`) in
the source geometry. The prompt options become one `SlicePrompt` (`prompt_from_args`), checked with
every file before the model loads.
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
from .model_options import add_model_arguments, check_model_arguments, predictor_from_args

HELP = "segment a 2D image (pixel prompts) or a 3D volume (RAS prompts, propagation, 3D box)"

MASK_IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")
OVERLAY_COLOUR = np.array([255, 64, 32], dtype=np.float32)
OVERLAY_OPACITY = 0.45


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="2D image (PNG/JPEG/TIFF, single-slice NIfTI) or volume (NIfTI, NRRD, MHA, DICOM folder, .npz)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="2D: mask file (.png, 0/255; or .nii.gz), with OUT_overlay.png beside it; "
                             "volume: .seg.nrrd (named segment) or a labelmap (.nii.gz, .nrrd, .mha)")
    pixel = parser.add_argument_group("2D prompts (pixels of the image as stored: x = column, y = row)")
    pixel.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"), help="box corners (inclusive)")
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
    ras = parser.add_argument_group("volume prompts (RAS millimetres, as Slicer shows them)")
    ras.add_argument("--ras-point", nargs=3, type=float, action="append", metavar=("R", "A", "S"),
                     help="positive click; the slice through the first one is segmented (repeatable)")
    ras.add_argument("--ras-negative", nargs=3, type=float, action="append", metavar=("R", "A", "S"),
                     help="negative click on the same slice (repeatable)")
    ras.add_argument("--ras-box", nargs=6, type=float, metavar=("R0", "A0", "S0", "R1", "A1", "S1"),
                     help="box by two opposite corners; a box spanning several slices is segmented in 3D "
                          "within it, a flat box segments its slice")
    for kind, text in (("scribble", "positive scribble"), ("negative-scribble", "negative scribble"),
                       ("lasso", "positive lasso"), ("negative-lasso", "negative lasso")):
        ras.add_argument(f"--ras-{kind}", action="append", metavar="R1,A1,S1,R2,A2,S2,...",
                         help=f"{text} on the slice of the prompt, vertices in RAS mm (repeatable)")
    ras.add_argument("--propagate", action="store_true",
                     help="propagate a point or flat-box mask through the volume until the structure ends")
    ras.add_argument("--orientation", default="axial", choices=("axial", "coronal", "sagittal"),
                     help="slice orientation of the prompt and of propagation (default: axial)")
    ras.add_argument("--slice", type=int, default=None, metavar="INDEX",
                     help="with --auto on a volume: the slice index along --orientation (default: the middle)")
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
    prompt: SlicePrompt | None = None   # pixel (2D) or RAS (volume); None for --auto and a 3D --ras-box


def run(args) -> int:
    job = _prepare(args)
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
    ras_prompt = any(_given(args, name) for name in RAS_OPTIONS)
    if pixel_prompt and ras_prompt:
        raise InputError("prompt: give pixel prompts (--box/--point/--scribble...) for a 2D image or RAS prompts "
                         "(--ras-point/--ras-box/--ras-scribble...) for a volume, not both")
    if not (pixel_prompt or ras_prompt or args.auto):
        raise InputError("prompt: give --box, --point, --scribble, --lasso, --auto (2D) or --ras-point, --ras-box, "
                         "--ras-scribble, --ras-lasso (volume)")
    if args.auto and (pixel_prompt or ras_prompt):
        raise InputError("--auto: a prompt-free mask takes no other prompt")
    if args.box is not None and args.point:
        raise InputError("--box: give a box or clicks, not both")
    if args.ras_box is not None and args.ras_point:
        raise InputError("--ras-box: give a box or clicks, not both")
    for prefix in ("", "ras_"):
        positive = [f"{prefix}{name}" for name in ("point", "box", "scribble", "lasso")]
        if not any(_given(args, name) for name in positive) and any(
                _given(args, f"{prefix}{name}") for name in ("negative", "negative_scribble", "negative_lasso")):
            dash = "--" + prefix.replace("_", "-")
            raise InputError(f"prompt: negative prompts need a positive one too ({dash}point, {dash}box, "
                             f"{dash}scribble or {dash}lasso): they say what is not the structure")
    check_model_arguments(args)
    output = writable_target(args.output, "--output")
    validate_segment_name(args.name, "--name", ascii_only=extension_of(output) == ".seg.nrrd")
    refuse_overwriting_input(output, [args.input], "--output")
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
    if not args.auto:
        job.prompt = prompt_from_args(args, "pixel" if mode == "2d" else "ras")
    if mode == "volume":
        _check_volume_content(args, volume)
        _check_ras_prompts(args, volume, job)
    else:
        _check_image_content(args, job)
        job.prompt.check_inside(*volume.array.shape[1:3])
    return job


PIXEL_OPTIONS = ("box", "point", "negative", "scribble", "negative_scribble", "lasso", "negative_lasso")
RAS_OPTIONS = tuple(f"ras_{name}" for name in PIXEL_OPTIONS)


def _given(args, name: str) -> bool:
    value = getattr(args, name, None)
    return value is not None and value is not False and value != []


def prompt_from_args(args, frame: str) -> SlicePrompt:
    """The one prompt value of the prompt options (pixel options for "pixel", --ras-* for "ras")."""
    from ..slice_prompt import parse_vertex_list

    prefix, dims = ("", 2) if frame == "pixel" else ("ras_", 3)

    def option(name):
        return getattr(args, prefix + name, None) or []

    def strokes(name):
        flag = "--" + (prefix + name).replace("_", "-")
        return [parse_vertex_list(text, dims, flag) for text in option(name)]

    points = list(option("point")) + list(option("negative"))
    labels = [1] * len(option("point")) + [0] * len(option("negative"))
    box = getattr(args, prefix + "box", None)
    if box is not None:
        box = np.asarray(box, dtype=np.float64).reshape(2, dims)
    return SlicePrompt.build(frame, points=points or None, labels=labels or None, box=box,
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


def _check_ras_prompts(args, volume, job: _Job) -> None:
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

    axis = slice_axis_for(volume, args.orientation)
    if args.slice is not None:
        count = slice_count(volume, axis)
        if not 0 <= args.slice < count:
            raise InputError(f"--slice: expected 0..{count - 1} along the {args.orientation} axis, got {args.slice}")
    prompt = job.prompt
    if prompt is None:
        return
    if prompt.box is not None:
        first, last = slice_extent_of_box(volume, axis, prompt.box_array())
        if last > first:  # a 3D box: segmented within it, alone
            if prompt.points or prompt.scribbles or prompt.lassos:
                raise InputError("--ras-box: a box spanning several slices is segmented in 3D and takes no other "
                                 "prompt; give a flat box (on one slice) to combine it with scribbles or lassos")
            ras_box_to_slice_box(volume, SliceRef(axis, (first + last) // 2), prompt.box_array())
            return
    ref = prompt_slice(volume, args.orientation, prompt)
    _check_on_one_slice(args, volume, ref, prompt)
    prompt_on_slice(volume, ref, prompt)


def _check_on_one_slice(args, volume, ref, prompt) -> None:
    """Clicks and strokes are prompts on the slice through the first of them; one on another slice
    would be projected onto it silently, a different place than the one the user chose."""
    from ..volume import round_half_up

    options = (["--ras-point"] * len(args.ras_point or []) + ["--ras-negative"] * len(args.ras_negative or []))
    groups = [(option, point[None]) for option, point in zip(options, prompt.points_array() if prompt.points else [])]
    for name, strokes in (("scribble", prompt.scribbles), ("lasso", prompt.lassos)):
        for stroke in strokes:
            groups.append((f"--ras-{'' if stroke.positive else 'negative-'}{name}", stroke.array))
    for option, coordinates in groups:
        indices = round_half_up(volume.ras_to_ijk_points(coordinates)[:, ref.axis])
        off = np.flatnonzero(indices != ref.index)
        if off.size:
            where = " ".join(f"{value:g}" for value in coordinates[off[0]])
            raise InputError(f"{option}: the vertex at {where} lies on {args.orientation} slice {int(indices[off[0]])}, "
                             f"the prompt on slice {ref.index}; all clicks and strokes must be on the same slice")


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
    prediction = predictor.predict_auto() if args.auto else predictor.predict(job.prompt)
    mask = np.asarray(prediction.masks[0], dtype=bool)
    grey = image if job.volume.rgb else _as_uint8(image, job.mapping)
    with atomic_outputs([job.output, job.overlay], "--output") as (mask_file, overlay_file):  # both or neither
        if extension_of(job.output) in MASK_IMAGE_EXTENSIONS:
            write_volume(job.volume.with_array((mask * 255).astype(np.uint8)[None]), mask_file)
        else:
            write_segmentation(mask_file, job.volume.with_array(mask.astype(np.uint8)[None]), _segments(args))
        write_volume(job.volume.with_array(overlay_image(grey, mask)[None]), overlay_file)
    print(f"mask: {int(mask.sum())} pixels, predicted IoU {float(np.ravel(prediction.scores)[0]):.3f} "
          f"({prediction.decoder} decoder)")
    return [job.output, job.overlay]


def _as_uint8(image, mapping):
    from ..intensity import to_uint8

    return to_uint8(image, mapping)


def overlay_image(image_uint8: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the image with the mask tinted and its outline drawn."""
    from scipy import ndimage

    rgb = image_uint8 if image_uint8.ndim == 3 else np.repeat(image_uint8[..., None], 3, axis=2)
    blended = rgb.astype(np.float32)
    blended[mask] = (1 - OVERLAY_OPACITY) * blended[mask] + OVERLAY_OPACITY * OVERLAY_COLOUR
    outline = mask & ~ndimage.binary_erosion(mask)
    blended[outline] = OVERLAY_COLOUR
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


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
    orientation = args.orientation
    with ProgressBar() as progress:
        if args.auto:
            axis = slice_axis_for(job.volume, orientation)
            index = args.slice if args.slice is not None else slice_count(job.volume, axis) // 2
            labelmap = segmenter.segment_auto(orientation, index).labelmap
        elif job.prompt.box is not None and _spans_slices(job.volume, orientation, job.prompt):
            labelmap = segmenter.segment_box3d(job.prompt.box_array(), orientation, progress=progress)
        else:
            seed = segmenter.segment_slice(job.prompt, orientation)
            labelmap = segmenter.propagate(seed, progress=progress) if args.propagate else seed.labelmap
    write_segmentation(job.output, job.volume.with_array(labelmap.astype(np.uint8)), _segments(args))
    _print_volume_summary(job.volume, labelmap, args.name)
    return [job.output]


def _spans_slices(volume, orientation, prompt) -> bool:
    from ..geometry import slice_axis_for, slice_extent_of_box

    first, last = slice_extent_of_box(volume, slice_axis_for(volume, orientation), prompt.box_array())
    return last > first


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
