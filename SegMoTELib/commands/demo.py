"""`segmote demo`: the README's main job — segment a 3D phantom and score it, no data needed.

It builds the procedural CT phantom (known organ masks), writes it as NIfTI, segments one organ
from a single click on its middle slice propagated through the volume and two organs from 3D
boxes, prints the Dice of each against the known masks, and writes a `.seg.nrrd` with named,
coloured segments that 3D Slicer opens over `phantom.nii.gz`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.outputs import make_output_folder
from ..slice_prompt import SlicePrompt
from .model_options import add_model_arguments, predictor_from_args

HELP = "segment a procedural 3D CT phantom (one click + propagation, 3D boxes) and print the Dice"

CLICK_STRUCTURE = "liver"
BOX_STRUCTURES = ("spleen", "left kidney")
DEMO_WINDOW = "abdomen"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", default="outputs/demo", metavar="DIR",
                        help="folder for phantom.nii.gz, reference.seg.nrrd and segmentation.seg.nrrd "
                             "(created if missing; default: outputs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    add_model_arguments(parser)


@dataclass
class _Outcome:
    name: str
    prompt: str
    mask: np.ndarray  # bool [k, j, i]
    dice: float
    seconds: float


def run(args) -> int:
    from ..io import SegmentInfo, write_segmentation, write_volume
    from ..phantom import make_phantom

    started = time.perf_counter()
    folder = _output_folder(args.out)
    phantom = make_phantom(seed=args.seed)
    image_path = write_volume(phantom.image, folder / "phantom.nii.gz")
    reference_path = write_segmentation(folder / "reference.seg.nrrd", phantom.label_volume, phantom.segments)
    print(f"phantom: {phantom.image.array.shape[0]} axial slices of {phantom.image.array.shape[2]} x "
          f"{phantom.image.array.shape[1]} voxels, spacing {', '.join(f'{s:g}' for s in phantom.image.spacing)} mm; "
          f"structures: {', '.join(s.name for s in phantom.segments)}")

    predictor = _predictor(args, phantom.image.array.shape[0])
    if predictor.notice:
        print(f"note: {predictor.notice}")
    print(f"runtime: {predictor.runtime_name} ({predictor.runtime_description})")
    cpu_started = time.process_time()
    from ..intensity import IntensityMapping
    from ..segment3d import VolumeSegmenter

    segmenter = VolumeSegmenter(predictor, phantom.image, IntensityMapping(modality="CT", preset=DEMO_WINDOW))
    outcomes = [_click_and_propagate(segmenter, phantom, CLICK_STRUCTURE, image_path)]
    outcomes += [_box3d(segmenter, phantom, name, image_path) for name in BOX_STRUCTURES]

    labels = np.zeros(phantom.labels.shape, dtype=np.uint8)
    segments = []
    for outcome in outcomes:
        reference = next(s for s in phantom.segments if s.name == outcome.name)
        labels[outcome.mask & (labels == 0)] = reference.label
        segments.append(SegmentInfo(outcome.name, reference.label, reference.color))
    segmentation_path = write_segmentation(folder / "segmentation.seg.nrrd", phantom.image.with_array(labels), segments)

    _print_table(outcomes, phantom)
    for path in (image_path, reference_path, segmentation_path):
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - started:.0f} s on {predictor.device} with the {predictor.runtime_name} runtime "
          f"(segmenting: {time.process_time() - cpu_started:.0f} s of CPU time, all threads). In 3D Slicer: load "
          f"phantom.nii.gz, then segmentation.seg.nrrd (and reference.seg.nrrd to compare).")
    return 0


def _output_folder(out: str) -> Path:
    return make_output_folder(out, "--out")


def _predictor(args, slice_count: int):
    # Keep every slice's embedding: the click walk and the boxes share slices, and on a CPU an
    # embedding costs seconds while a cached one is free.
    return predictor_from_args(args, cache_size=slice_count)


def _dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    total = int(predicted.sum()) + int(truth.sum())
    return 2.0 * int(np.count_nonzero(predicted & truth)) / total if total else 1.0


def _click_point_ras(phantom, name: str) -> np.ndarray:
    """A click where a user would put it: the deepest point of the organ on its middle axial slice."""
    from scipy import ndimage

    from ..geometry import SliceRef, extract_slice, slice_axis_for, slice_pixels_to_ras

    truth = phantom.mask(name)
    axis = slice_axis_for(phantom.image, "axial")
    present = np.flatnonzero(truth.any(axis=tuple(a for a in range(3) if a != 2 - axis)))
    ref = SliceRef(axis, int((present[0] + present[-1]) // 2))
    organ = extract_slice(phantom.image.with_array(truth), ref)
    depth = ndimage.distance_transform_edt(organ)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return slice_pixels_to_ras(phantom.image, ref, [[x, y]])[0]


def _click_and_propagate(segmenter, phantom, name: str, image_path: Path) -> _Outcome:
    from .segment import ProgressBar

    click = _click_point_ras(phantom, name)
    print(f"\n{name}: one click at RAS ({click[0]:.1f}, {click[1]:.1f}, {click[2]:.1f}) mm, propagated "
          f"through the volume\n  same from the command line: segmote segment {image_path} --ras-point "
          f"{click[0]:.1f} {click[1]:.1f} {click[2]:.1f} --propagate --preset {DEMO_WINDOW} -o {name}.seg.nrrd")
    started = time.perf_counter()
    seed = segmenter.segment_slice(SlicePrompt.build("ras", points=[click]), "axial")
    if seed.area == 0:
        print("  the click gave an empty mask: LiteMedSAM's own decoder was trained with boxes only; "
              "clicks need a trained SegMoTE adapter (--adapter FILE)")
    with ProgressBar() as progress:
        mask = segmenter.propagate(seed, progress=progress)
    return _Outcome(name, "1 click + propagation", mask, _dice(mask, phantom.mask(name)),
                    time.perf_counter() - started)


def _box3d(segmenter, phantom, name: str, image_path: Path) -> _Outcome:
    """A 3D box as a user would draw it round the organ: its bounding box, aligned with the volume."""
    from .segment import ProgressBar

    truth = phantom.mask(name)
    present = np.argwhere(truth)
    low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # i, j, k
    corners_ijk = np.array([[i, j, k] for i in (low[0], high[0]) for j in (low[1], high[1]) for k in (low[2], high[2])],
                           dtype=np.float64)
    corners = phantom.image.ijk_to_ras_points(corners_ijk)
    print(f"\n{name}: 3D box (an ROI aligned with the volume, voxels i {low[0]}-{high[0]}, j {low[1]}-{high[1]}, "
          f"k {low[2]}-{high[2]})")
    started = time.perf_counter()
    with ProgressBar() as progress:
        mask = segmenter.segment_box3d(corners, "axial", progress=progress)
    return _Outcome(name, "3D box", mask, _dice(mask, truth), time.perf_counter() - started)


def _print_table(outcomes: list[_Outcome], phantom) -> None:
    print("\nstructure      prompt                   Dice    voxels (found / true)   time")
    for outcome in outcomes:
        truth = int(phantom.mask(outcome.name).sum())
        print(f"{outcome.name:<14} {outcome.prompt:<24} {outcome.dice:5.3f}   {int(outcome.mask.sum()):>7} / {truth:<7}"
              f"         {outcome.seconds:5.1f} s")
