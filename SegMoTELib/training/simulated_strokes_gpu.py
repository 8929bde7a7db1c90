"""Scribbles and lassos a simulated user draws, on batches of masks on the training device.

Masks are (B, H, W) bool at the model's input size; strokes come back as (B, V, 2) vertices in
model-input pixels, the form `prompt_encoding.encode_strokes` takes (so training encodes exactly as
inference does). Randomness comes from a torch.Generator on the device.

* `region_scribbles` -- a stroke inside a region: `V` pixels drawn among the deeper half of one
  connected part of the region (grown geodesically from a deep seed pixel, so the stroke never
  joins two separate leaks across the object), joined along the part's principal axis, or around
  its centroid where the part is hollow (a ring, a C: along it, not across its hole): a line along
  a structure, or along an error, as a user draws it;
* `contour_scribbles` -- a stroke along the inside of the boundary (pixels 2-4 erosions deep, in
  an angular window of half a turn around the centroid, joined by angle): users also trace edges;
* `perturbed_lassos` -- a loop around a region: the farthest region pixel in each of `V` angular
  sectors around its centroid (a star-shaped hull), pushed out by a random margin and moved
  radially by random noise, clipped to the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..modeling.stroke_raster import depth

GROWTH_STEPS = 96  # geodesic growth from the seed pixel: parts up to this many pixels across are whole


def sample_pixels(weights: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` pixels (x, y) per row of (B, H, W) weights (with replacement); rows of zeros give zeros."""
    batch, height, width = weights.shape
    flat = weights.reshape(batch, -1).float()
    valid = flat.sum(dim=1) > 0
    flat = torch.where(valid[:, None], flat, torch.ones_like(flat))
    index = torch.multinomial(flat, count, replacement=True, generator=generator)
    points = torch.stack([index % width, index // width], dim=-1).float()
    return points * valid[:, None, None], valid


def connected_part(regions: torch.Tensor, seeds: torch.Tensor, steps: int = GROWTH_STEPS) -> torch.Tensor:
    """The part of each region reachable from its seed pixel (x, y) within `steps` 8-connected moves."""
    batch, height, width = regions.shape
    grown = torch.zeros_like(regions, dtype=torch.float32)
    rows = torch.arange(batch, device=regions.device)
    grown[rows, seeds[:, 1].long().clamp(0, height - 1), seeds[:, 0].long().clamp(0, width - 1)] = 1.0
    inside = regions.float()
    grown = grown * inside
    for _ in range(steps):
        grown = F.max_pool2d(grown[:, None], 3, stride=1, padding=1)[:, 0] * inside
    return grown > 0


def _principal_order(points: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Points (B, V, 2) sorted along the principal axis of their region (B, H, W)."""
    batch, height, width = regions.shape
    ys = torch.arange(height, device=regions.device, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(width, device=regions.device, dtype=torch.float32).view(1, 1, -1)
    weight = regions.float()
    count = weight.sum(dim=(1, 2)).clamp(min=1)
    cx, cy = (weight * xs).sum(dim=(1, 2)) / count, (weight * ys).sum(dim=(1, 2)) / count
    dx, dy = xs - cx.view(-1, 1, 1), ys - cy.view(-1, 1, 1)
    cxx, cyy, cxy = (weight * dx * dx).sum(dim=(1, 2)), (weight * dy * dy).sum(dim=(1, 2)), (weight * dx * dy).sum(dim=(1, 2))
    angle = 0.5 * torch.atan2(2 * cxy, cxx - cyy)
    along = points[..., 0] * torch.cos(angle)[:, None] + points[..., 1] * torch.sin(angle)[:, None]
    order = along.argsort(dim=1)
    return points.gather(1, order[..., None].expand(-1, -1, 2))


def region_scribbles(regions: torch.Tensor, generator: torch.Generator, vertices: int,
                     depth_fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(strokes (B, V, 2), valid (B,)): a stroke inside one connected part of each region."""
    depths = depth(regions)
    deepest = depths.flatten(1).max(dim=1).values.view(-1, 1, 1)
    seeds, valid = sample_pixels((depths >= 0.7 * deepest) & regions, 1, generator)
    part = connected_part(regions, seeds[:, 0])
    part_depths = depth(part)
    part_deepest = part_depths.flatten(1).max(dim=1).values.view(-1, 1, 1)
    # 3 candidates per vertex, put in stroke order, then every third: vertices spread along the part
    candidates, _ = sample_pixels((part_depths >= depth_fraction * part_deepest) & part, 3 * vertices, generator)
    spread = torch.linspace(0, 3 * vertices - 1, vertices, device=regions.device).round().long()
    return _stroke_order(candidates, part)[:, spread], valid


def _stroke_order(points: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Points (B, V, 2) in stroke order: along the principal axis of their region, or, where the
    region's centroid lies outside it (a ring, a C), by angle around the centroid, starting after the
    widest angular gap, so the stroke goes along the region instead of across its hole."""
    batch, height, width = regions.shape
    ys = torch.arange(height, device=regions.device, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(width, device=regions.device, dtype=torch.float32).view(1, 1, -1)
    weight = regions.float()
    count = weight.sum(dim=(1, 2)).clamp(min=1)
    cx, cy = (weight * xs).sum(dim=(1, 2)) / count, (weight * ys).sum(dim=(1, 2)) / count
    rows = torch.arange(batch, device=regions.device)
    hollow = ~regions[rows, cy.round().long().clamp(0, height - 1), cx.round().long().clamp(0, width - 1)]
    angles = torch.atan2(points[..., 1] - cy[:, None], points[..., 0] - cx[:, None])
    by_angle = angles.argsort(dim=1)
    sorted_angles = angles.gather(1, by_angle)
    gaps = torch.remainder(torch.roll(sorted_angles, -1, dims=1) - sorted_angles, 2 * math.pi)  # to the next one
    first = (gaps.argmax(dim=1) + 1) % points.shape[1]   # the stroke starts after the widest gap
    shift = (torch.arange(points.shape[1], device=points.device)[None] + first[:, None]) % points.shape[1]
    around = points.gather(1, by_angle.gather(1, shift)[..., None].expand(-1, -1, 2))
    return torch.where(hollow.view(-1, 1, 1), around, _principal_order(points, regions))


def contour_scribbles(masks: torch.Tensor, generator: torch.Generator, vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(strokes (B, V, 2), valid (B,)): a stroke along the inside of each mask's boundary."""
    batch, height, width = masks.shape
    depths = depth(masks)
    band = masks & (depths >= 2) & (depths <= 4)
    band = torch.where(band.flatten(1).any(dim=1).view(-1, 1, 1), band, masks)  # thin masks: all of it
    ys = torch.arange(height, device=masks.device, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(width, device=masks.device, dtype=torch.float32).view(1, 1, -1)
    weight = masks.float()
    count = weight.sum(dim=(1, 2)).clamp(min=1)
    cx, cy = (weight * xs).sum(dim=(1, 2)) / count, (weight * ys).sum(dim=(1, 2)) / count
    angles = torch.atan2(ys - cy.view(-1, 1, 1), xs - cx.view(-1, 1, 1))       # (B, H, W)
    start = (torch.rand(batch, generator=generator, device=masks.device) * 2 - 1) * math.pi
    offset = torch.remainder(angles - start.view(-1, 1, 1), 2 * math.pi)        # 0 .. 2π from the window's start
    window = band & (offset <= math.pi)
    window = torch.where(window.flatten(1).any(dim=1).view(-1, 1, 1), window, band)
    points, valid = sample_pixels(window, vertices, generator)
    point_offset = torch.remainder(torch.atan2(points[..., 1] - cy[:, None], points[..., 0] - cx[:, None])
                                   - start[:, None], 2 * math.pi)
    order = point_offset.argsort(dim=1)
    return points.gather(1, order[..., None].expand(-1, -1, 2)), valid


def perturbed_lassos(regions: torch.Tensor, generator: torch.Generator, vertices: int, margin: tuple[float, float],
                     jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loops (B, V, 2), valid (B,)): a loop around each region. `margin` (low, high): the margin
    drawn uniformly in that range, as a fraction of the region's equivalent radius (+ 1 pixel);
    `jitter`: radial noise, as a fraction of each vertex's radius."""
    batch, height, width = regions.shape
    device = regions.device
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, -1, 1).expand(batch, height, width)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, -1).expand(batch, height, width)
    weight = regions.float()
    count = weight.sum(dim=(1, 2))
    valid = count > 0
    count = count.clamp(min=1)
    cx, cy = (weight * xs).sum(dim=(1, 2)) / count, (weight * ys).sum(dim=(1, 2)) / count
    dx, dy = xs - cx.view(-1, 1, 1), ys - cy.view(-1, 1, 1)
    radius = torch.sqrt(dx * dx + dy * dy) + 0.71  # to the pixel's far corner
    sector = ((torch.atan2(dy, dx) + math.pi) / (2 * math.pi) * vertices).long().clamp(0, vertices - 1)
    reach = torch.zeros(batch, vertices, device=device)
    reach = reach.scatter_reduce(1, sector.flatten(1), (radius * weight).flatten(1), reduce="amax")
    reach = torch.maximum(reach, torch.roll(reach, 1, dims=1))   # no notch between two reaching sectors
    equivalent = torch.sqrt(count / math.pi)
    low, high = margin
    grow = 1.0 + (low + (high - low) * torch.rand(batch, 1, generator=generator, device=device)) * equivalent[:, None]
    noise = 1.0 + jitter * (torch.rand(batch, vertices, generator=generator, device=device) * 2 - 1)
    radii = (reach + grow) * noise / math.cos(math.pi / vertices)
    centres = -math.pi + (torch.arange(vertices, device=device, dtype=torch.float32) + 0.5) * 2 * math.pi / vertices
    loop = torch.stack([cx[:, None] + radii * torch.cos(centres), cy[:, None] + radii * torch.sin(centres)], dim=-1)
    limit = torch.tensor([width - 1.0, height - 1.0], device=device)
    return torch.minimum(loop.clamp(min=0), limit), valid
