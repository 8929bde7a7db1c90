"""Scribbles and lassos a simulated user draws on one mask (numpy; deterministic, for evaluation).

The evaluation protocol (MODEL_CARD.md, `segmote evaluate --prompt scribble|lasso`):
  * `centre_line` -- a positive scribble along the structure, inside it: on the mask's largest
    connected part (8-connectivity), the minimal path between its two far ends when a step costs
    its length over the local depth (so it keeps to the middle: along an organ, half way around a
    ring), from 10 % to 90 % of its length, `vertices` points on it (a user drawing along the middle
    of a structure; one stroke on one part, as one click lands in one part);
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

LINE_VERTICES = 7
LASSO_VERTICES = 24


def centre_line(mask, vertices: int = LINE_VERTICES) -> np.ndarray:
    """(V, 2) pixel x, y: a stroke along the middle of the mask's largest part, inside it (fewer
    vertices for a small part)."""
    region, size = _largest_component(_as_nonempty_mask(mask, "mask"))
    if size < 3:
        return np.array([_deepest_pixel(region)], dtype=np.float64)
    path = _medial_path(region)
    if len(path) < 2:
        return np.array([_deepest_pixel(region)], dtype=np.float64)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.linspace(0.1, 0.9, vertices) * along[-1]
    chosen = np.unique(np.searchsorted(along, targets).clip(0, len(path) - 1))
    return path[chosen].astype(np.float64)


def _medial_path(region: np.ndarray) -> np.ndarray:
    """(P, 2) x, y: the longest of the region's minimal paths when a step costs its length over the
    local depth, so the path keeps to the middle (between two far ends: along an organ, around a
    ring). Dijkstra on the 8-connected pixel graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    depth = depth_map(region)
    ys, xs = np.nonzero(region)
    index = -np.ones(region.shape, dtype=np.int64)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, costs = [], [], []
    height, width = region.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        y2, x2 = ys + dy, xs + dx
        inside = (y2 >= 0) & (y2 < height) & (x2 >= 0) & (x2 < width)
        inside[inside] &= region[y2[inside], x2[inside]]
        a, b = index[ys[inside], xs[inside]], index[y2[inside], x2[inside]]
        cost = np.hypot(dy, dx) * 2.0 / (depth[ys[inside], xs[inside]] + depth[y2[inside], x2[inside]])
        rows.append(a), cols.append(b), costs.append(cost)
    graph = coo_matrix((np.concatenate(costs), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(len(ys), len(ys))).tocsr()
    start = int(np.argmax(depth[ys, xs]))
    first = dijkstra(graph, directed=False, indices=start)
    end_a = int(np.argmax(np.where(np.isfinite(first), first, -1)))
    second, predecessors = dijkstra(graph, directed=False, indices=end_a, return_predecessors=True)
    node = int(np.argmax(np.where(np.isfinite(second), second, -1)))
    path = [node]
    while predecessors[node] >= 0:
        node = int(predecessors[node])
        path.append(node)
    return np.stack([xs[path], ys[path]], axis=1)


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
