"""Scribbles and lassos a simulated user draws on one mask (numpy; deterministic, for evaluation).

The evaluation protocol (MODEL_CARD.md, `segmote evaluate --prompt scribble|lasso`):
  * `centre_line` -- a positive scribble along the structure: the principal axis of the mask's
    largest connected part (8-connectivity) is cut into `vertices` bands between 10 % and 90 % of
    its extent, and the stroke joins the deepest pixel of each band (a user drawing along the
    middle of an organ; one stroke on one part, as one click lands in one part);
  * `correction_scribble` -- after a prediction, the centre line of the largest connected error
    region (8-connectivity; false negatives → positive, false positives → negative), as
    `simulated_user.deepest_error_click` chooses its click;
  * `outline_lasso` -- a loop around the mask: per angular sector around the centroid, the
    farthest mask pixel, pushed out by a margin of 2 px + 10 % of the mask's equivalent radius
    (a star-shaped hull: a user's loop goes around a concave structure, not into it).
Masks are indexed [y, x]; vertices are pixel (x, y).
"""

from __future__ import annotations

import numpy as np

from .simulated_user import _as_nonempty_mask, _deepest_pixel, _largest_component, depth_map, error_regions

LINE_VERTICES = 5
LASSO_VERTICES = 24


def centre_line(mask, vertices: int = LINE_VERTICES) -> np.ndarray:
    """(V, 2) pixel x, y: a stroke along the middle of the mask's largest part (fewer vertices for a
    small one)."""
    region, _ = _largest_component(_as_nonempty_mask(mask, "mask"))
    ys, xs = np.nonzero(region)
    if len(xs) < 3:
        return np.array([_deepest_pixel(region)], dtype=np.float64)
    coordinates = np.stack([xs, ys], axis=1).astype(np.float64)
    centred = coordinates - coordinates.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    along = centred @ axes[0]
    low, high = np.quantile(along, 0.1), np.quantile(along, 0.9)
    depth = depth_map(region)[ys, xs]
    edges = np.linspace(low, high, vertices + 1)
    line = []
    for start, stop in zip(edges[:-1], edges[1:]):
        band = (along >= start) & (along <= stop)
        if band.any():
            chosen = np.flatnonzero(band)[int(np.argmax(depth[band]))]
            line.append(coordinates[chosen])
    if not line:
        return np.array([_deepest_pixel(region)], dtype=np.float64)
    return np.asarray(line)


def correction_scribble(gt_mask, pred_mask, vertices: int = LINE_VERTICES):
    """(vertices (V, 2), positive) in the largest connected error region, or None with no error."""
    false_negative, false_positive = error_regions(gt_mask, pred_mask)
    missed, missed_size = _largest_component(false_negative)
    extra, extra_size = _largest_component(false_positive)
    if missed_size == 0 and extra_size == 0:
        return None
    if missed_size >= extra_size:
        return centre_line(missed, vertices), True
    return centre_line(extra, vertices), False


def outline_lasso(mask, vertices: int = LASSO_VERTICES, margin: float | None = None) -> np.ndarray:
    """(V, 2) pixel x, y: a closed loop around the mask (star-shaped hull pushed out by `margin`
    pixels; default 2 + 10 % of the equivalent radius), clipped to the image."""
    region = _as_nonempty_mask(mask, "mask")
    height, width = region.shape
    ys, xs = np.nonzero(region)
    cx, cy = xs.mean(), ys.mean()
    if margin is None:
        margin = 2.0 + 0.1 * np.sqrt(len(xs) / np.pi)
    # every pixel's four corners count, so a one-pixel mask still has a loop around it
    corner_x = np.concatenate([xs - 0.5, xs + 0.5, xs - 0.5, xs + 0.5])
    corner_y = np.concatenate([ys - 0.5, ys - 0.5, ys + 0.5, ys + 0.5])
    angles = np.arctan2(corner_y - cy, corner_x - cx)
    radii = np.hypot(corner_x - cx, corner_y - cy)
    sector = ((angles + np.pi) / (2 * np.pi) * vertices).astype(int) % vertices
    reach = np.zeros(vertices)
    np.maximum.at(reach, sector, radii)
    reach = np.maximum(reach, np.roll(reach, 1))  # a sector between two reaching ones is not a notch
    centres = -np.pi + (np.arange(vertices) + 0.5) * 2 * np.pi / vertices
    # the sector's corner radius reaches the far corner of its arc: divide by cos(half the sector)
    radius = (reach + margin) / np.cos(np.pi / vertices)
    loop = np.stack([cx + radius * np.cos(centres), cy + radius * np.sin(centres)], axis=1)
    return np.clip(loop, [0.0, 0.0], [width - 1.0, height - 1.0])
