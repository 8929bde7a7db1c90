"""Segmentations: Slicer `.seg.nrrd` (`seg_nrrd.py`) or a plain labelmap file, picked by extension.

A segmentation is a labelmap `Volume` (integers [k, j, i], 0 = background) plus a list of
`SegmentInfo(name, label, color)`. `.seg.nrrd` keeps names and colours; any other extension
(`.nii.gz`, `.nrrd`, `.mha`, ...) is a plain labelmap in the source geometry, whose segments are
named `Segment_<label>` when read back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume import Volume
from .formats import extension_of
from .seg_nrrd import (
    DEFAULT_COLORS,
    SEGMENTATION_EXTENSION,
    SegmentInfo,
    checked_label_voxels,
    default_segment_color,
    default_segments,
    has_segment_fields,
    read_seg_nrrd,
    write_seg_nrrd,
)
from .volumes import read_volume, write_volume

__all__ = ["DEFAULT_COLORS", "SegmentInfo", "default_segment_color", "default_segments", "read_labelmap",
           "read_segmentation", "write_segmentation"]


def write_segmentation(path, labelmap: Volume, segments: list[SegmentInfo] | None = None) -> Path:
    """Write a segmentation atomically: `.seg.nrrd` with segment metadata, else a plain labelmap.

    `labelmap`: integer or bool voxels [k, j, i] in the source geometry. `segments` must describe
    every non-zero value present (None: `default_segments`); a segment may be empty.
    """
    if not isinstance(labelmap, Volume) or labelmap.rgb:
        raise InputError("labelmap: expected a scalar SegMoTELib Volume (e.g. volume.with_array(mask))")
    segments = default_segments(labelmap.array) if segments is None else list(segments)
    target = Path(path).expanduser()
    if extension_of(target) == SEGMENTATION_EXTENSION:
        return write_seg_nrrd(target, labelmap, segments)
    voxels = checked_label_voxels(labelmap.array, segments)
    return write_volume(labelmap.with_array(voxels), target)


def read_segmentation(path) -> tuple[Volume, list[SegmentInfo]]:
    """(labelmap volume, segments) from a `.seg.nrrd` or a plain labelmap file.

    A `.seg.nrrd` whose segments sit on several layers (overlapping segments in Slicer) is merged
    into one labelmap when the segments do not actually overlap; label values are renumbered only
    where two layers reuse one. Overlapping segments are refused. The labelmap keeps the file's
    geometry, which Slicer may have cropped to the segments' extent.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    if extension_of(source) in (SEGMENTATION_EXTENSION, ".nrrd") and has_segment_fields(source):
        return read_seg_nrrd(source)
    labelmap = read_labelmap(source)
    return labelmap, default_segments(labelmap.array)


def read_labelmap(path) -> Volume:
    """A labelmap volume (integer voxels) from any segmentation or volume file."""
    source = Path(path).expanduser()
    if extension_of(source) == SEGMENTATION_EXTENSION and source.is_file() and has_segment_fields(source):
        return read_seg_nrrd(source)[0]
    volume = read_volume(source)
    if volume.rgb:
        raise DataError(f"{source}: an RGB image is not a labelmap")
    array = volume.array
    if array.dtype.kind == "f":
        if np.any(array != np.round(array)):
            raise DataError(f"{source}: holds non-integer values; expected a labelmap (integer labels)")
        array = array.astype(np.int64)
        array = array.astype(np.min_scalar_type(int(array.max())) if array.min() >= 0 else np.int32)
    if array.dtype.kind in "iu" and array.min() < 0:
        raise DataError(f"{source}: holds negative values; expected a labelmap (labels >= 0)")
    return volume.with_array(array)
