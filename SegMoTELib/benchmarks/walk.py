"""The reference 3D walk: the wheel's single-slice pipeline run slice after slice.

Each slice goes through `predict_array` (its preprocessing, its encoder, its decoder) prompted
with the box of the previous slice's 256² mask grown by 1 % of the side — the walk a user of the
wheel would write — from the seed slice up, then down, until a mask comes back empty.
"""

from __future__ import annotations

import numpy as np

from ..geometry import SliceRef, insert_slice, ras_box_to_slice_box, slice_axis_for, slice_count
from .reference import SIZE

MARGIN = 0.01


def _box_256(mask: np.ndarray) -> np.ndarray | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    grow = round(MARGIN * SIZE)
    return np.array([max(cols[0] - grow, 0), max(rows[0] - grow, 0),
                     min(cols[-1] + grow, SIZE - 1), min(rows[-1] + grow, SIZE - 1)], dtype=np.float32)


def _to_image_size(mask_256: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum((np.arange(height) + 0.5) * SIZE / height, SIZE - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * SIZE / width, SIZE - 1).astype(int)
    return mask_256[rows][:, cols] > 0


def reference_walk(reference, segmenter, tube) -> np.ndarray:
    """bool [k, j, i] labelmap of the reference walk through `tube` (slices read through `segmenter`)."""
    volume = segmenter.volume
    axis = slice_axis_for(volume, "axial")
    seed = SliceRef(axis, tube.seed_index)
    labelmap = np.zeros(volume.array.shape[:3], dtype=bool)
    image = segmenter.slice_image(seed)
    height, width = image.shape[:2]
    box = ras_box_to_slice_box(volume, seed, tube.seed_box_ras).astype(np.float64)
    box_256 = box * np.array([SIZE / width, SIZE / height] * 2)
    seed_mask = reference.predict_array(image, box_256)
    insert_slice(labelmap, seed, _to_image_size(seed_mask, height, width), geometry=volume)
    for direction, end in ((+1, slice_count(volume, axis) - 1), (-1, 0)):
        previous = seed_mask
        for index in range(tube.seed_index + direction, end + direction, direction):
            box_256 = _box_256(previous)
            if box_256 is None:
                break
            ref = SliceRef(axis, index)
            mask = reference.predict_array(segmenter.slice_image(ref), box_256)
            if not mask.any():
                break
            insert_slice(labelmap, ref, _to_image_size(mask, height, width), geometry=volume)
            previous = mask
    return labelmap
