"""A cohort row's prompt: `auto`, or one or more prompt items separated by `;`.

Items, in RAS millimetres (what Slicer shows for a markup) or in voxel indices of the image as
stored (i, j, k: what a viewer's cursor or a label map gives; 0-based):
- `ras-point:R,A,S` / `ijk-point:i,j,k`: a positive click;
- `ras-negative:R,A,S` / `ijk-negative:i,j,k`: a negative click;
- `ras-box:R0,A0,S0,R1,A1,S1`: a box by two opposite RAS corners;
- `ijk-box:i0,j0,k0,i1,j1,k1`: the voxels i0..i1, j0..j1, k0..k1 (inclusive), a box that follows
  the volume's axes also when the volume is oblique.

What a row does: `auto` gives the prompt-free mask of the middle axial slice; a box spanning
several axial slices is segmented in 3D within it (`segmote segment --ras-box`); clicks, a flat box
or a flat box with clicks segment their axial slice and propagate the mask through the volume until
the structure ends (`--propagate`). Clicks must lie on one axial slice (the box's, with a flat box);
a 3D box takes no clicks. The syntax is checked when the table is read, the rest (`in_volume`) with
the image's geometry, before any model work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

ARITY = {"ras-point": 3, "ras-negative": 3, "ras-box": 6, "ijk-point": 3, "ijk-negative": 3, "ijk-box": 6}
SYNTAX = ("auto, or items separated by ';': ras-point:R,A,S, ras-negative:R,A,S, ras-box:R0,A0,S0,R1,A1,S1 "
          "(RAS mm), ijk-point:i,j,k, ijk-negative:i,j,k, ijk-box:i0,j0,k0,i1,j1,k1 (voxel indices)")
ORIENTATION = "axial"


@dataclass(frozen=True)
class PromptItem:
    kind: str                  # a key of ARITY
    values: tuple              # its numbers

    @property
    def text(self) -> str:
        return f"{self.kind}:" + ",".join(f"{value:g}" for value in self.values)


@dataclass(frozen=True)
class VolumePrompt:
    """A row's prompt in a volume's RAS frame, checked against it."""

    auto: bool = False
    points_ras: np.ndarray | None = None    # (N, 3)
    labels: np.ndarray | None = None        # (N,) 1 positive, 0 negative
    box_ras: np.ndarray | None = None       # (2, 3) RAS-aligned or (8, 3) voxel-aligned corners
    box_is_3d: bool = False                 # the box spans several axial slices


@dataclass(frozen=True)
class RowPrompt:
    items: tuple = ()          # PromptItem...; empty: auto

    @property
    def auto(self) -> bool:
        return not self.items

    @property
    def text(self) -> str:
        return "auto" if self.auto else "; ".join(item.text for item in self.items)

    def in_volume(self, volume) -> VolumePrompt:
        """This prompt in `volume`'s RAS frame; an InputError naming the item that lies outside the
        volume, has no area, or is on another slice than the others."""
        from ..geometry import SliceRef, ras_box_to_slice_box, ras_to_voxel, slice_axis_for, slice_extent_of_box

        if self.auto:
            return VolumePrompt(auto=True)
        points, labels, box, box_item = [], [], None, None
        for item in self.items:
            if item.kind.endswith("box"):
                box, box_item = _box_ras(volume, item), item
            else:
                points.append(_point_ras(volume, item))
                labels.append(0 if item.kind.endswith("negative") else 1)
        axis = slice_axis_for(volume, ORIENTATION)
        first = last = None
        if box is not None:
            try:
                first, last = slice_extent_of_box(volume, axis, box)
                ras_box_to_slice_box(volume, SliceRef(axis, (first + last) // 2), box)  # no area: refused here
            except InputError as error:
                raise InputError(f"{box_item.text}: {str(error).removeprefix('corners_ras: ')}") from None
            if last > first and points:
                raise InputError(f"{box_item.text}: spans axial slices {first}..{last}; a 3D box takes no "
                                 f"clicks (give clicks with a box on one slice)")
        points_ras = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if points:
            slices = np.rint(ras_to_voxel(volume, points_ras)[:, axis]).astype(int)
            expected = first if box is not None else slices[0]
            clicks = [item for item in self.items if not item.kind.endswith("box")]
            for item, index in zip(clicks, slices):
                if index != expected:
                    raise InputError(f"{item.text}: lies on axial slice {index}, the row's prompt on slice "
                                     f"{expected}; all clicks of a row must be on one slice")
        return VolumePrompt(points_ras=points_ras if points else None,
                            labels=np.asarray(labels, dtype=np.int64) if points else None,
                            box_ras=box, box_is_3d=box is not None and last > first)


def _point_ras(volume, item: PromptItem) -> np.ndarray:
    if item.kind.startswith("ijk"):
        _check_indices(volume, item, np.asarray([item.values], dtype=np.float64))
        return volume.ijk_to_ras_points([item.values])[0]
    point = np.asarray(item.values, dtype=np.float64)
    ijk = volume.ras_to_ijk_points([point])
    if not volume.contains_ijk(ijk).all():
        extent = " x ".join(str(n) for n in volume.shape_ijk)
        raise InputError(f"{item.text}: lies outside the volume: voxel {np.round(ijk[0], 2).tolist()} is not "
                         f"within the {extent} (i x j x k) voxels")
    return point


def _box_ras(volume, item: PromptItem) -> np.ndarray:
    corners = np.asarray(item.values, dtype=np.float64).reshape(2, 3)
    if item.kind == "ras-box":
        return corners
    _check_indices(volume, item, corners)
    low, high = corners.min(axis=0), corners.max(axis=0)
    grid = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    return volume.ijk_to_ras_points(low + grid * (high - low))  # its 8 corners: a box along the voxel axes


def _check_indices(volume, item: PromptItem, ijk: np.ndarray) -> None:
    size = np.array(volume.shape_ijk)
    if np.any(ijk < 0) or np.any(ijk > size - 1):
        raise InputError(f"{item.text}: outside the volume, whose voxel indices are i 0..{size[0] - 1}, "
                         f"j 0..{size[1] - 1}, k 0..{size[2] - 1}")


def parse_prompt(text: str) -> RowPrompt:
    """The RowPrompt written as `text`; an InputError naming the mistake otherwise."""
    cleaned = (text or "").strip()
    if cleaned.lower() == "auto":
        return RowPrompt()
    parts = [part.strip() for part in cleaned.split(";") if part.strip()]
    if not parts:
        raise InputError(f"prompt {text!r}: expected {SYNTAX}")
    items = tuple(_parse_item(part) for part in parts)
    boxes = [item for item in items if item.kind.endswith("box")]
    if len(boxes) > 1:
        raise InputError(f"prompt {text!r}: {len(boxes)} boxes; a row takes one box (one row per structure)")
    if boxes and items[0] is not boxes[0]:
        items = (boxes[0], *(item for item in items if item is not boxes[0]))
    if not boxes and not any(item.kind.endswith("point") for item in items):
        raise InputError(f"prompt {text!r}: negative clicks need a positive click or a box")
    return RowPrompt(items)


def _parse_item(part: str) -> PromptItem:
    if part.lower() == "auto":
        raise InputError("prompt: 'auto' takes no other prompt item")
    kind, separator, numbers = part.partition(":")
    kind = kind.strip().lower()
    if not separator or kind not in ARITY:
        raise InputError(f"prompt {part!r}: expected {SYNTAX}")
    values_text = [value.strip() for value in numbers.split(",")]
    if len(values_text) != ARITY[kind]:
        raise InputError(f"prompt {part!r}: {kind} takes {ARITY[kind]} numbers, got {len(values_text)}")
    unit = "RAS mm" if kind.startswith("ras") else "voxel indices"
    try:
        values = tuple(float(value) for value in values_text)
    except ValueError:
        raise InputError(f"prompt {part!r}: {kind} takes numbers ({unit}), got {numbers!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise InputError(f"prompt {part!r}: coordinates must be finite numbers")
    if kind.startswith("ijk") and any(value != int(value) for value in values):
        raise InputError(f"prompt {part!r}: {kind} takes whole voxel indices, got {numbers!r}")
    return PromptItem(kind, values)
