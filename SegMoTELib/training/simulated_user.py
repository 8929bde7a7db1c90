"""Prompt simulation for training and evaluation (DESIGN §2), on numpy masks.

Conventions shared with the predictor: a mask is a 2D array indexed ``[y, x]`` (row, column);
points are pixel ``(x, y)``; boxes are ``(x0, y0, x1, y1)`` with inclusive pixel corners; a click
label is 1 (positive, "this is the object") or 0 (negative, "this is not").

Training (random, take an ``np.random.Generator`` or a seed):
  * `jittered_box` -- the tight box with each coordinate moved by up to ±1 % of the image side;
  * `first_click` -- a positive click drawn uniformly from the half of the foreground pixels that
    lie nearest to the mask centroid (`central_half` is that region);
  * `refinement_click` -- a click in the larger error region of a prediction (see its docstring).
Evaluation (deterministic):
  * `central_click` -- the foreground pixel farthest from the mask boundary;
  * `deepest_error_click` -- the deepest pixel of the largest connected error region.

"Depth" everywhere is the Euclidean distance to the nearest pixel outside the region, where the
image border counts as outside (so a click is never placed on the edge of the picture just
because a structure touches it). Masks are 256² in training; each call costs about a millisecond.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..errors import InputError

# 8-connectivity: diagonal neighbours belong to the same region (as in curation's C_N count).
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _as_mask(mask, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2D mask (H, W), got shape {array.shape}")
    return array.astype(bool, copy=False)


def _as_nonempty_mask(mask, name: str) -> np.ndarray:
    array = _as_mask(mask, name)
    if not array.any():
        raise InputError(f"{name}: the mask is empty; a prompt needs at least one foreground pixel")
    return array


def _as_mask_pair(gt_mask, pred_mask) -> tuple[np.ndarray, np.ndarray]:
    gt = _as_mask(gt_mask, "gt_mask")
    pred = _as_mask(pred_mask, "pred_mask")
    if gt.shape != pred.shape:
        raise InputError(f"pred_mask: shape {pred.shape} differs from gt_mask shape {gt.shape}")
    return gt, pred


def _rng(rng) -> np.random.Generator:
    # default_rng returns a Generator unchanged and seeds a new one from an int or None.
    return np.random.default_rng(rng)


def depth_map(region: np.ndarray) -> np.ndarray:
    """Distance of each region pixel to the nearest outside pixel (image border = outside)."""
    padded = np.pad(np.asarray(region, dtype=bool), 1)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def tight_box(mask) -> tuple[float, float, float, float]:
    """The smallest box (x0, y0, x1, y1), inclusive pixel corners, holding every mask pixel."""
    array = _as_nonempty_mask(mask, "mask")
    rows = np.flatnonzero(array.any(axis=1))
    cols = np.flatnonzero(array.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def jittered_box(mask, rng=None, jitter: float = 0.01) -> tuple[float, float, float, float]:
    """The tight box with each coordinate shifted uniformly by up to ±`jitter` × the image side.

    x coordinates use the image width, y coordinates the height. Results are clipped to the image
    and re-ordered so that x0 <= x1 and y0 <= y1 (re-ordering keeps every corner within the jitter
    bound of a tight corner).
    """
    if not 0.0 <= jitter < 0.5:
        raise InputError(f"jitter: expected a fraction of the image side in [0, 0.5), got {jitter}")
    array = _as_nonempty_mask(mask, "mask")
    height, width = array.shape
    generator = _rng(rng)
    x0, y0, x1, y1 = tight_box(array)
    dx = generator.uniform(-jitter * width, jitter * width, size=2)
    dy = generator.uniform(-jitter * height, jitter * height, size=2)
    xs = np.clip([x0 + dx[0], x1 + dx[1]], 0.0, width - 1.0)
    ys = np.clip([y0 + dy[0], y1 + dy[1]], 0.0, height - 1.0)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _centroid_distances(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    squared = (ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2
    return ys, xs, squared


def central_half(mask, fraction: float = 0.5) -> np.ndarray:
    """Foreground pixels among the `fraction` nearest to the mask centroid (ties included)."""
    array = _as_nonempty_mask(mask, "mask")
    ys, xs, squared = _centroid_distances(array)
    keep = max(1, math.ceil(fraction * squared.size))
    limit = np.partition(squared, keep - 1)[keep - 1]
    region = np.zeros_like(array)
    inside = squared <= limit
    region[ys[inside], xs[inside]] = True
    return region


def first_click(mask, rng=None, fraction: float = 0.5) -> tuple[int, int]:
    """A positive click (x, y) drawn uniformly from the `fraction` of foreground pixels nearest
    the mask centroid: near the middle of the object, but not always the same pixel."""
    array = _as_nonempty_mask(mask, "mask")
    ys, xs, squared = _centroid_distances(array)
    keep = max(1, math.ceil(fraction * squared.size))
    nearest = np.argpartition(squared, keep - 1)[:keep]
    chosen = nearest[_rng(rng).integers(keep)]
    return int(xs[chosen]), int(ys[chosen])


def error_regions(gt_mask, pred_mask) -> tuple[np.ndarray, np.ndarray]:
    """(false negatives, false positives): object pixels missed, background pixels taken."""
    gt, pred = _as_mask_pair(gt_mask, pred_mask)
    return gt & ~pred, pred & ~gt


def refinement_click(gt_mask, pred_mask, rng=None, depth_fraction: float = 0.5):
    """A corrective click (x, y, label) for a prediction, or None when it has no error.

    The click type follows the larger error: if there are at least as many false-negative pixels
    (object missed) as false-positive pixels (background taken), the click is positive (label 1)
    and lies in the false negatives; otherwise it is negative (label 0) and lies in the false
    positives. Within that error region the click is drawn uniformly among its "deep" pixels:
    those whose distance to the region's boundary is at least `depth_fraction` × the region's
    largest distance, so clicks land well inside thick error blobs rather than on thin slivers
    along the object's edge (a deepest pixel always qualifies, so the set is never empty).
    """
    false_negative, false_positive = error_regions(gt_mask, pred_mask)
    missed, extra = int(false_negative.sum()), int(false_positive.sum())
    if missed == 0 and extra == 0:
        return None
    positive = missed >= extra
    region = false_negative if positive else false_positive
    depth = depth_map(region)
    ys, xs = np.nonzero(depth >= depth_fraction * depth.max())
    chosen = _rng(rng).integers(ys.size)
    return int(xs[chosen]), int(ys[chosen]), 1 if positive else 0


def _deepest_pixel(region: np.ndarray) -> tuple[int, int]:
    # np.argmax takes the first maximum in raster order: deterministic on ties.
    y, x = np.unravel_index(int(np.argmax(depth_map(region))), region.shape)
    return int(x), int(y)


def central_click(mask) -> tuple[int, int]:
    """The foreground pixel (x, y) farthest from the mask boundary (first one in raster order on
    ties): the deterministic first click of evaluation."""
    return _deepest_pixel(_as_nonempty_mask(mask, "mask"))


def _largest_component(region: np.ndarray) -> tuple[np.ndarray, int]:
    labels, count = ndimage.label(region, structure=_EIGHT_CONNECTED)
    if count == 0:
        return region, 0
    sizes = np.bincount(labels.ravel())[1:]
    best = int(np.argmax(sizes))  # first (lowest label) on ties
    return labels == best + 1, int(sizes[best])


def deepest_error_click(gt_mask, pred_mask):
    """The deterministic corrective click (x, y, label) of evaluation, or None with no error.

    False negatives and false positives are split into connected regions (8-connectivity); the
    largest region by pixel count wins (a false-negative one on ties) and the click is its deepest
    pixel; label 1 if that region is missed object (false negative), 0 if it is extra background.
    """
    false_negative, false_positive = error_regions(gt_mask, pred_mask)
    missed_region, missed_size = _largest_component(false_negative)
    extra_region, extra_size = _largest_component(false_positive)
    if missed_size == 0 and extra_size == 0:
        return None
    if missed_size >= extra_size:
        return (*_deepest_pixel(missed_region), 1)
    return (*_deepest_pixel(extra_region), 0)
