"""The one prompt value: everything a user gives on one slice, in one coordinate frame.

A `SlicePrompt` holds clicks (each positive or negative), at most one box, scribbles and lassos
(`Stroke`s, each positive or negative), and the dense prompts: the low-res logits of an earlier
result (`mask_input`, for refinement) or a mask the user already has (`seed_mask`: refine a segment
made by any tool; (H, W) in the display pixels of the prompt's slice, whatever the frame). Its coordinates are in one `frame`:

- "pixel": (x, y) = (column, row) of the 2D image as stored (what the predictor takes);
- "ras": (R, A, S) millimetres in the volume's world (what Slicer's markups give);
- "ijk": (i, j, k) voxel indices of the volume as stored (what a viewer's status bar shows).

Its path (docs/ARCHITECTURE.md): the effect, the CLI or a caller builds it; the client sends
`to_wire()`; the service's pydantic model (`service.schemas.PromptFields`, checked against this
class by a test) validates it and `from_wire` rebuilds it; `geometry.prompt_on_slice` maps a volume
prompt to the pixels of one slice; `prompt_encoding.encode_prompts` turns a pixel prompt into the
model's inputs. The value is immutable and checks itself when built (an `InputError` naming the
field); whether it lies inside an image is checked where the image is known (`check_inside`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import InputError

FRAMES = {"pixel": 2, "ras": 3, "ijk": 3}   # frame -> coordinates per vertex
BOX_CORNERS = {"pixel": (2,), "ras": (2, 4, 8), "ijk": (2,)}
# Bounds on one prompt (the service refuses larger bodies by the same numbers): a click costs
# a token each; a stroke is resampled before it reaches the model, so its vertices cost little.
MAX_POINTS = 64
MAX_STROKES = 32          # scribbles + lassos
MAX_STROKE_VERTICES = 4096
MIN_VERTICES = {"scribble": 1, "lasso": 3}

Coordinates = tuple[tuple[float, ...], ...]


def _coordinates(values, frame: str, name: str, minimum: int = 1, maximum: int | None = None) -> Coordinates:
    """(N, d) finite numbers as a tuple of tuples; d from the frame."""
    dims = FRAMES[frame]
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected numbers, got {values!r}") from None
    if array.ndim == 1 and array.size == dims:
        array = array[None]
    if array.ndim == 1 and array.size % dims == 0 and array.size:  # a flat x1, y1, x2, y2, ... list
        array = array.reshape(-1, dims)
    if array.ndim != 2 or array.shape[1] != dims or len(array) < minimum:
        what = "x, y pixels" if frame == "pixel" else f"{frame.upper()} coordinates"
        raise InputError(f"{name}: expected shape (N, {dims}) of {what} with N >= {minimum}, "
                         f"got shape {np.shape(values)}")
    if maximum is not None and len(array) > maximum:
        raise InputError(f"{name}: {len(array)} vertices; at most {maximum} are accepted")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return tuple(tuple(float(v) for v in row) for row in array)


@dataclass(frozen=True)
class Stroke:
    """A scribble (an open polyline) or a lasso (a closed polygon), positive or negative."""

    vertices: Coordinates
    positive: bool = True

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.vertices, dtype=np.float64)

    def mapped(self, function) -> Stroke:
        return Stroke(tuple(tuple(float(v) for v in row) for row in function(self.array)), self.positive)


@dataclass(frozen=True, eq=False)
class SlicePrompt:
    frame: str = "pixel"
    points: Coordinates = ()
    labels: tuple[int, ...] = ()                # 1 positive, 0 negative; one per point
    box: Coordinates | None = None              # corners: pixel 2 (x0, y0), (x1, y1); ras 2, 4 or 8; ijk 2
    scribbles: tuple[Stroke, ...] = ()
    lassos: tuple[Stroke, ...] = ()
    mask_input: object = None                   # low-res logits (256, 256) of an earlier result, or the
                                                # engine's reference to them (`service.client.ServerLogits`)
    seed_mask: np.ndarray | None = field(default=None, repr=False)  # bool (H, W) in the slice's display pixels

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise InputError(f"frame: expected one of {', '.join(FRAMES)}, got {self.frame!r}")
        if len(self.points) > MAX_POINTS:
            raise InputError(f"points: {len(self.points)} points; at most {MAX_POINTS} are accepted")
        if len(self.labels) != len(self.points):
            raise InputError(f"labels: {len(self.labels)} labels for {len(self.points)} points")
        if any(label not in (0, 1) for label in self.labels):
            raise InputError(f"labels: each label must be 1 (positive) or 0 (negative), got {list(self.labels)}")
        if self.box is not None and len(self.box) not in BOX_CORNERS[self.frame]:
            raise InputError(f"box: expected {' or '.join(map(str, BOX_CORNERS[self.frame]))} corners in the "
                             f"{self.frame} frame, got {len(self.box)}")
        if len(self.scribbles) + len(self.lassos) > MAX_STROKES:
            raise InputError(f"strokes: {len(self.scribbles) + len(self.lassos)} scribbles and lassos; "
                             f"at most {MAX_STROKES} are accepted")
        if self.seed_mask is not None:
            seed = np.asarray(self.seed_mask)
            if seed.ndim != 2 or seed.dtype != bool or not seed.size:
                raise InputError(f"seed_mask: expected a bool slice mask (H, W), got {seed.dtype} of shape {seed.shape}")
            if self.mask_input is not None:
                raise InputError("seed_mask: give either mask_input (earlier logits) or seed_mask, not both")

    # --- building ----------------------------------------------------------------------------
    @classmethod
    def build(cls, frame: str = "pixel", points=None, labels=None, box=None, scribbles=(), negative_scribbles=(),
              lassos=(), negative_lassos=(), mask_input=None, seed_mask=None) -> SlicePrompt:
        """The prompt from numpy-like values; each stroke is a (V, d) array (or a flat list).

        `points` (N, d) with `labels` (N,) (default all positive); `box` as corners, or in the pixel
        frame also as x0, y0, x1, y1."""
        if frame not in FRAMES:
            raise InputError(f"frame: expected one of {', '.join(FRAMES)}, got {frame!r}")
        point_tuple: Coordinates = ()
        label_tuple: tuple[int, ...] = ()
        if points is not None:
            point_tuple = _coordinates(points, frame, "points", maximum=MAX_POINTS)
            label_values = np.ones(len(point_tuple), np.int64) if labels is None else np.asarray(labels).reshape(-1)
            if not np.all(np.isin(label_values, (0, 1))):
                raise InputError(f"labels: each label must be 1 (positive) or 0 (negative), got {label_values.tolist()}")
            label_tuple = tuple(int(v) for v in label_values)
        elif labels is not None:
            raise InputError("labels: labels were given without points")
        corners = None
        if box is not None:
            corners = _coordinates(box, frame, "box", minimum=2)
        strokes = {kind: tuple(Stroke(_coordinates(vertices, frame, f"{'' if positive else 'negative '}{kind[:-1]} {number}",
                                                   MIN_VERTICES[kind[:-1]], MAX_STROKE_VERTICES), positive)
                               for positive, group in ((True, positives), (False, negatives))
                               for number, vertices in enumerate(group, start=1))
                   for kind, positives, negatives in (("scribbles", scribbles, negative_scribbles),
                                                      ("lassos", lassos, negative_lassos))}
        if seed_mask is not None:
            seed_mask = np.asarray(seed_mask).astype(bool, copy=False)
        return cls(frame, point_tuple, label_tuple, corners, strokes["scribbles"], strokes["lassos"], mask_input,
                   seed_mask)

    def mapped(self, function, frame: str) -> SlicePrompt:
        """The prompt with every coordinate array (clicks, box corners, each stroke) passed through
        `function` ((N, d) → (N, d')) and declared in `frame`; the dense prompts are kept."""
        def strokes(group):
            return tuple(Stroke(_coordinates(function(s.array), frame, "stroke"), s.positive) for s in group)

        return SlicePrompt(frame, _coordinates(function(self.points_array()), frame, "points") if self.points else (),
                           self.labels, None if self.box is None else _coordinates(function(self.box_array()), frame, "box"),
                           strokes(self.scribbles), strokes(self.lassos), self.mask_input, self.seed_mask)

    def with_(self, **changes) -> SlicePrompt:
        """A copy with some fields changed (the value itself never changes)."""
        return replace(self, **changes)

    # --- reading -------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        """No prompt at all (not even a dense one)."""
        return not self.has_geometry and self.mask_input is None and self.seed_mask is None

    @property
    def has_geometry(self) -> bool:
        """Anything placed in the image: a click, a box, a scribble or a lasso."""
        return bool(self.points or self.box is not None or self.scribbles or self.lassos)

    def points_array(self) -> np.ndarray | None:
        return np.asarray(self.points, dtype=np.float64) if self.points else None

    def labels_array(self) -> np.ndarray | None:
        return np.asarray(self.labels, dtype=np.int64) if self.points else None

    def box_array(self) -> np.ndarray | None:
        return None if self.box is None else np.asarray(self.box, dtype=np.float64)

    def pixel_box(self) -> np.ndarray | None:
        """Pixel frame: the box as x0, y0, x1, y1 (as given: `check_inside` refuses inverted ones)."""
        self._require_frame("pixel")
        return None if self.box is None else np.asarray(self.box, dtype=np.float64).reshape(4)

    def anchor(self) -> np.ndarray | None:
        """A coordinate that says which slice the prompt is on: the first click, else the box's
        centre, else a scribble's first vertex, else a lasso's centre; None for a dense prompt alone."""
        if self.points:
            return np.asarray(self.points[0], dtype=np.float64)
        if self.box is not None:
            return np.asarray(self.box, dtype=np.float64).mean(axis=0)
        if self.scribbles:
            return self.scribbles[0].array[0]
        if self.lassos:
            return self.lassos[0].array.mean(axis=0)
        return None

    def _require_frame(self, frame: str) -> None:
        if self.frame != frame:
            raise InputError(f"prompt: expected coordinates in the {frame} frame, got the {self.frame} frame")

    # --- checks against an image -----------------------------------------------------------------
    def check_inside(self, height: int, width: int) -> None:
        """Pixel frame: clicks and box corners inside the image, the box not inverted and with an
        area. Stroke vertices may leave the image (a lasso drawn across its edge): they are clipped
        where the strokes are drawn (`prompt_encoding`)."""
        self._require_frame("pixel")
        if self.points:
            _check_inside(np.asarray(self.points), height, width, "points")
        if self.box is not None:
            x0, y0, x1, y1 = self.pixel_box()
            if x1 < x0 or y1 < y0:
                raise InputError(f"box: {[x0, y0, x1, y1]} is inverted (need x0 <= x1 and y0 <= y1)")
            if x1 == x0 or y1 == y0:
                raise InputError(f"box: {[x0, y0, x1, y1]} has zero area")
            _check_inside(np.asarray(self.box), height, width, "box corner")
        if self.seed_mask is not None and self.seed_mask.shape != (height, width):
            raise InputError(f"seed_mask: expected the image's shape {(height, width)}, got {self.seed_mask.shape}")

    # --- the wire form (JSON) ----------------------------------------------------------------------
    def to_wire(self) -> dict:
        """JSON-able fields; the dense prompts travel otherwise (an earlier result by its id, a seed
        mask in the service's mask encoding), see `service.client`."""
        def strokes(group):
            return [{"vertices": [list(v) for v in stroke.vertices], "positive": stroke.positive} for stroke in group]

        return {"frame": self.frame, "points": [list(p) for p in self.points], "labels": list(self.labels),
                "box": None if self.box is None else [list(c) for c in self.box],
                "scribbles": strokes(self.scribbles), "lassos": strokes(self.lassos)}

    @classmethod
    def from_wire(cls, body: dict, mask_input=None, seed_mask=None) -> SlicePrompt:
        def split(strokes):
            strokes = strokes or []
            return ([s["vertices"] for s in strokes if s.get("positive", True)],
                    [s["vertices"] for s in strokes if not s.get("positive", True)])

        scribbles, negative_scribbles = split(body.get("scribbles"))
        lassos, negative_lassos = split(body.get("lassos"))
        points = body.get("points") or None
        labels = body.get("labels") if points else None
        return cls.build(body.get("frame", "pixel"), points=points, labels=labels or None, box=body.get("box"),
                         scribbles=scribbles, negative_scribbles=negative_scribbles, lassos=lassos,
                         negative_lassos=negative_lassos, mask_input=mask_input, seed_mask=seed_mask)


WIRE_FIELDS = ("frame", "points", "labels", "box", "scribbles", "lassos")  # `to_wire`'s keys


def _check_inside(xy: np.ndarray, height: int, width: int, name: str) -> None:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width - 1) | (xy[:, 1] < 0) | (xy[:, 1] > height - 1)
    if np.any(outside):
        bad = xy[np.argmax(outside)]
        raise InputError(
            f"{name}: ({bad[0]:g}, {bad[1]:g}) is outside the image (x in 0..{width - 1}, y in 0..{height - 1})"
        )


def parse_vertex_list(text: str, dims: int, option: str) -> np.ndarray:
    """`x1,y1,x2,y2,...` (or with dims 3, `r1,a1,s1,...`) → (V, dims); an InputError naming `option`."""
    parts = [part.strip() for part in str(text).replace(";", ",").split(",") if part.strip()]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values or len(values) % dims:
        raise InputError(f"{option}: expected {dims} numbers per vertex (x1,y1,x2,y2,... for pixels, "
                         f"r1,a1,s1,... for RAS), got {len(values)} numbers")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{option}: coordinates must be finite numbers")
    return np.asarray(values, dtype=np.float64).reshape(-1, dims)
