"""Write the reference masks of SegMoTE's Slicer self-tests, headless, with the engine alone.

    .venv/bin/python scripts/make_selftest_references.py          # writes SegMoTE/Testing/Python/References/*.npz
    .venv/bin/python scripts/make_selftest_references.py --check  # compares instead of writing

Same volume (the project's CT phantom), same prompts, same model as the self-tests
(SegMoTE/Testing/Python/SegMoTESelfTestCase.py), computed the way the Slicer Logic computes them
(a `Volume` from the voxels and the IJK->RAS matrix, `VolumeSegmenter` calls with RAS prompts) but
without Slicer. The self-tests then compare what the Slicer path writes into segments with these
masks, by Dice. Run it after a deliberate model or engine change, look at the figures it prints,
and commit the files (a few kB each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "SegMoTE" / "Testing" / "Python"))

import SegMoTESelfTestCase as case  # noqa: E402
from SegMoTELib import geometry  # noqa: E402
from SegMoTELib.intensity import IntensityMapping  # noqa: E402
from SegMoTELib.predictor import SegMoTEPredictor  # noqa: E402
from SegMoTELib.segment3d import VolumeSegmenter  # noqa: E402
from SegMoTELib.slice_prompt import SlicePrompt  # noqa: E402
from SegMoTELib.volume import Volume  # noqa: E402


def engine_masks(names=None, report=print) -> dict[str, np.ndarray]:
    """The reference masks `names` (default: all of case.REFERENCES) computed by the engine alone."""
    names = list(case.REFERENCES) if names is None else list(names)
    phantom = case.makeSelfTestPhantom()
    # What SegMoTEGlue.mrmlconvert.volumeFromNode builds from the volume node the self-test adds.
    volume = Volume.from_ijk_to_ras(phantom.image.array.copy(), phantom.image.ijk_to_ras, modality=case.MODALITY)
    predictor = SegMoTEPredictor(**case.PREDICTOR_ARGUMENTS)
    segmenter = VolumeSegmenter(predictor, volume, mapping=IntensityMapping(modality=case.MODALITY))

    def ras(ijk_points):
        return volume.ijk_to_ras_points(np.asarray(ijk_points, dtype=np.float64))

    box_ras = ras(case.BOX_IJK)
    cache = {}

    def box():
        if "box" not in cache:
            cache["box"] = segmenter.segment_slice(SlicePrompt.build("ras", box=box_ras), "axial")
        return cache["box"]

    def click():
        return segmenter.segment_slice(SlicePrompt.build("ras", points=ras([case.CLICK_IJK])), "axial").labelmap

    def box_negative_click():
        # The effect's refinement: same slice, the box kept, the previous logits as a dense prompt.
        seed = box()
        prompt = SlicePrompt.build("ras", points=ras([case.NEGATIVE_CLICK_IJK]), labels=[0], box=box_ras,
                                   mask_input=seed.low_res_logits)
        return segmenter.segment_slice(prompt, "axial", slice_index=seed.ref.index).labelmap

    def rotated_roi():
        corners = geometry.roi_corners(case.roiObjectToWorld(ras([case.ROI_CENTER_IJK])[0]), case.ROI_SIZE_MM)
        return segmenter.segment_box3d(corners, orientation="axial")

    makers = {"box": lambda: box().labelmap, "click": click, "box_negative_click": box_negative_click,
              "box_propagated": lambda: segmenter.propagate(box()), "rotated_roi": rotated_roi}
    masks = {name: np.asarray(makers[name](), dtype=bool) for name in names}
    truth = phantom.mask("liver")
    for name, mask in masks.items():
        slices = np.flatnonzero(mask.any(axis=(1, 2))).tolist()
        span = f"{slices[0]}..{slices[-1]}" if slices else "-"
        report(f"{name:20s} {int(mask.sum()):7d} voxels on slices {span}  Dice vs the phantom's liver on those "
               f"slices {case.dice(mask[slices], truth[slices]):.3f}  ({predictor.notice or 'shipped adapter'})")
    return masks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored references instead of writing")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    masks = engine_masks()
    worst = 1.0
    for name, mask in masks.items():
        if args.check:
            score = case.dice(mask, case.readReference(name))
            worst = min(worst, score)
            print(f"{name:20s} Dice vs stored reference {score:.4f}")
        else:
            path = case.writeReference(name, mask)
            print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0 if worst >= case.MIN_REFERENCE_DICE else 1


if __name__ == "__main__":
    sys.exit(main())
