"""A lasso bounds the mask on its slice, the way a user means it.

A positive lasso says "the structure is in here": what the model finds outside every positive
lasso is dropped, unless another positive prompt (a click, a scribble vertex, a box corner) lies
outside them, where the user says the structure goes on. A negative lasso says "nothing in here":
what the model finds inside it is dropped. The model still reads the lassos as prompts (their
bounding box and dense channels, `prompt_encoding`); these bounds only remove what contradicts them.
A pixel counts as inside a positive lasso when its centre is inside the polygon or the outline passes
within one pixel of it (a loop drawn along an edge keeps the edge); inside a negative lasso only when
its centre is inside.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .slice_prompt import SlicePrompt


def polygon_pixels(vertices: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels whose centre (x, y) = (column, row) lies inside the closed polygon
    (even-odd rule, one scanline per row)."""
    inside = np.zeros((height, width), dtype=bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    rows = np.arange(height, dtype=np.float64)
    # an edge crosses row y when y lies in [min, max) of its ends: each vertex counts once
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    crosses = (rows[:, None] >= low[None]) & (rows[:, None] < high[None])  # (H, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (rows[:, None] - y0[None]) / (y1 - y0)[None]
    at_x = np.where(crosses, x0[None] + t * (x1 - x0)[None], np.inf)
    at_x.sort(axis=1)
    columns = np.arange(width, dtype=np.float64)
    for row in np.flatnonzero(crosses.any(axis=1)):
        # inside where an odd number of crossings lie at or left of the pixel centre
        inside[row] = np.searchsorted(at_x[row], columns, side="right") % 2 == 1
    return inside


def _positive_prompts_inside(prompt: SlicePrompt, region: np.ndarray) -> bool:
    height, width = region.shape
    xy = [point for point, label in zip(prompt.points, prompt.labels) if label == 1]
    xy += [vertex for stroke in prompt.scribbles if stroke.positive for vertex in stroke.vertices]
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.pixel_box()
        xy += [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
    for x, y in xy:
        column, row = int(np.clip(round(x), 0, width - 1)), int(np.clip(round(y), 0, height - 1))
        if not region[row, column]:
            return False
    return True


def bound_by_lassos(masks: np.ndarray, prompt: SlicePrompt) -> np.ndarray:
    """`masks` (..., H, W) with what the prompt's lassos rule out removed (module docstring)."""
    if not prompt.lassos:
        return masks
    height, width = masks.shape[-2:]
    keep = np.ones((height, width), dtype=bool)
    positives = [stroke for stroke in prompt.lassos if stroke.positive]
    if positives:
        region = np.zeros((height, width), dtype=bool)
        for stroke in positives:
            region |= polygon_pixels(stroke.array, height, width)
        region = ndimage.binary_dilation(region, structure=np.ones((3, 3), bool))  # and its 8-neighbours
        if _positive_prompts_inside(prompt, region):
            keep &= region
    for stroke in prompt.lassos:
        if not stroke.positive:
            keep &= ~polygon_pixels(stroke.array, height, width)
    return masks & keep
