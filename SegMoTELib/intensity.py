"""Intensity mapping of any slice or volume to the 8-bit range the models and curation use.

One place for it: the predictor, 3D propagation and curation all call `to_uint8`, so a study is
seen the same way whether it is segmented or curated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

# (window width, window level) in Hounsfield units.
CT_WINDOWS = {
    "abdomen": (400.0, 40.0),
    "soft_tissue": (350.0, 50.0),
    "lung": (1500.0, -600.0),
    "bone": (1800.0, 400.0),
    "brain": (80.0, 40.0),
}

MODALITIES = ("auto", "CT", "MR", "US", "XRAY", "RGB", "PET", "OTHER")
PERCENTILE_MODALITIES = ("MR", "US", "PET", "OTHER")


@dataclass(frozen=True)
class IntensityMapping:
    """How an image becomes 8-bit: a window (width, level) or percentiles, or passthrough."""

    modality: str = "auto"
    preset: str | None = None  # CT window name, or "auto"
    window: float | None = None
    level: float | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)


def normalise_modality(modality: str | None) -> str:
    if modality is None:
        return "auto"
    aliases = {"MRI": "MR", "X-RAY": "XRAY", "XR": "XRAY", "CR": "XRAY", "DX": "XRAY", "ULTRASOUND": "US",
               "DERMOSCOPY": "RGB", "ENDOSCOPY": "RGB", "FUNDUS": "RGB"}
    key = str(modality).strip().upper()
    key = aliases.get(key, key)
    if key not in {m.upper() for m in MODALITIES}:
        raise InputError(f"modality: unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return "auto" if key == "AUTO" else key


def _apply_window(array: np.ndarray, width: float, level: float) -> np.ndarray:
    if not np.isfinite(width) or width <= 0:
        raise InputError(f"window: width must be a positive number, got {width}")
    low = level - width / 2.0
    scaled = (array.astype(np.float32) - np.float32(low)) * np.float32(255.0 / width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _percentile_window(array: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    low, high = np.percentile(finite, [low_pct, high_pct])
    if high <= low:
        high = low + 1.0
    return float(high - low), float((high + low) / 2.0)


def looks_like_ct(array: np.ndarray) -> bool:
    """Hounsfield-like: signed values reaching well below zero (air at about -1000)."""
    return array.dtype.kind in "if" and float(np.nanmin(array)) < -500.0


def resolve_window(array: np.ndarray, mapping: IntensityMapping) -> tuple[float, float] | None:
    """The (width, level) that `to_uint8` applies, or None for passthrough."""
    if mapping.window is not None or mapping.level is not None:
        if mapping.window is None or mapping.level is None:
            raise InputError("window/level: give both the window width and the level, or neither")
        return float(mapping.window), float(mapping.level)
    modality = normalise_modality(mapping.modality)
    if modality == "auto":
        if array.dtype == np.uint8:
            return None
        modality = "CT" if looks_like_ct(array) else "OTHER"
    if modality in ("XRAY", "RGB"):
        if array.dtype == np.uint8:
            return None
        return _percentile_window(array, 0.0, 100.0)
    if modality == "CT":
        preset = mapping.preset or "auto"
        if preset == "auto":
            return _percentile_window(np.clip(array, -1024, 3071), 0.5, 99.5)
        if preset not in CT_WINDOWS:
            raise InputError(f"preset: unknown CT window {preset!r}; expected auto or one of {', '.join(CT_WINDOWS)}")
        return CT_WINDOWS[preset]
    return _percentile_window(array, *mapping.percentiles)


def to_uint8(array: np.ndarray, mapping: IntensityMapping | None = None, **kwargs) -> np.ndarray:
    """Map a slice or volume to uint8 for the model or for curation statistics.

    `mapping` or keyword arguments (modality=, preset=, window=, level=, percentiles=) choose the
    mapping. The window of a volume is computed once on the whole volume so that all its slices
    share it (propagation compares slices).
    """
    mapping = mapping or IntensityMapping(**kwargs)
    array = np.asarray(array)
    if array.size == 0:
        raise InputError("image: the image is empty")
    if array.dtype.kind == "b":
        raise InputError("image: a boolean array is a mask, not an image; pass the image itself")
    if array.dtype.kind not in "uif":
        raise InputError(f"image: unsupported dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError("image: contains NaN or infinite values")
    window = resolve_window(array, mapping)
    if window is None:
        return array.astype(np.uint8, copy=False)
    return _apply_window(array, *window)


# ITU-R BT.601 luma weights (what PIL's convert("L") uses): an RGB volume becomes one grey volume.
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)


def scalar_voxels(voxels: np.ndarray) -> np.ndarray:
    """A volume's voxels [k, j, i] as one value per voxel: a colour volume [k, j, i, 3] (or 4, alpha
    ignored) becomes its luminance (float32); a scalar volume is returned as it is.

    A 3D colour volume (colour ultrasound, histology stacks, a photo series) has no single-image RGB
    path in the model, and its luminance carries the anatomy; the Slicer Logic and effect use this so
    both see the same grey volume.
    """
    array = np.asarray(voxels)
    if array.ndim == 3:
        return array
    if array.ndim == 4 and array.shape[-1] == 1:
        return array[..., 0]
    if array.ndim != 4 or array.shape[-1] not in (3, 4):
        raise InputError(f"volume: expected voxels [k, j, i] or colour voxels [k, j, i, 3], got shape {array.shape}")
    grey = np.zeros(array.shape[:3], dtype=np.float32)
    for channel, weight in enumerate(LUMINANCE_WEIGHTS):
        grey += np.float32(weight) * array[..., channel].astype(np.float32, copy=False)
    return grey
