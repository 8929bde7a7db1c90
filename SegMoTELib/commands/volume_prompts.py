"""The volume prompts of `segmote segment`, in the frames users have, all turned into RAS millimetres.

* RAS millimetres, as Slicer shows a markup: `--ras-point`, `--ras-negative`, `--ras-box` (two
  opposite corners of a box aligned with the patient axes), `--ras-scribble`, `--ras-lasso` and
  their negatives (vertex lists on the prompt's slice).
* Voxel indices of the input as stored (what a viewer's status bar or a label map gives):
  `--ijk-point`, `--ijk-negative`, `--ijk-box` (two opposite voxels, inclusive: a box in the
  volume's own frame, also on an oblique volume).
* A rotated ROI: `--roi-center` + `--roi-size` (+ `--roi-axes`, the ROI's three directions in RAS),
  or a Slicer markups ROI file (`--roi-json`, `.mrk.json`, LPS or RAS).

Boxes become 8 RAS corners (`geometry.ijk_box_corners_ras`, `geometry.roi_corners_from_axes`),
so the model sees the same slice box whichever frame the user gave it in. The result is one
`SlicePrompt` in the RAS frame.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ras = parser.add_argument_group("volume prompts in RAS millimetres (as Slicer shows them)")
    ras.add_argument("--ras-point", nargs=3, type=float, action="append", metavar=("R", "A", "S"),
                     help="positive click; the slice through the first one is segmented (repeatable)")
    ras.add_argument("--ras-negative", nargs=3, type=float, action="append", metavar=("R", "A", "S"),
                     help="negative click on the same slice (repeatable)")
    ras.add_argument("--ras-box", nargs=6, type=float, metavar=("R0", "A0", "S0", "R1", "A1", "S1"),
                     help="box by two opposite corners, aligned with the patient axes; a box spanning several "
                          "slices is segmented in 3D within it, a flat box segments its slice")
    for kind, text in (("scribble", "positive scribble"), ("negative-scribble", "negative scribble"),
                       ("lasso", "positive lasso"), ("negative-lasso", "negative lasso")):
        ras.add_argument(f"--ras-{kind}", action="append", metavar="R1,A1,S1,R2,A2,S2,...",
                         help=f"{text} on the slice of the prompt, vertices in RAS mm (repeatable)")
    ijk = parser.add_argument_group("volume prompts in voxel indices of the input as stored (i j k, from 0)")
    ijk.add_argument("--ijk-point", nargs=3, type=int, action="append", metavar=("I", "J", "K"),
                     help="positive click at a voxel (repeatable)")
    ijk.add_argument("--ijk-negative", nargs=3, type=int, action="append", metavar=("I", "J", "K"),
                     help="negative click at a voxel (repeatable)")
    ijk.add_argument("--ijk-box", nargs=6, type=int, metavar=("I0", "J0", "K0", "I1", "J1", "K1"),
                     help="box by two opposite voxels (inclusive), in the volume's own frame; the recommended "
                          "3D prompt (e.g. the structure's extent read in a viewer)")
    roi = parser.add_argument_group("volume prompts as a rotated ROI")
    roi.add_argument("--roi-center", nargs=3, type=float, metavar=("R", "A", "S"), help="ROI centre, RAS mm")
    roi.add_argument("--roi-size", nargs=3, type=float, metavar=("X", "Y", "Z"), help="ROI edge lengths, mm")
    roi.add_argument("--roi-axes", nargs=9, type=float, metavar="V",
                     help="the ROI's x, y and z directions in RAS, 3 numbers each (default: the RAS axes)")
    roi.add_argument("--roi-json", default=None, metavar="FILE",
                     help="a Slicer markups ROI file (.mrk.json) holding one ROI")


STROKE_OPTIONS = ("ras_scribble", "ras_negative_scribble", "ras_lasso", "ras_negative_lasso")


def given(args) -> list[str]:
    """The volume prompt options on the command line."""
    names = ("ras_point", "ras_negative", "ras_box", *STROKE_OPTIONS, "ijk_point", "ijk_negative", "ijk_box", "roi_center",
             "roi_size", "roi_axes", "roi_json")
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name, None) not in (None, [])]


def check_combinations(args) -> None:
    """Refuse prompts that cannot go together, before any file is read."""
    options = set(given(args))
    boxes = [o for o in ("--ras-box", "--ijk-box") if o in options] + (
        ["ROI"] if options & {"--roi-center", "--roi-size", "--roi-json"} else [])
    if len(boxes) > 1:
        raise InputError(f"{boxes[0]}: give one box ({' and '.join(boxes)} were both given)")
    positives = [o for o in ("--ras-point", "--ijk-point") if o in options]
    if boxes and (positives or options & {"--ras-negative", "--ijk-negative"}):
        raise InputError(f"{boxes[0]}: give a box or clicks, not both")
    if len(positives) > 1 or (options & {"--ras-negative", "--ijk-negative"}) == {"--ras-negative", "--ijk-negative"}:
        raise InputError("--ijk-point: give the clicks in one frame, voxel indices or RAS, not both")
    positive_strokes = options & {"--ras-scribble", "--ras-lasso"}
    for negative, positive in (("--ras-negative", "--ras-point"), ("--ijk-negative", "--ijk-point")):
        if negative in options and positive not in options and not positive_strokes:
            raise InputError(f"{negative}: needs at least one {positive} (positive click) or a positive scribble or "
                             f"lasso")
    negative_strokes = sorted(options & {"--ras-negative-scribble", "--ras-negative-lasso"})
    if negative_strokes and not (boxes or positives or positive_strokes):
        raise InputError(f"{negative_strokes[0]}: negative prompts need a positive one too (a click, a box, a scribble "
                         f"or a lasso): they say what is not the structure")
    if "--roi-json" in options and options & {"--roi-center", "--roi-size", "--roi-axes"}:
        raise InputError("--roi-json: the file gives the ROI; drop --roi-center/--roi-size/--roi-axes")
    if options & {"--roi-center", "--roi-size", "--roi-axes"} and not {"--roi-center", "--roi-size"} <= options:
        raise InputError("--roi-center: a ROI needs both --roi-center and --roi-size (and optionally --roi-axes)")


def volume_prompt(args, volume):
    """The command line's volume prompt as one RAS `SlicePrompt` (voxels and ROIs mapped through the
    volume's geometry), or None when none was given."""
    from ..geometry import ijk_box_corners_ras, ijk_points_to_ras, roi_corners_from_axes
    from ..slice_prompt import SlicePrompt, parse_vertex_list

    points = labels = box = None
    if args.ras_point or args.ras_negative:
        points = np.asarray(list(args.ras_point or []) + list(args.ras_negative or []), dtype=np.float64)
        labels = [1] * len(args.ras_point or []) + [0] * len(args.ras_negative or [])
    elif args.ijk_point or args.ijk_negative:
        ijk = list(args.ijk_point or []) + list(args.ijk_negative or [])
        points = ijk_points_to_ras(volume, ijk, "--ijk-point" if args.ijk_point else "--ijk-negative")
        labels = [1] * len(args.ijk_point or []) + [0] * len(args.ijk_negative or [])
    if args.ras_box is not None:
        box = np.asarray(args.ras_box, dtype=np.float64).reshape(2, 3)
    elif args.ijk_box is not None:
        box = ijk_box_corners_ras(volume, args.ijk_box[:3], args.ijk_box[3:])
    elif args.roi_json is not None:
        center, size, axes = read_markups_roi(args.roi_json)
        box = _roi(roi_corners_from_axes, center, size, axes, "--roi-json")
    elif args.roi_center is not None:
        box = _roi(roi_corners_from_axes, args.roi_center, args.roi_size, args.roi_axes, "--roi-center")
    strokes = {name: [parse_vertex_list(text, 3, "--" + name.replace("_", "-")) for text in getattr(args, name, None) or []]
               for name in STROKE_OPTIONS}
    if points is None and box is None and not any(strokes.values()):
        return None
    return SlicePrompt.build("ras", points=points, labels=labels, box=box,
                             scribbles=strokes["ras_scribble"], negative_scribbles=strokes["ras_negative_scribble"],
                             lassos=strokes["ras_lasso"], negative_lassos=strokes["ras_negative_lasso"])


def box_option(args) -> str:
    """The option that gave the box, for messages."""
    for option in ("--ras-box", "--ijk-box", "--roi-json", "--roi-center"):
        if getattr(args, option[2:].replace("-", "_"), None) is not None:
            return option
    return "box"


def _roi(make, center, size, axes, option: str) -> np.ndarray:
    try:
        return make(center, size, axes)
    except InputError as error:
        raise InputError(f"{option}: {str(error)}") from None


def read_markups_roi(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre RAS (3,), size mm (3,), axes (3, 3): rows = the ROI's x, y, z directions in RAS) of the
    one ROI in a Slicer markups JSON file (`vtkMRMLMarkupsROIJsonStorageNode`: "center", "size" and a
    row-major "orientation" whose columns are the ROI's axes, in the file's coordinate system)."""
    source = Path(path).expanduser()
    try:
        content = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--roi-json: {source}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"--roi-json: {source}: not a readable JSON file ({error})") from None
    markups = content.get("markups") if isinstance(content, dict) else None
    rois = [m for m in markups or [] if isinstance(m, dict) and m.get("type") == "ROI"]
    if len(rois) != 1:
        raise InputError(f"--roi-json: {source}: expected one markups ROI (\"type\": \"ROI\"), found {len(rois)}")
    roi = rois[0]
    try:
        center = np.asarray(roi["center"], dtype=np.float64).reshape(3)
        size = np.asarray(roi["size"], dtype=np.float64).reshape(3)
        orientation = np.asarray(roi.get("orientation", np.eye(3).ravel()), dtype=np.float64).reshape(3, 3)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"--roi-json: {source}: the ROI needs 'center' (3 numbers), 'size' (3) and 'orientation' "
                         f"(9)") from None
    system = str(roi.get("coordinateSystem", "LPS")).upper()
    if system not in ("LPS", "RAS"):
        raise InputError(f"--roi-json: {source}: coordinateSystem {system!r}; expected LPS or RAS")
    if system == "LPS":  # as Slicer reads it: negate x and y of the centre and the first two rows
        center = center * [-1, -1, 1]
        orientation = orientation * np.array([[-1], [-1], [1]])
    return center, size, orientation.T


def check_on_one_slice(args, volume, ref, prompt) -> None:
    """Clicks and strokes are prompts on the slice through the first of them; one on another slice
    would be projected onto it silently, a different place than the one the user chose."""
    from ..geometry import orientation_of_axis
    from ..volume import round_half_up

    frame = "ijk" if args.ijk_point or args.ijk_negative else "ras"
    options = ([f"--{frame}-point"] * len(getattr(args, f"{frame}_point") or [])
               + [f"--{frame}-negative"] * len(getattr(args, f"{frame}_negative") or []))
    groups = [(option, point[None]) for option, point in zip(options, prompt.points_array() if prompt.points else [])]
    for name, strokes in (("scribble", prompt.scribbles), ("lasso", prompt.lassos)):
        for stroke in strokes:
            groups.append((f"--ras-{'' if stroke.positive else 'negative-'}{name}", stroke.array))
    for option, coordinates in groups:
        indices = round_half_up(volume.ras_to_ijk_points(coordinates)[:, ref.axis])
        off = np.flatnonzero(indices != ref.index)
        if off.size:
            where = " ".join(f"{value:g}" for value in coordinates[off[0]])
            name = orientation_of_axis(volume, ref.axis)
            raise InputError(f"{option}: the vertex at RAS {where} lies on {name} slice {int(indices[off[0]])}, "
                             f"the prompt on slice {ref.index}; all clicks and strokes must be on the same slice")
