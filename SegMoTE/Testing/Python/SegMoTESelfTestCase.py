"""The volume, prompts and model of SegMoTE's Slicer self-tests, and their reference masks.

Shared by the self-tests (inside Slicer) and by scripts/make_selftest_references.py (headless, no
Slicer), so both run the same model on the same voxels and prompts: the references are what the
engine gives directly; the self-tests check that the Slicer path (MRML nodes, world coordinates,
the worker, writing into segments) gives the same masks. No `slicer` import here.

The volume is the project's CT phantom (SegMoTELib.phantom), shortened to 24 axial slices so a
propagation stays short on a CPU; the prompts target its liver on the middle slice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

REFERENCE_DIR = Path(__file__).resolve().parent / "References"
MIN_REFERENCE_DICE = 0.90  # same model and prompts; the margin covers CPU/GPU numerical differences

PHANTOM_SEED = 0
PHANTOM_SHAPE = (24, 176, 208)  # (k, j, i)
MODALITY = "auto"               # what the Logic and the effect use by default

# Voxel coordinates (i, j, k) of the phantom: a box around the liver on the middle axial slice,
# a positive click inside the liver, a negative click on what the box mask wrongly includes.
BOX_IJK = ((104, 58, 12), (171, 121, 12))
CLICK_IJK = (138, 90, 12)
NEGATIVE_CLICK_IJK = (113, 84, 12)
# A markups ROI around the liver, rotated about the superior axis.
ROI_CENTER_IJK = (138, 90, 12)
ROI_SIZE_MM = (110.0, 100.0, 20.0)
ROI_ROTATION_DEGREES = 15.0

# The model of the references. The self-tests pass the same settings to the Logic and the effect.
ENGINE_SETTINGS = {"device": "cpu", "backbone": "litemedsam", "checkpoint": "", "adapter": "default", "fast": False}
PREDICTOR_ARGUMENTS = {"backbone": "litemedsam", "checkpoint": None, "adapter": "default", "device": "cpu"}

# Reference name -> what it is (see scripts/make_selftest_references.py for how each is made).
REFERENCES = {
    "box": "box on the middle slice (Logic segmentWithBox and the effect's setBoxPromptIjk)",
    "click": "one positive click (Logic segmentWithPoints)",
    "box_negative_click": "the box, then a negative click refining it (effect)",
    "box_propagated": "the box mask propagated through the volume (Logic propagate=True, effect Propagate)",
    "rotated_roi": "the rotated ROI, every slice it crosses (Logic segmentWithRoi)",
}


def makeSelfTestPhantom():
    from SegMoTELib.phantom import make_phantom

    return make_phantom(seed=PHANTOM_SEED, shape=PHANTOM_SHAPE)


def roiObjectToWorld(centerRas) -> np.ndarray:
    """The ROI's object-to-world matrix (4, 4): rotation about S by ROI_ROTATION_DEGREES, centre at `centerRas`."""
    angle = np.radians(ROI_ROTATION_DEGREES)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, 3] = np.asarray(centerRas, dtype=np.float64)
    return matrix


def dice(first, second) -> float:
    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    total = int(first.sum()) + int(second.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(first, second).sum()) / total


def referencePath(name: str) -> Path:
    if name not in REFERENCES:
        raise KeyError(f"unknown reference '{name}' (known: {', '.join(REFERENCES)})")
    return REFERENCE_DIR / f"{name}.npz"


def writeReference(name: str, mask) -> Path:
    """Store a bool mask [k, j, i] bit-packed; written atomically."""
    mask = np.asarray(mask, dtype=bool)
    path = referencePath(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(handle)
    np.savez_compressed(temporary, bits=np.packbits(mask), shape=np.array(mask.shape))
    os.replace(temporary, path)
    return path


def readReference(name: str) -> np.ndarray:
    path = referencePath(name)
    if not path.is_file():
        raise FileNotFoundError(f"missing reference mask {path}; run scripts/make_selftest_references.py")
    with np.load(path) as stored:
        shape = tuple(int(v) for v in stored["shape"])
        return np.unpackbits(stored["bits"])[:int(np.prod(shape))].reshape(shape).astype(bool)
