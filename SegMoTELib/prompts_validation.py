"""Checking user prompts (points, labels, boxes, mask inputs) before they reach torch."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def _finite_array(value, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected numbers, got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return array


def _check_inside(xy: np.ndarray, height: int, width: int, name: str) -> None:
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width - 1) | (xy[:, 1] < 0) | (xy[:, 1] > height - 1)
    if np.any(outside):
        bad = xy[np.argmax(outside)]
        raise InputError(
            f"{name}: ({bad[0]:g}, {bad[1]:g}) is outside the image (x in 0..{width - 1}, y in 0..{height - 1})"
        )


def validate_points(points, labels, height: int, width: int):
    """(N, 2) pixel x, y and (N,) labels in {0, 1}, or (None, None)."""
    if points is None:
        if labels is not None:
            raise InputError("labels: labels were given without points")
        return None, None
    xy = _finite_array(points, "points")
    if xy.ndim == 1 and xy.shape == (2,):
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise InputError(f"points: expected shape (N, 2) of x, y pixel coordinates, got {np.shape(points)}")
    if labels is None:
        labels = np.ones(len(xy), dtype=np.int64)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(xy):
        raise InputError(f"labels: {len(labels)} labels for {len(xy)} points")
    if not np.all(np.isin(labels, (0, 1))):
        raise InputError(f"labels: each label must be 1 (positive) or 0 (negative), got {labels.tolist()}")
    _check_inside(xy, height, width, "points")
    return xy, labels.astype(np.int64)


def validate_box(box, height: int, width: int):
    """(B, 4) boxes x0, y0, x1, y1 and whether a batch was given, or (None, False)."""
    if box is None:
        return None, False
    boxes = _finite_array(box, "box")
    batched = boxes.ndim == 2
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise InputError(f"box: expected (4,) x0, y0, x1, y1 or (B, 4), got shape {np.shape(box)}")
    for row in boxes:
        if row[2] < row[0] or row[3] < row[1]:
            raise InputError(f"box: {row.tolist()} is inverted (need x0 <= x1 and y0 <= y1)")
        if row[2] == row[0] or row[3] == row[1]:
            raise InputError(f"box: {row.tolist()} has zero area")
    _check_inside(boxes.reshape(-1, 2), height, width, "box corner")
    return boxes, batched


def validate_mask_input(mask_input, batch: int, size: int):
    """(B, 1, size, size) float32 logits, or None."""
    if mask_input is None:
        return None
    logits = _finite_array(mask_input, "mask_input").astype(np.float32)
    if logits.shape == (size, size):
        logits = logits[None]
    if logits.ndim == 3 and logits.shape[1:] == (size, size):
        logits = logits[:1][None] if logits.shape[0] == 1 else logits[:, None]
    if logits.ndim != 4 or logits.shape[1:] != (1, size, size):
        raise InputError(
            f"mask_input: expected low-res logits of shape ({size}, {size}) or (1, {size}, {size}), got {np.shape(mask_input)}"
        )
    if logits.shape[0] == 1 and batch > 1:
        logits = np.repeat(logits, batch, axis=0)
    if logits.shape[0] != batch:
        raise InputError(f"mask_input: {logits.shape[0]} masks for {batch} prompts")
    return logits
