"""Prompt simulation on batches of masks, on the training device.

The numpy functions of `simulated_user` cost about a millisecond per mask; interactive training draws a
click from the model's own error several times per target and step, which on the CPU would take
longer than the decoder itself on a GPU. These are their batched torch counterparts, with the same
conventions: masks (B, H, W) bool, points (x, y) in pixels, boxes (x0, y0, x1, y1) inclusive.

Depth (distance to the nearest pixel outside a region, the image border counting as outside) is
the chessboard distance from repeated 3×3 erosions here (`modeling.stroke_raster.depth`, shared
with the stroke encoding), not the Euclidean one of `simulated_user`: it
only decides which pixels count as "deep", where both agree to within a pixel or two.
"""

from __future__ import annotations

import torch

from ..modeling.stroke_raster import deepest_pixels, depth  # noqa: F401  (also this module's API)


def tight_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes (B, 4) float, non_empty (B,) bool): each mask's tight box; empty masks give zeros."""
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    height, width = masks.shape[1:]
    non_empty = rows.any(dim=1)
    y0 = rows.float().argmax(dim=1)
    y1 = height - 1 - rows.flip(1).float().argmax(dim=1)
    x0 = cols.float().argmax(dim=1)
    x1 = width - 1 - cols.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float() * non_empty[:, None]
    return boxes, non_empty


def perturbed_boxes(boxes: torch.Tensor, side: int, jitter: float, grow: torch.Tensor | float,
                    generator: torch.Generator) -> torch.Tensor:
    """Boxes grown by `grow` × side on every edge, then each coordinate moved by up to ±jitter × side,
    clipped to the image and re-ordered."""
    grow = torch.as_tensor(grow, dtype=boxes.dtype, device=boxes.device).reshape(-1, 1)
    delta = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=boxes.device) * grow * side
    noise = (torch.rand(boxes.shape, generator=generator, device=boxes.device) * 2 - 1) * jitter * side
    moved = (boxes + delta + noise).clamp(0, side - 1)
    xs, ys = moved[:, 0::2].sort(dim=1).values, moved[:, 1::2].sort(dim=1).values
    return torch.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], dim=1)


def _sample_pixels(weights: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One pixel (x, y) per row of (B, H, W) non-negative weights; rows of zeros give (0, 0), False."""
    batch, height, width = weights.shape
    flat = weights.reshape(batch, -1).float()
    valid = flat.sum(dim=1) > 0
    flat = torch.where(valid[:, None], flat, torch.ones_like(flat))
    index = torch.multinomial(flat, 1, generator=generator)[:, 0]
    points = torch.stack([index % width, index // width], dim=1).float()
    return points * valid[:, None], valid


def deep_pixels(regions: torch.Tensor, generator: torch.Generator, depth_fraction: float = 0.5):
    """A pixel drawn uniformly among each region's pixels at least `depth_fraction` of its deepest."""
    depths = depth(regions)
    deepest = depths.flatten(1).max(dim=1).values.reshape(-1, 1, 1)
    return _sample_pixels((depths >= depth_fraction * deepest) & regions, generator)


def first_clicks(masks: torch.Tensor, generator: torch.Generator, fraction: float = 0.5):
    """A positive click per mask drawn from the `fraction` of its pixels nearest its centroid."""
    batch, height, width = masks.shape
    ys = torch.arange(height, device=masks.device).view(1, -1, 1).float()
    xs = torch.arange(width, device=masks.device).view(1, 1, -1).float()
    weight = masks.float()
    count = weight.sum(dim=(1, 2)).clamp(min=1)
    cy = (weight * ys).sum(dim=(1, 2)) / count
    cx = (weight * xs).sum(dim=(1, 2)) / count
    distance = (ys - cy.view(-1, 1, 1)) ** 2 + (xs - cx.view(-1, 1, 1)) ** 2
    distance = torch.where(masks, distance, torch.full_like(distance, float("inf")))
    ordered = distance.flatten(1).sort(dim=1).values
    keep = (count * fraction).ceil().long().clamp(min=1) - 1
    limit = ordered.gather(1, keep[:, None]).view(-1, 1, 1)
    return _sample_pixels(masks & (distance <= limit), generator)


def error_clicks(targets: torch.Tensor, predicted: torch.Tensor, generator: torch.Generator):
    """A corrective click per mask, as `simulated_user.refinement_click`: in the larger of the two error
    regions (false negatives → label 1, false positives → label 0), among its deep pixels.

    Returns (points (B, 2), labels (B,) long, has_error (B,) bool)."""
    missed, extra = targets & ~predicted, predicted & ~targets
    positive = missed.sum(dim=(1, 2)) >= extra.sum(dim=(1, 2))
    regions = torch.where(positive.view(-1, 1, 1), missed, extra)
    points, valid = deep_pixels(regions, generator)
    return points, positive.long(), valid
