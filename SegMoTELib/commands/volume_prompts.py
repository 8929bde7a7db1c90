"""The volume prompts of `segmote segment`, in the frames users have, all turned into RAS millimetres.

* RAS millimetres, as Slicer shows a markup: `--ras-point`, `--ras-negative`, `--ras-box` (two
  opposite corners of a box aligned with the patient axes).
* Voxel indices of the input as stored (what a viewer's status bar or a label map gives):
  `--ijk-point`, `--ijk-negative`, `--ijk-box` (two opposite voxels, inclusive: a box in the
  volume's own frame, also on an oblique volume).
* A rotated ROI: `--roi-center` + `--roi-size` (+ `--roi-axes`, the ROI's three directions in RAS),
  or a Slicer markups ROI file (`--roi-json`, `.mrk.json`, LPS or RAS).

Boxes become 8 RAS corners (`geometry.ijk_box_corners_ras`, `geometry.roi_corners_from_axes`),
so the model sees the same slice box whichever frame the user gave it in.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
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


@dataclass
class VolumePrompt:
    """A volume prompt in RAS: clicks (points, labels) or a box (2 corners aligned with RAS, or 8)."""

    points_ras: np.ndarray | None = None
    labels: np.ndarray | None = None
    box_ras: np.ndarray | None = None
    options: tuple[str, ...] = ()   # the options it came from, for messages

    @property
    def clicks(self) -> bool:
        return self.points_ras is not None


def given(args) -> list[str]:
    """The volume prompt options on the command line."""
    names = ("ras_point", "ras_negative", "ras_box", "ijk_point", "ijk_negative", "ijk_box", "roi_center",
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
    if "--ras-negative" in options and "--ras-point" not in options:
        raise InputError("--ras-negative: needs at least one --ras-point (positive click)")
    if "--ijk-negative" in options and "--ijk-point" not in options:
        raise InputError("--ijk-negative: needs at least one --ijk-point (positive click)")
    if "--roi-json" in options and options & {"--roi-center", "--roi-size", "--roi-axes"}:
        raise InputError("--roi-json: the file gives the ROI; drop --roi-center/--roi-size/--roi-axes")
    if options & {"--roi-center", "--roi-size", "--roi-axes"} and not {"--roi-center", "--roi-size"} <= options:
        raise InputError("--roi-center: a ROI needs both --roi-center and --roi-size (and optionally --roi-axes)")


def volume_prompt(args, volume) -> VolumePrompt | None:
    """The command line's volume prompt in RAS (voxels and ROIs mapped through the volume's geometry)."""
    from ..geometry import ijk_box_corners_ras, ijk_points_to_ras, roi_corners_from_axes

    options = tuple(given(args))
    if args.ras_point:
        points = list(args.ras_point) + list(args.ras_negative or [])
        labels = [1] * len(args.ras_point) + [0] * len(args.ras_negative or [])
        return VolumePrompt(np.asarray(points, dtype=np.float64), np.asarray(labels, np.int64), options=options)
    if args.ijk_point:
        ijk = list(args.ijk_point) + list(args.ijk_negative or [])
        labels = [1] * len(args.ijk_point) + [0] * len(args.ijk_negative or [])
        return VolumePrompt(ijk_points_to_ras(volume, ijk, "--ijk-point"), np.asarray(labels, np.int64),
                            options=options)
    if args.ras_box is not None:
        return VolumePrompt(box_ras=np.asarray(args.ras_box, dtype=np.float64).reshape(2, 3), options=options)
    if args.ijk_box is not None:
        first, last = args.ijk_box[:3], args.ijk_box[3:]
        return VolumePrompt(box_ras=ijk_box_corners_ras(volume, first, last), options=options)
    if args.roi_json is not None:
        center, size, axes = read_markups_roi(args.roi_json)
        return VolumePrompt(box_ras=_roi(roi_corners_from_axes, center, size, axes, "--roi-json"), options=options)
    if args.roi_center is not None:
        return VolumePrompt(box_ras=_roi(roi_corners_from_axes, args.roi_center, args.roi_size, args.roi_axes,
                                         "--roi-center"), options=options)
    return None


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


def check_clicks_on_one_slice(prompt: VolumePrompt, volume, orientation: str) -> None:
    """Clicks are prompts on the slice through the first positive click; one on another slice would
    be projected onto it silently, a different point than the one the user chose."""
    from ..geometry import ras_to_voxel, slice_axis_for

    axis = slice_axis_for(volume, orientation)
    indices = ras_to_voxel(volume, prompt.points_ras)[:, axis]
    first = int(indices[0])
    frame = "ijk" if "--ijk-point" in prompt.options else "ras"
    for point, label, index in zip(prompt.points_ras, prompt.labels, indices):
        if int(index) != first:
            option = f"--{frame}-{'point' if label else 'negative'}"
            where = " ".join(f"{value:g}" for value in point)
            raise InputError(f"{option}: the click at RAS {where} lies on slice {int(index)} of the {orientation} axis, "
                             f"the first click on slice {first}; all clicks must be on the same slice")
