"""Shared pieces of SegMoTE's Slicer self-tests: the phantom volume node, settings, references.

The volume, prompts and model are SegMoTESelfTestCase's; the reference masks in References/ are
written by scripts/make_selftest_references.py with the engine alone (no Slicer), on the same
voxels and prompts. A self-test passes when the Slicer path gives the engine's mask (Dice).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import slicer
from SegMoTESelfTestCase import ENGINE_SETTINGS, MIN_REFERENCE_DICE, dice, makeSelfTestPhantom, readReference

import SegMoTEGlue  # noqa: F401  (makes SegMoTELib importable from a source checkout)
from SegMoTEGlue.settings import EngineSettings, loadSettings, saveSettings


def loadPhantomVolume() -> slicer.vtkMRMLScalarVolumeNode:
    """The self-test phantom as a scalar volume node (voxels and IJK->RAS as the engine sees them)."""
    phantom = makeSelfTestPhantom()
    return slicer.util.addVolumeFromArray(phantom.image.array.copy(), ijkToRAS=phantom.image.ijk_to_ras,
                                          name="SegMoTE self-test phantom")


def selfTestSettings() -> EngineSettings:
    return EngineSettings(**ENGINE_SETTINGS)


@contextmanager
def savedSettingsReplacedBySelfTestSettings():
    """The effect reads the saved settings: use the self-test's model, then put the user's back."""
    previous = loadSettings()
    saveSettings(selfTestSettings())
    try:
        yield
    finally:
        saveSettings(previous)


def checkAgainstReference(testCase, name: str, mask) -> None:
    """Dice of `mask` with References/<name>.npz at least MIN_REFERENCE_DICE (shapes must agree)."""
    reference = readReference(name)
    mask = np.asarray(mask, dtype=bool)
    testCase.assertEqual(reference.shape, mask.shape)
    score = dice(mask, reference)
    testCase.assertGreaterEqual(score, MIN_REFERENCE_DICE, f"{name}: Dice {score:.3f} with the engine's reference")


def segmentArray(segmentationNode: slicer.vtkMRMLSegmentationNode, segmentId: str,
                 volumeNode: slicer.vtkMRMLScalarVolumeNode):
    return np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode), dtype=bool)
