"""Shared pieces of SegMoTE's Slicer self-tests: sample data, Dice, frozen reference masks.

Reference masks are stored in References/<name>.npz (bit-packed). They are produced by running
the self-tests once with SEGMOTE_REGENERATE_REFERENCES=1 (after a deliberate model or engine
change), checked by eye, and committed; a normal run compares against them by Dice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import slicer

REFERENCE_DIR = Path(__file__).resolve().parent / "References"
REGENERATE = os.environ.get("SEGMOTE_REGENERATE_REFERENCES", "") == "1"
MIN_REFERENCE_DICE = 0.90  # same model and prompts; the margin covers CPU/GPU numerical differences
SAMPLE = "MRHead"          # 256 x 256 x 130 T1 MRI, the smallest of Slicer's sample volumes
# A box around the head on the middle axial slice, in voxel coordinates (i, j, k) of MRHead.
BOX_IJK = ((60, 40, 65), (196, 216, 65))
CLICK_IJK = (128, 128, 65)


def loadSampleVolume() -> slicer.vtkMRMLScalarVolumeNode:
    import SampleData

    return SampleData.SampleDataLogic().downloadSample(SAMPLE)


def dice(first, second) -> float:
    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    total = int(first.sum()) + int(second.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(first, second).sum()) / total


def checkAgainstReference(testCase, name: str, mask) -> None:
    """Compare with References/<name>.npz, or (re)write it when SEGMOTE_REGENERATE_REFERENCES=1."""
    mask = np.asarray(mask, dtype=bool)
    path = REFERENCE_DIR / f"{name}.npz"
    if REGENERATE:
        REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".npz", dir=REFERENCE_DIR)
        os.close(handle)
        np.savez_compressed(temporary, bits=np.packbits(mask), shape=np.array(mask.shape))
        os.replace(temporary, path)
        return
    if not path.is_file():
        testCase.fail(f"missing reference mask {path}; run the self-tests once with "
                      f"SEGMOTE_REGENERATE_REFERENCES=1, check the masks and commit References/")
    with np.load(path) as stored:
        shape = tuple(int(v) for v in stored["shape"])
        reference = np.unpackbits(stored["bits"])[:int(np.prod(shape))].reshape(shape).astype(bool)
    testCase.assertEqual(reference.shape, mask.shape)
    testCase.assertGreaterEqual(dice(mask, reference), MIN_REFERENCE_DICE, f"{name}: differs from its reference")


def segmentArray(segmentationNode: slicer.vtkMRMLSegmentationNode, segmentId: str,
                 volumeNode: slicer.vtkMRMLScalarVolumeNode):
    return np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode), dtype=bool)
