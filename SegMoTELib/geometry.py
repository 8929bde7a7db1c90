"""Patient-axis slices of a volume, shown like Slicer shows them, and RAS ⇄ slice-pixel mapping.

A slice holds one voxel axis fixed (`SliceRef(axis, index)`, axis 0/1/2 = i/j/k). "Axial" means
axial in the patient: the voxel axis closest to the superior axis, read from the direction matrix
(for an oblique or permuted acquisition that can be i or j, not k). The three patient axes are
matched to the three voxel axes together (the best of the 6 pairings), so axial, coronal and
sagittal always name three different voxel axes.

Slices come out in display orientation, as Slicer's slice views show them
(`vtkMRMLSliceNode::SetOrientationTo*`):
  axial    x (column) → patient left,      y (row, downwards) → posterior  (anterior at the top)
  coronal  x → patient left,               y → inferior                     (superior at the top)
  sagittal x → posterior (anterior left),  y → inferior                     (superior at the top)
Pixel (x, y) has its centre at integer coordinates. The display layout of a voxel axis is one
`DisplayFrame`; `_pixel_to_voxel` / `_voxel_to_pixel` are the only place it is applied, by slice
extraction, insertion and the point mapping alike, so they cannot disagree.

Coordinates are rounded to the nearest voxel (halves up), never truncated; a point outside the
volume raises `InputError` naming it. Boxes are 2 opposite RAS corners (the RAS-axis-aligned box
they span) or 8 corners (a rotated ROI). Vectorised numpy throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

import numpy as np

from .errors import InputError
from .slice_prompt import SlicePrompt
from .volume import Volume, as_points, round_half_up

ORIENTATIONS = ("sagittal", "coronal", "axial")  # index = patient axis: 0 R-L, 1 A-P, 2 S-I
ACQUISITION = "auto"  # the orientation name of the volume's acquisition axis (see `acquisition_axis`)
_ALIASES = {"yellow": "sagittal", "green": "coronal", "red": "axial", "transverse": "axial",
            "acquisition": ACQUISITION}
ANISOTROPY = 1.1  # a spacing this much larger than the others makes its axis the acquisition axis
# Column (x) and row (y) directions of each view in RAS.
DISPLAY_AXES_RAS = {
    "axial": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "coronal": ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
}
AXIS_NAMES = ("i", "j", "k")


@dataclass(frozen=True)
class SliceRef:
    """A slice: voxel axis `axis` (0 = i, 1 = j, 2 = k) held at `index`."""

    axis: int
    index: int

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or self.axis not in (0, 1, 2):
            raise InputError(f"slice axis: expected 0, 1 or 2 (i, j, k), got {self.axis!r}")
        if isinstance(self.index, bool) or int(self.index) != self.index or self.index < 0:
            raise InputError(f"slice index: expected an integer >= 0, got {self.index!r}")
        object.__setattr__(self, "axis", int(self.axis))
        object.__setattr__(self, "index", int(self.index))


@dataclass(frozen=True)
class DisplayFrame:
    """How the slices across voxel axis `axis` are laid out on screen."""

    axis: int
    orientation: str
    col_axis: int  # voxel axis running along image columns (x)
    row_axis: int  # voxel axis running down image rows (y)
    col_flip: bool  # x increases as that voxel index decreases
    row_flip: bool
    width: int
    height: int


# --- which voxel axis is which patient axis --------------------------------------------------
def patient_axis_map(volume: Volume) -> tuple[int, int, int]:
    """Voxel axis (0 i, 1 j, 2 k) of the patient R-L, A-P and S-I axes, matched jointly."""
    return _patient_axis_map(volume.direction_ras)


def _patient_axis_map(direction_ras: np.ndarray) -> tuple[int, int, int]:
    cosines = np.abs(direction_ras)  # [patient axis, voxel axis]; columns are unit vectors
    best = max(permutations(range(3)), key=lambda perm: sum(cosines[p, perm[p]] for p in range(3)))
    return tuple(int(a) for a in best)


def normalise_orientation(orientation: str) -> str:
    name = str(orientation).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in ORIENTATIONS + (ACQUISITION,):
        raise InputError(f"orientation: expected auto (the acquisition axis), axial, coronal, sagittal or a "
                         f"normal vector (3,) in RAS, got {orientation!r}")
    return name


def acquisition_axis(volume: Volume) -> int:
    """The voxel axis the volume was acquired slice by slice along: the one of largest spacing when it
    stands out (a cine short-axis stack at 8-10 mm, a 4 mm CT), else the axial one (isotropic volumes).
    A walk along it follows the stack even when the stack is oblique to the patient axes."""
    spacing = np.asarray(volume.spacing, dtype=float)
    largest = int(np.argmax(spacing))
    if spacing[largest] > ANISOTROPY * np.delete(spacing, largest).max():
        return largest
    return patient_axis_map(volume)[ORIENTATIONS.index("axial")]


def slice_axis_for(volume: Volume, orientation) -> int:
    """Voxel axis to hold fixed for "auto" (the acquisition axis), "axial" / "coronal" / "sagittal",
    or a slice normal in RAS (3,)."""
    if isinstance(orientation, str):
        name = normalise_orientation(orientation)
        if name == ACQUISITION:
            return acquisition_axis(volume)
        return patient_axis_map(volume)[ORIENTATIONS.index(name)]
    normal = np.asarray(orientation, dtype=np.float64).reshape(-1)
    if normal.shape != (3,) or not np.all(np.isfinite(normal)) or not np.any(normal):
        raise InputError(f"orientation: a slice normal must be 3 finite numbers, not all 0; got {orientation!r}")
    return int(np.argmax(np.abs(volume.direction_ras.T @ (normal / np.linalg.norm(normal)))))


def orientation_of_axis(volume: Volume, axis: int) -> str:
    """"axial", "coronal" or "sagittal": the patient orientation of slices across voxel `axis`."""
    return ORIENTATIONS[patient_axis_map(volume).index(int(axis))]


def display_frame(volume: Volume, axis: int) -> DisplayFrame:
    # Cached by value: a propagation asks for the same frame a few times per slice.
    direction = np.asarray(volume.direction_ras, dtype=np.float64)
    return _display_frame(direction.tobytes(), volume.shape_ijk, int(axis))


@lru_cache(maxsize=64)
def _display_frame(direction_bytes: bytes, shape: tuple[int, int, int], axis: int) -> DisplayFrame:
    direction = np.frombuffer(direction_bytes, dtype=np.float64).reshape(3, 3)
    axis_of_patient = _patient_axis_map(direction)
    orientation = ORIENTATIONS[axis_of_patient.index(axis)]
    column_ras, row_ras = (np.array(d) for d in DISPLAY_AXES_RAS[orientation])
    col_axis = axis_of_patient[int(np.argmax(np.abs(column_ras)))]
    row_axis = axis_of_patient[int(np.argmax(np.abs(row_ras)))]
    return DisplayFrame(
        axis=int(axis), orientation=orientation, col_axis=col_axis, row_axis=row_axis,
        col_flip=bool(direction[:, col_axis] @ column_ras < 0), row_flip=bool(direction[:, row_axis] @ row_ras < 0),
        width=shape[col_axis], height=shape[row_axis])


# --- the one mapping between voxel coordinates and display pixels ----------------------------
def _mirror(values, flip: bool, size: int):
    """Index along a displayed axis ⇄ voxel index (its own inverse)."""
    return (size - 1) - values if flip else values


def _pixel_to_voxel(frame: DisplayFrame, x, y, index) -> list:
    """Pixel (x, y) of slice `index` -> voxel coordinates [i, j, k] (broadcastable arrays)."""
    ijk = [None, None, None]
    ijk[frame.axis] = index
    ijk[frame.col_axis] = _mirror(x, frame.col_flip, frame.width)
    ijk[frame.row_axis] = _mirror(y, frame.row_flip, frame.height)
    return ijk


def _voxel_to_pixel(frame: DisplayFrame, ijk: np.ndarray) -> np.ndarray:
    """Voxel coordinates (N, 3) -> pixel (N, 2) x, y of the slice through them."""
    x = _mirror(ijk[:, frame.col_axis], frame.col_flip, frame.width)
    y = _mirror(ijk[:, frame.row_axis], frame.row_flip, frame.height)
    return np.stack([x, y], axis=1)


# --- slices -----------------------------------------------------------------------------------
def slice_through(volume: Volume, orientation, point_ras) -> SliceRef:
    """The slice of the given orientation through the voxel containing `point_ras`."""
    axis = slice_axis_for(volume, orientation)
    return SliceRef(axis, int(ras_to_voxel(volume, point_ras)[0, axis]))


def slice_count(volume: Volume, axis: int) -> int:
    return volume.shape_ijk[int(axis)]


def slice_shape(volume: Volume, ref: SliceRef) -> tuple[int, int]:
    """(height, width) of the displayed slice."""
    frame = display_frame(volume, ref.axis)
    return frame.height, frame.width


def _checked_frame(volume: Volume, ref: SliceRef) -> DisplayFrame:
    if not isinstance(ref, SliceRef):
        raise InputError(f"ref: expected a SliceRef, got {type(ref).__name__}")
    count = slice_count(volume, ref.axis)
    if ref.index >= count:
        raise InputError(f"slice index: {ref.index} is outside 0..{count - 1} along axis {AXIS_NAMES[ref.axis]}")
    return display_frame(volume, ref.axis)


def _slice_view(array: np.ndarray, frame: DisplayFrame, index: int) -> np.ndarray:
    """A view of slice `index` of an array [k, j, i] (, C) as (H, W) (, C) in display orientation:
    basic slicing, a transpose and reversed strides, no gather (a 512² slice in microseconds)."""
    fixed = 2 - frame.axis  # voxel axis a is array dimension 2 - a
    take = [slice(None)] * 3
    take[fixed] = index
    view = array[tuple(take)]
    remaining = [d for d in range(3) if d != fixed]
    order = [remaining.index(2 - frame.row_axis), remaining.index(2 - frame.col_axis)]
    view = view.transpose(order + list(range(2, view.ndim)))
    reverse = slice(None, None, -1)
    return view[reverse if frame.row_flip else slice(None), reverse if frame.col_flip else slice(None)]


def extract_slice(volume: Volume, ref: SliceRef) -> np.ndarray:
    """The slice as a 2D array (H, W) in display orientation ((H, W, 3) for RGB); a copy."""
    frame = _checked_frame(volume, ref)
    return _slice_view(volume.array, frame, ref.index).copy(order="C")


def insert_slice(labelmap, ref: SliceRef, mask2d, geometry: Volume | None = None):
    """Write a display-oriented 2D mask into slice `ref` of a labelmap (inverse of extract_slice).

    `labelmap`: a `Volume` (its array is written in place), or an array [k, j, i] together with
    `geometry`, the volume it belongs to (the display layout depends on its direction matrix).
    Returns the labelmap array.
    """
    if isinstance(labelmap, Volume):
        geometry = labelmap if geometry is None else geometry
        target = labelmap.array
    else:
        target = labelmap
        if not isinstance(geometry, Volume):
            raise InputError("geometry: insert_slice into a bare array needs the Volume it belongs to "
                             "(its direction decides the display layout)")
    if not isinstance(target, np.ndarray) or target.shape[:3] != geometry.array.shape[:3]:
        raise InputError(f"labelmap: expected an array of shape {geometry.array.shape[:3]} [k, j, i], "
                         f"got {getattr(target, 'shape', type(target).__name__)}")
    frame = _checked_frame(geometry, ref)
    mask2d = np.asarray(mask2d)
    if mask2d.shape[:2] != (frame.height, frame.width):
        raise InputError(f"mask2d: expected shape {(frame.height, frame.width)} (the displayed slice), "
                         f"got {mask2d.shape}")
    _slice_view(target, frame, ref.index)[...] = mask2d
    return target


# --- points and boxes -------------------------------------------------------------------------
def _describe_ras(point) -> str:
    return "(R {:.2f}, A {:.2f}, S {:.2f} mm)".format(*point)


def _outside_error(volume: Volume, points_ras: np.ndarray, ijk: np.ndarray, name: str) -> InputError:
    inside = volume.contains_ijk(ijk)
    first = int(np.flatnonzero(~inside)[0])
    count = int(np.count_nonzero(~inside))
    more = f" ({count} of {len(inside)} points are outside)" if count > 1 else ""
    extent = " x ".join(str(n) for n in volume.shape_ijk)
    return InputError(
        f"{name}: point {first} {_describe_ras(points_ras[first])} lies outside the volume: voxel "
        f"{np.round(ijk[first], 2).tolist()} is not within the {extent} (i x j x k) voxels{more}")


def ras_to_voxel(volume: Volume, points_ras) -> np.ndarray:
    """RAS mm (N, 3) -> nearest voxel (N, 3) int, i, j, k order; outside the volume -> InputError."""
    points = as_points(points_ras, "points_ras")
    ijk = volume.ras_to_ijk_points(points)
    if not volume.contains_ijk(ijk).all():
        raise _outside_error(volume, points, ijk, "points_ras")
    return round_half_up(ijk)


def ras_to_slice_pixels(volume: Volume, ref: SliceRef, points_ras) -> np.ndarray:
    """RAS mm (N, 3) -> (N, 2) float pixel x (column), y (row) of slice `ref`.

    Points are projected along the slice's voxel axis; each must lie inside the volume.
    Round the result (halves up) where a whole pixel is needed.
    """
    frame = _checked_frame(volume, ref)
    points = as_points(points_ras, "points_ras")
    ijk = volume.ras_to_ijk_points(points)
    if not volume.contains_ijk(ijk).all():
        raise _outside_error(volume, points, ijk, "points_ras")
    return _voxel_to_pixel(frame, ijk)


def slice_pixels_to_ras(volume: Volume, ref: SliceRef, xy) -> np.ndarray:
    """Pixel (N, 2) x, y of slice `ref` (float allowed) -> RAS mm (N, 3) on the slice plane."""
    frame = _checked_frame(volume, ref)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim == 1:
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.all(np.isfinite(xy)):
        raise InputError(f"xy: expected finite pixel coordinates of shape (N, 2), got {np.asarray(xy).shape}")
    index = np.full(len(xy), float(ref.index))
    ijk = np.stack(_pixel_to_voxel(frame, xy[:, 0], xy[:, 1], index), axis=1)
    return volume.ijk_to_ras_points(ijk)


def _corners(corners_ras, name: str) -> np.ndarray:
    corners = np.asarray(corners_ras, dtype=np.float64)
    if corners.shape not in ((2, 3), (8, 3)) or not np.all(np.isfinite(corners)):
        raise InputError(f"{name}: expected 2 opposite corners (2, 3) or the 8 corners (8, 3) of a box in "
                         f"RAS mm, got shape {np.asarray(corners_ras).shape}")
    return corners


def box_corners_ras(corners_ras) -> np.ndarray:
    """The 8 corners of the RAS-axis-aligned box spanned by two opposite corners (2, 3)."""
    corners = _corners(corners_ras, "corners_ras")
    if len(corners) == 8:
        return corners
    low, high = corners.min(axis=0), corners.max(axis=0)
    grid = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    return low + grid * (high - low)


def ijk_box_corners_ras(volume: Volume, ijk_first, ijk_last) -> np.ndarray:
    """The 8 RAS corners (8, 3) of the box of voxels i0..i1, j0..j1, k0..k1 (inclusive voxel indices of
    the volume as stored; any order of the two corners). The corners are the voxel centres, so the
    box keeps exactly those voxels on every axis, also on an oblique volume (a box in the volume's
    own frame)."""
    first, last = _ijk_index(volume, ijk_first, "ijk box"), _ijk_index(volume, ijk_last, "ijk box")
    low, high = np.minimum(first, last), np.maximum(first, last)
    grid = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    return volume.ijk_to_ras_points(low + grid * (high - low))


def ijk_points_to_ras(volume: Volume, ijk, what: str = "ijk point") -> np.ndarray:
    """Voxel indices (N, 3) i, j, k of the volume as stored → RAS mm (N, 3) of the voxel centres."""
    points = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
    return volume.ijk_to_ras_points(np.stack([_ijk_index(volume, p, what) for p in points]))


def _ijk_index(volume: Volume, ijk, what: str) -> np.ndarray:
    values = np.asarray(ijk, dtype=np.float64).reshape(-1)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise InputError(f"{what}: expected three whole voxel indices i j k, got {np.asarray(ijk).tolist()}")
    shape = np.array(volume.shape_ijk)
    if np.any(values < 0) or np.any(values >= shape):
        raise InputError(f"{what}: voxel {values.astype(int).tolist()} lies outside the volume's "
                         f"{' x '.join(str(n) for n in shape)} (i x j x k) voxels (indices start at 0)")
    return values


def roi_corners_from_axes(center_ras, size, axes_ras=None) -> np.ndarray:
    """The 8 RAS corners of a rotated ROI given its centre (3,), edge lengths (3,) in mm and its axes:
    a 3×3 matrix whose rows are the ROI's x, y, z directions in RAS (orthogonal; normalised here).
    Without axes the ROI is aligned with RAS."""
    center = np.asarray(center_ras, dtype=np.float64).reshape(-1)
    if center.shape != (3,) or not np.all(np.isfinite(center)):
        raise InputError(f"roi center: expected three finite RAS coordinates, got {np.asarray(center_ras).tolist()}")
    axes = np.eye(3) if axes_ras is None else np.asarray(axes_ras, dtype=np.float64)
    if axes.size != 9 or not np.all(np.isfinite(axes)):
        raise InputError(f"roi axes: expected 9 numbers (three direction vectors), got {np.asarray(axes_ras).tolist()}")
    axes = axes.reshape(3, 3)
    norms = np.linalg.norm(axes, axis=1)
    if np.any(norms < 1e-9):
        raise InputError("roi axes: a direction vector is zero")
    axes = axes / norms[:, None]
    if np.abs(axes @ axes.T - np.eye(3)).max() > 1e-3:
        raise InputError("roi axes: the three directions must be orthogonal")
    object_to_world = np.eye(4)
    object_to_world[:3, :3] = axes.T  # columns: the ROI's axes in RAS
    object_to_world[:3, 3] = center
    return roi_corners(object_to_world, size)


def roi_corners(object_to_world, size) -> np.ndarray:
    """The 8 world corners (8, 3) of a (possibly rotated) ROI: its centre frame `object_to_world`
    (4×4, as Slicer's markups ROI GetObjectToWorldMatrix) and its edge lengths `size` (3,) in mm."""
    matrix = np.asarray(object_to_world, dtype=np.float64)
    half = np.asarray(size, dtype=np.float64).reshape(-1) / 2.0
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InputError(f"object_to_world: expected a finite 4×4 matrix, got shape {matrix.shape}")
    if half.shape != (3,) or not np.all(np.isfinite(half)) or np.any(half <= 0):
        raise InputError(f"size: expected three positive edge lengths, got {np.asarray(size).tolist()}")
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64)
    local = np.hstack([signs * half, np.ones((8, 1))])
    return (local @ matrix.T)[:, :3]


def _rounded_span(low: float, high: float, size: int, what: str) -> tuple[int, int]:
    """Round a continuous [low, high] voxel span to whole voxels, clamped to 0..size-1."""
    if high < -0.5 or low >= size - 0.5:
        raise InputError(f"{what}: the box lies outside the volume (voxels {low:.2f}..{high:.2f}, extent 0..{size - 1})")
    first, last = round_half_up([low, high])
    return int(max(first, 0)), int(min(last, size - 1))


def ras_box_to_slice_box(volume: Volume, ref: SliceRef, corners_ras) -> np.ndarray:
    """Box corners in RAS -> (4,) int x0, y0, x1, y1 (inclusive pixels) on slice `ref`.

    Two corners mean the RAS-axis-aligned box they span, as everywhere in this module: for a box
    drawn in one of Slicer's (RAS-aligned) slice views that is the drawn rectangle itself, also
    when the volume is oblique. Eight corners (a rotated ROI or a reformatted view) are used as
    given. All corners are projected along the slice axis; the bounding box of the projections
    is rounded and clamped to the slice; a box outside the slice or without area is refused.
    """
    frame = _checked_frame(volume, ref)
    pixels = _voxel_to_pixel(frame, volume.ras_to_ijk_points(box_corners_ras(corners_ras)))
    low, high = pixels.min(axis=0), pixels.max(axis=0)
    x0, x1 = _rounded_span(low[0], high[0], frame.width, "corners_ras")
    y0, y1 = _rounded_span(low[1], high[1], frame.height, "corners_ras")
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"corners_ras: the box covers {x1 - x0 + 1} x {y1 - y0 + 1} pixels on the slice "
                         f"(x {x0}..{x1}, y {y0}..{y1}); it has no area: draw a larger box")
    return np.array([x0, y0, x1, y1], dtype=np.int64)


def slice_extent_of_box(volume: Volume, ref_axis, corners_ras) -> tuple[int, int]:
    """Inclusive range (lo, hi) of slice indices along `ref_axis` (int or SliceRef) a 3D box covers.

    Two corners mean the RAS-axis-aligned box they span (expanded to its 8 corners); 8 corners
    (a rotated ROI) are used as given.
    """
    axis = ref_axis.axis if isinstance(ref_axis, SliceRef) else ref_axis
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise InputError(f"ref_axis: expected 0, 1 or 2 (i, j, k) or a SliceRef, got {ref_axis!r}")
    ijk = volume.ras_to_ijk_points(box_corners_ras(corners_ras))
    return _rounded_span(ijk[:, axis].min(), ijk[:, axis].max(), slice_count(volume, axis), "corners_ras")


# --- a whole prompt ------------------------------------------------------------------------------
def _prompt_voxels(volume: Volume, prompt: SlicePrompt, coordinates: np.ndarray) -> np.ndarray:
    """Continuous voxel coordinates (N, 3) of RAS or IJK coordinates."""
    return volume.ras_to_ijk_points(coordinates) if prompt.frame == "ras" else np.asarray(coordinates, np.float64)


def prompt_slice(volume: Volume, orientation, prompt: SlicePrompt, slice_index: int | None = None) -> SliceRef:
    """The slice a prompt is on: `slice_index` along the orientation's axis when given, else the
    slice through the prompt's anchor (its first click, else its box's centre, ...)."""
    axis = slice_axis_for(volume, orientation)
    count = slice_count(volume, axis)
    if slice_index is not None:
        if isinstance(slice_index, bool) or int(slice_index) != slice_index or not 0 <= slice_index < count:
            raise InputError(f"slice_index: expected an integer in 0..{count - 1}, got {slice_index!r}")
        return SliceRef(axis, int(slice_index))
    anchor = prompt.anchor()
    if prompt.frame == "pixel" or anchor is None:
        what = "pixel coordinates do" if prompt.frame == "pixel" else "an earlier result or a seed mask alone does"
        raise InputError(f"slice_index: {what} not say which slice; give slice_index")
    ijk = _prompt_voxels(volume, prompt, anchor[None])
    index = int(round_half_up(ijk[0, axis]))
    if not 0 <= index < count:
        name = "points" if prompt.points else "box" if prompt.box is not None else "strokes"
        raise InputError(f"{name}: the prompt lies outside the volume (slice {index} of 0..{count - 1} along "
                         f"axis {AXIS_NAMES[axis]})")
    return SliceRef(axis, index)


def prompt_on_slice(volume: Volume, ref: SliceRef, prompt: SlicePrompt) -> SlicePrompt:
    """A RAS or IJK prompt as the pixel-frame prompt of slice `ref` (a pixel prompt is returned as is).

    Every coordinate is projected along the slice axis. Clicks must lie inside the volume and
    are rounded to whole pixels; a box becomes the rounded bounding box of its projected corners
    (2 RAS corners: the RAS-aligned box they span, 4 or 8: as given), refused without area;
    stroke vertices keep their fractions and may leave the slice (they are clipped where the
    strokes are drawn). A seed mask must have the slice's shape."""
    if prompt.frame == "pixel":
        return prompt
    frame = _checked_frame(volume, ref)

    def pixels(coordinates: np.ndarray) -> np.ndarray:
        return _voxel_to_pixel(frame, _prompt_voxels(volume, prompt, coordinates))

    points = None
    if prompt.points:
        coordinates = prompt.points_array()
        if prompt.frame == "ras":
            xy = ras_to_slice_pixels(volume, ref, coordinates)
        else:
            inside = volume.contains_ijk(coordinates)
            if not inside.all():
                bad = int(np.flatnonzero(~inside)[0])
                raise InputError(f"points: voxel {coordinates[bad].tolist()} lies outside the volume's "
                                 f"{' x '.join(map(str, volume.shape_ijk))} (i x j x k) voxels")
            xy = pixels(coordinates)
        points = np.clip(round_half_up(xy), 0, [frame.width - 1, frame.height - 1])
    box = None
    if prompt.box is not None:
        corners = prompt.box_array()
        if prompt.frame == "ras":
            box = ras_box_to_slice_box(volume, ref, np.concatenate([corners, corners]) if len(corners) == 4 else corners)
        else:
            projected = pixels(corners)
            low, high = projected.min(axis=0), projected.max(axis=0)
            x0, x1 = _rounded_span(low[0], high[0], frame.width, "box")
            y0, y1 = _rounded_span(low[1], high[1], frame.height, "box")
            if x1 <= x0 or y1 <= y0:
                raise InputError(f"box: the box covers {x1 - x0 + 1} x {y1 - y0 + 1} pixels on the slice; it has no area")
            box = np.array([[x0, y0], [x1, y1]], dtype=np.float64)
    if prompt.seed_mask is not None and prompt.seed_mask.shape != (frame.height, frame.width):
        raise InputError(f"seed_mask: expected the slice's shape {(frame.height, frame.width)}, "
                         f"got {prompt.seed_mask.shape}")
    return SlicePrompt.build(
        "pixel", points=points, labels=prompt.labels_array(), box=None if box is None else np.reshape(box, (2, 2)),
        scribbles=[pixels(s.array) for s in prompt.scribbles if s.positive],
        negative_scribbles=[pixels(s.array) for s in prompt.scribbles if not s.positive],
        lassos=[pixels(s.array) for s in prompt.lassos if s.positive],
        negative_lassos=[pixels(s.array) for s in prompt.lassos if not s.positive],
        mask_input=prompt.mask_input, seed_mask=prompt.seed_mask)
