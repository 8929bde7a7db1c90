"""`Volume`: a voxel array with its full patient geometry (origin, spacing, direction).

Conventions (docs/ARCHITECTURE.md):
- `array` is indexed `[k, j, i]`, the order of `SimpleITK.GetArrayFromImage` and of
  `slicer.util.arrayFromVolume`; `spacing`, `origin_lps` and the columns of `direction_lps` are in
  `(i, j, k)` order, exactly as ITK stores them.
- Geometry is kept in ITK's LPS world; Slicer's world is RAS = diag(-1, -1, 1) · LPS.
- A 2D image is a volume with one slice (`k = 1`); a 2D RGB image is `(1, H, W, 3)` uint8 with
  `rgb=True`. Nothing else multi-component is representable, on purpose.

Pure numpy: no SimpleITK, no torch, no slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

# RAS = LPS_TO_RAS @ LPS (and the matrix is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DIRECTION_UNIT_TOLERANCE = 1e-4
_MIN_ABS_DETERMINANT = 1e-6


def _as_vector3(value, name: str) -> np.ndarray:
    vector = np.asarray(value, dtype=np.float64).reshape(-1)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise InputError(f"{name}: expected 3 finite numbers, got {np.asarray(value).tolist()!r}")
    return vector


def _as_direction(value) -> np.ndarray:
    direction = np.asarray(value, dtype=np.float64)
    if direction.size == 9:
        direction = direction.reshape(3, 3)
    if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
        raise InputError(f"direction_lps: expected a finite 3x3 matrix, got shape {direction.shape}")
    norms = np.linalg.norm(direction, axis=0)
    if np.any(np.abs(norms - 1.0) > _DIRECTION_UNIT_TOLERANCE):
        raise InputError(
            f"direction_lps: each column (i, j, k axis direction) must have unit length, got lengths "
            f"{np.round(norms, 6).tolist()}; put the voxel size in `spacing`")
    if abs(np.linalg.det(direction)) < _MIN_ABS_DETERMINANT:
        raise InputError("direction_lps: the axis directions are degenerate (determinant 0)")
    return direction


def _as_voxels(array, rgb: bool) -> np.ndarray:
    array = np.asarray(array)
    if rgb and array.ndim == 3 and array.shape[-1] == 3:
        array = array[None]  # (H, W, 3) -> (1, H, W, 3)
    elif not rgb and array.ndim == 2:
        array = array[None]  # (H, W) -> (1, H, W)
    if rgb:
        if array.ndim != 4 or array.shape[0] != 1 or array.shape[-1] != 3:
            raise InputError(f"array: an RGB image must have shape (1, H, W, 3), got {array.shape}")
        if array.dtype != np.uint8:
            raise InputError(f"array: an RGB image must be uint8, got {array.dtype}")
    elif array.ndim != 3:
        raise InputError(
            f"array: expected a 3D array indexed [k, j, i] (or a 2D image), got shape {array.shape}; "
            f"4D and multi-component volumes are not supported")
    if array.size == 0:
        raise InputError(f"array: the volume is empty (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise InputError(f"array: unsupported voxel type {array.dtype}; expected integers, floats or bool")
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"array: {bad} voxels are NaN or infinite; voxel values must be finite")
    return array


@dataclass(frozen=True, eq=False)
class Volume:
    """Voxels `[k, j, i]` plus ITK/LPS geometry; see the module docstring for conventions."""

    array: np.ndarray
    origin_lps: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    direction_lps: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str | None = None
    rgb: bool = False

    def __post_init__(self) -> None:
        spacing = _as_vector3(self.spacing, "spacing")
        if np.any(spacing <= 0):
            raise InputError(f"spacing: voxel sizes must be positive, got {spacing.tolist()}")
        geometry = {
            "array": _as_voxels(self.array, bool(self.rgb)),
            "origin_lps": _as_vector3(self.origin_lps, "origin_lps"),
            "spacing": spacing,
            "direction_lps": _as_direction(self.direction_lps),
            "rgb": bool(self.rgb),
        }
        for name, value in geometry.items():
            if isinstance(value, np.ndarray) and name != "array":
                value = value.copy()
                value.flags.writeable = False  # geometry is shared by labelmaps: never edit it in place
            object.__setattr__(self, name, value)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_ijk_to_ras(cls, array_kji, ijk_to_ras, modality: str | None = None, rgb: bool = False) -> Volume:
        """From what Slicer gives: `GetIJKToRASMatrix` (composed with the parent transform).

        The matrix may hold a rotation, flips and any voxel size: spacing = the column norms,
        direction = the normalised columns (converted to LPS).
        """
        matrix = np.asarray(ijk_to_ras, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise InputError(f"ijk_to_ras: expected a finite 4x4 matrix, got shape {matrix.shape}")
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise InputError(f"ijk_to_ras: the last row must be 0 0 0 1, got {matrix[3].tolist()}")
        ijk_to_lps = LPS_TO_RAS @ matrix
        linear = ijk_to_lps[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        if np.any(spacing <= 0):
            raise InputError("ijk_to_ras: a voxel axis has zero length (singular matrix)")
        return cls(array_kji, ijk_to_lps[:3, 3], spacing, linear / spacing, modality=modality, rgb=rgb)

    def with_array(self, new_array, modality: str | None = None) -> Volume:
        """A volume with this geometry and other voxels (a labelmap, a probability map)."""
        new_array = np.asarray(new_array)
        expected = self.array.shape[:3]
        rgb = new_array.ndim == 4 and new_array.shape[-1] == 3
        if new_array.shape[:3] != expected or (new_array.ndim == 4 and not rgb) or new_array.ndim < 3:
            raise InputError(f"array: expected shape {expected} [k, j, i] to match the volume, got {new_array.shape}")
        return Volume(new_array, self.origin_lps, self.spacing, self.direction_lps, modality=modality, rgb=rgb)

    # --- geometry -----------------------------------------------------------------------------
    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k (the reverse of `array.shape[:3]`)."""
        k, j, i = self.array.shape[:3]
        return int(i), int(j), int(k)

    @property
    def direction_ras(self) -> np.ndarray:
        """Columns = the i, j, k axis directions in RAS."""
        return LPS_TO_RAS[:3, :3] @ self.direction_lps

    @property
    def ijk_to_lps(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction_lps * self.spacing  # scales column c by spacing[c]
        matrix[:3, 3] = self.origin_lps
        return matrix

    @property
    def ijk_to_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.ijk_to_lps

    @property
    def lps_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_lps)

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    def ijk_to_ras_points(self, ijk) -> np.ndarray:
        """Continuous voxel coordinates (N, 3) in i, j, k order -> RAS millimetres (N, 3)."""
        points = as_points(ijk, "ijk")
        return points @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, points_ras) -> np.ndarray:
        """RAS millimetres (N, 3) -> continuous voxel coordinates (N, 3), i, j, k order."""
        points = as_points(points_ras, "points_ras")
        lps = points * np.array([-1.0, -1.0, 1.0]) - self.origin_lps
        # Solve instead of inverting: exact to rounding for any (even non-orthogonal) direction.
        return np.linalg.solve(self.direction_lps * self.spacing, lps.T).T

    def contains_ijk(self, ijk) -> np.ndarray:
        """Which continuous voxel coordinates round to a voxel inside the volume (N,) bool."""
        rounded = round_half_up(as_points(ijk, "ijk"))
        return np.all((rounded >= 0) & (rounded < np.array(self.shape_ijk)), axis=1)

    def __repr__(self) -> str:
        return (f"Volume(shape_kji={self.array.shape}, dtype={self.array.dtype}, "
                f"spacing={np.round(self.spacing, 6).tolist()}, origin_lps={np.round(self.origin_lps, 6).tolist()}, "
                f"modality={self.modality!r}, rgb={self.rgb})")


def round_half_up(values) -> np.ndarray:
    """Round to the nearest integer, halves upwards (never truncate; no banker's rounding)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)


def as_points(points, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise InputError(f"{name}: expected points of shape (N, 3), got {np.asarray(points).shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: coordinates must be finite numbers")
    return array
