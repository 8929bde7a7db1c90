"""The LiteMedSAM / MedSAM challenge `.npz` layout.

Keys: `imgs` (D, H, W) for a volume — (H, W) or (H, W, 3) for a 2D image —, optional `gts` of the
same shape without the colour axis (a label map), and the geometry `spacing`, `direction`, `origin`.

Geometry convention, inferred from the MedSAM2 DeepLesion files in ../shared/data and matching
how those files are made (SimpleITK: `GetArrayFromImage`, `GetSpacing`, `GetDirection`,
`GetOrigin`): `imgs` is indexed [k, j, i]; `spacing` is (i, j, k) in mm — the files have
(0.31, 0.31, 5.0) for 16 × 512 × 512 voxels, i.e. the 5 mm slice step last, on the D axis —;
`direction` is the 3 × 3 ITK direction flattened row by row (9 values); `origin` is LPS mm.
Missing geometry keys mean spacing 1, identity direction, origin 0. `imgs` in these files is
already windowed to uint8, so no modality is set: intensity "auto" passes uint8 through.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume import Volume
from .atomic import atomic_output


def read_npz_case(path) -> tuple[Volume, Volume | None]:
    """(image volume from `imgs`, label volume from `gts` or None)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    try:
        with np.load(source, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{source}: not a readable .npz archive ({error})") from error
    if "imgs" not in arrays:
        raise DataError(f"{source}: no 'imgs' array (keys: {', '.join(sorted(arrays)) or 'none'}); expected the "
                        f"LiteMedSAM layout imgs, gts, spacing, direction, origin")
    images = arrays["imgs"]
    labels = arrays.get("gts")
    rgb = images.ndim == 3 and images.shape[-1] == 3 and (labels is None or labels.ndim == 2)
    if images.ndim not in (2, 3):
        raise DataError(f"{source}: 'imgs' has shape {images.shape}; expected (D, H, W), (H, W) or (H, W, 3)")
    origin, spacing, direction = _geometry(arrays, source)
    try:
        image = Volume(images, origin, spacing, direction, rgb=rgb)
    except InputError as error:
        raise DataError(f"{source}: 'imgs': {error}") from error
    return image, (_label_volume(image, labels, source) if labels is not None else None)


def _vector3(arrays: dict, key: str, default: np.ndarray, meaning: str, source: Path) -> np.ndarray:
    """A 3-vector stored under `key` (2 values for a 2D case fill the first two), else `default`."""
    if key not in arrays:
        return default
    given = np.asarray(arrays[key], dtype=np.float64).reshape(-1)
    if given.size not in (2, 3):
        raise DataError(f"{source}: '{key}' has {given.size} values; expected 3 {meaning}")
    default[:given.size] = given
    return default


def _geometry(arrays: dict, source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spacing = _vector3(arrays, "spacing", np.ones(3), "(i, j, k) in mm", source)
    direction = np.eye(3)
    if "direction" in arrays:
        given = np.asarray(arrays["direction"], dtype=np.float64).reshape(-1)
        if given.size == 4:
            direction[:2, :2] = given.reshape(2, 2)
        elif given.size == 9:
            direction = given.reshape(3, 3)  # row-major, as ITK's GetDirection()
        else:
            raise DataError(f"{source}: 'direction' has {given.size} values; expected 9 (a row-major 3x3 matrix)")
    origin = _vector3(arrays, "origin", np.zeros(3), "(LPS mm)", source)
    return origin, spacing, direction


def _label_volume(image: Volume, labels: np.ndarray, source: Path) -> Volume:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.shape != image.array.shape[:3]:
        raise DataError(f"{source}: 'gts' has shape {labels.shape}; expected {image.array.shape[:3]} like 'imgs'")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError(f"{source}: 'gts' holds non-integer values; expected a label map")
        labels = labels.astype(np.int32)
    return image.with_array(labels)


def write_npz_case(path, image: Volume, labels: Volume | np.ndarray | None = None) -> Path:
    """Write the LiteMedSAM layout atomically (compressed); see the module docstring."""
    if not isinstance(image, Volume):
        raise InputError(f"image: expected a SegMoTELib Volume, got {type(image).__name__}")
    arrays = {
        "imgs": image.array[0] if image.rgb else image.array,
        "spacing": np.asarray(image.spacing, dtype=np.float64),
        "direction": np.asarray(image.direction_lps, dtype=np.float64).reshape(9),
        "origin": np.asarray(image.origin_lps, dtype=np.float64),
    }
    if labels is not None:
        label_array = labels.array if isinstance(labels, Volume) else np.asarray(labels)
        if label_array.shape != image.array.shape[:3]:
            raise InputError(f"labels: shape {label_array.shape} does not match the image {image.array.shape[:3]}")
        arrays["gts"] = label_array
    target = Path(path).expanduser()
    with atomic_output(target) as staged, open(staged, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target
