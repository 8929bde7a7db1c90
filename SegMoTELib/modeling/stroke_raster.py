"""Strokes (scribbles and lassos) on the model's grids, batched in torch: the same functions serve
inference (`prompt_encoding`, one prompt) and training (`training.stroke_simulation`, a batch).

Vertices are (x, y) in model-input pixels (SAM's point convention: the pixel's centre is +0.5);
a batch of polylines is (B, V, 2), shorter ones padded by repeating their last vertex (a
zero-length segment draws nothing new and crosses no scan line, so padding changes no result).
Maps are drawn on the low-res grid (B, L, L) whose cell u covers input pixels [u·r, (u+1)·r),
r = input size / L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_RASTER_VERTICES = 128   # longer strokes are resampled first (a 256² grid needs no finer polyline)


def _low_res(vertices: torch.Tensor, input_size: int, low_res: int) -> torch.Tensor:
    return (vertices + 0.5) * (low_res / input_size)


def _cell_centres(low_res: int, device) -> torch.Tensor:
    centres = torch.arange(low_res, device=device, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xs, ys], dim=-1)  # (L, L, 2)


def resample_polylines(vertices: torch.Tensor, count: int, inset: bool = True) -> torch.Tensor:
    """`count` points per polyline at equal arc-length steps: (B, V, 2) → (B, count, 2).

    With `inset` the points sit at fractions (i + ½) / count of the length (never on an end, where a
    user's stroke is least deliberate); without, at i / (count − 1), ends included. A polyline of
    one vertex (or of zero length) gives that vertex `count` times."""
    batch, total, _ = vertices.shape
    if total == 1:
        return vertices.expand(batch, count, 2).clone()
    segments = vertices[:, 1:] - vertices[:, :-1]
    lengths = segments.norm(dim=-1)                                   # (B, V-1)
    cumulative = torch.cat([torch.zeros_like(lengths[:, :1]), lengths.cumsum(dim=1)], dim=1)  # (B, V)
    if inset:
        fractions = (torch.arange(count, device=vertices.device, dtype=vertices.dtype) + 0.5) / count
    else:
        fractions = torch.linspace(0.0, 1.0, count, device=vertices.device, dtype=vertices.dtype)
    targets = fractions[None] * cumulative[:, -1:]                    # (B, count)
    index = torch.searchsorted(cumulative.contiguous(), targets.contiguous(), right=True).clamp(1, total - 1) - 1
    start = cumulative.gather(1, index)
    length = lengths.gather(1, index).clamp(min=1e-9)
    t = ((targets - start) / length).clamp(0.0, 1.0)[..., None]
    first = vertices.gather(1, index[..., None].expand(-1, -1, 2))
    step = segments.gather(1, index[..., None].expand(-1, -1, 2))
    return first + t * step


def limit_vertices(vertices: torch.Tensor, closed: bool = False) -> torch.Tensor:
    """At most MAX_RASTER_VERTICES vertices per polyline (equal arc-length resampling, ends kept)."""
    if vertices.shape[1] <= MAX_RASTER_VERTICES:
        return vertices
    if closed:
        vertices = torch.cat([vertices, vertices[:, :1]], dim=1)
    return resample_polylines(vertices, MAX_RASTER_VERTICES, inset=False)


def _segment_distances(vertices: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(B, L, L): distance from each cell centre to the nearest segment of each polyline."""
    batch = vertices.shape[0]
    points = centres.reshape(1, -1, 2)                                # (1, P, 2)
    best = torch.full((batch, points.shape[1]), float("inf"), device=vertices.device)
    if vertices.shape[1] == 1:
        return (points - vertices[:, :1]).norm(dim=-1).reshape(batch, *centres.shape[:2])
    for index in range(vertices.shape[1] - 1):                        # one segment of every polyline at a time
        a, b = vertices[:, index:index + 1], vertices[:, index + 1:index + 2]   # (B, 1, 2)
        ab = b - a
        t = (((points - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-9)).clamp(0.0, 1.0)
        nearest = a + t[..., None] * ab
        best = torch.minimum(best, (points - nearest).norm(dim=-1))
    return best.reshape(batch, *centres.shape[:2])


def draw_polylines(vertices: torch.Tensor, input_size: int, low_res: int, radius: float) -> torch.Tensor:
    """(B, L, L) bool: the cells within `radius` low-res cells of each polyline (B, V, 2)."""
    lines = _low_res(limit_vertices(vertices.float()), input_size, low_res)
    return _segment_distances(lines, _cell_centres(low_res, vertices.device)) <= radius


def fill_polygons(vertices: torch.Tensor, input_size: int, low_res: int, outline_radius: float = 0.75) -> torch.Tensor:
    """(B, L, L) bool: the inside of each closed polygon (even-odd rule at cell centres), with its
    outline, so a lasso thinner than a cell still marks the cells it passes."""
    polygon = _low_res(limit_vertices(vertices.float(), closed=True), input_size, low_res)
    centres = _cell_centres(low_res, vertices.device).reshape(1, -1, 2)
    x, y = centres[..., 0], centres[..., 1]
    inside = torch.zeros((polygon.shape[0], centres.shape[1]), dtype=torch.bool, device=vertices.device)
    following = torch.roll(polygon, shifts=-1, dims=1)                # each vertex's successor, closing the ring
    for index in range(polygon.shape[1]):
        xa, ya = polygon[:, index:index + 1, 0], polygon[:, index:index + 1, 1]
        xb, yb = following[:, index:index + 1, 0], following[:, index:index + 1, 1]
        crosses = (ya > y) != (yb > y)
        at_x = xa + (y - ya) * (xb - xa) / torch.where(yb == ya, torch.ones_like(yb), yb - ya)
        inside ^= crosses & (x < at_x)
    ring = torch.cat([polygon, polygon[:, :1]], dim=1)
    outline = _segment_distances(ring, centres.reshape(low_res, low_res, 2)) <= outline_radius
    return inside.reshape(-1, low_res, low_res) | outline


def polygon_boxes(vertices: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, 4) x0, y0, x1, y1: each polygon's bounding box, clipped to the model input."""
    low = vertices.amin(dim=1).clamp(0, input_size - 1)
    high = vertices.amax(dim=1).clamp(0, input_size - 1)
    return torch.cat([low, high], dim=1)


def depth(regions: torch.Tensor, max_steps: int = 256) -> torch.Tensor:
    """(B, H, W): how many 3×3 erosions each region pixel survives, plus one (0 outside; the
    border counts as outside)."""
    current = regions[:, None].float()
    total = torch.zeros_like(current)
    for step in range(max_steps):
        total += current
        if step % 8 == 7 and not bool(current.any()):
            break
        current = -F.max_pool2d(-F.pad(current, (1, 1, 1, 1), value=0.0), 3, stride=1)
    return total[:, 0]


def deepest_pixels(regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each region's deepest pixel (x, y) (first in raster order on ties) and whether it is non-empty."""
    depths = depth(regions).flatten(1)
    index = depths.argmax(dim=1)
    width = regions.shape[2]
    valid = depths.max(dim=1).values > 0
    return torch.stack([index % width, index // width], dim=1).float() * valid[:, None], valid


def low_res_to_input(points: torch.Tensor, input_size: int, low_res: int) -> torch.Tensor:
    """Low-res cell indices (x, y) → model-input pixels of the cell's centre."""
    return (points + 0.5) * (input_size / low_res) - 0.5
