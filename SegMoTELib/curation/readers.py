"""Reading 2D pairs and 3D studies for curation, with errors that name the file.

2D images keep their colours for export (grey stays grey, RGB stays RGB); statistics use the grey
slice (`metrics.to_grey`: ITU-R 601 luma for RGB). Images that are not 8-bit and all 3D studies go
through `SegMoTELib.intensity.to_uint8` with their modality; a study already stored as uint8 (e.g.
LiteMedSAM .npz) is taken as already mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..intensity import IntensityMapping, normalise_modality, to_uint8
from ..io.integrity import check_image_file
from ..io.sitk_convert import short_message
from .records import present_values
from .sources import Study


def mapping_for(modality: str | None) -> IntensityMapping:
    try:
        return IntensityMapping(modality=normalise_modality(modality))
    except InputError:
        return IntensityMapping(modality="auto")  # free-text modalities (e.g. "fundus") map as auto


def read_image_2d(path: str, modality: str | None = None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of an image file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV", "PA", "RGBX"):
                image = image.convert("RGB")
            elif mode in ("LA", "1"):
                image = image.convert("L")
            pixels = np.asarray(image)
    except Exception as error:  # noqa: BLE001 - any decoder failure (OSError, SyntaxError, zlib.error) is a bad file
        raise DataError(f"image {path}: cannot read it ({type(error).__name__}: {error})") from None
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels
    if pixels.ndim != 2:
        raise DataError(f"image {path}: expected a grey or RGB image, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        pixels = to_uint8(pixels, mapping_for(modality))
    return pixels


def read_labelmap_2d(path: str) -> np.ndarray:
    """Integer label map of a mask file (one channel; equal RGB channels accepted)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            labels = np.asarray(image)
    except Exception as error:  # noqa: BLE001 - any decoder failure is a bad file
        raise DataError(f"mask {path}: cannot read it ({type(error).__name__}: {error})") from None
    if labels.ndim == 3:
        if not (labels[..., :3] == labels[..., :1]).all():
            raise DataError(f"mask {path}: expected a one-channel label map, got a colour image")
        labels = labels[..., 0]
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.ndim != 2 or labels.dtype.kind not in "ui":
        raise DataError(f"mask {path}: expected an integer label map, got shape {labels.shape} dtype {labels.dtype}")
    return labels


def pair_labels(labelmap: np.ndarray, mask_path: str, label_names: tuple, default_name: str) -> list[tuple[int, int, str]]:
    """(label, mask value, name) of each label present; the set's first label when none is.

    Without labels.json the mask must be binary (0/1 or 0/255); with it, every value must be named.
    An empty mask still gives one record, so that the pair shows in the manifest and reject log.
    """
    values = present_values(labelmap)
    present = values[values != 0]
    if not label_names:
        if present.size > 1 or (present.size == 1 and present[0] not in (1, 255)):
            shown = ", ".join(str(v) for v in values[:8])
            raise DataError(f"mask {mask_path}: expected a binary mask (0/1 or 0/255), found values {shown}; "
                            "a multi-label set needs a labels.json naming its values")
        value = int(present[0]) if present.size else 1
        return [(1, value, default_name)]
    names = dict(label_names)
    unknown = [int(v) for v in present if int(v) not in names]
    if unknown:
        raise DataError(f"mask {mask_path}: value(s) {', '.join(map(str, unknown[:8]))} are not named in labels.json")
    if present.size == 0:
        first = min(names)
        return [(first, first, names[first])]
    return [(int(v), int(v), names[int(v)]) for v in present]


def read_study(study: Study, default_modality: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 volume [k, j, i], integer label map, modality) of a 3D study."""
    modality = study.modality or default_modality or "auto"
    if study.image.lower().endswith(".npz"):
        volume, labels = _read_npz(study.image)
    else:
        volume = _read_volume(study.image, "image")
        labels = _read_volume(study.label, "label")
    if volume.ndim != 3:
        raise DataError(f"image {study.image}: expected a 3D volume, got shape {volume.shape}")
    if labels.shape != volume.shape:
        raise DataError(f"label {study.label}: shape {labels.shape} differs from the image {study.image} shape {volume.shape}")
    labels = _integer_labels(labels, study.label)
    if volume.dtype != np.uint8:
        volume = to_uint8(volume, mapping_for(modality))
    return volume, labels, modality


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "imgs" not in data or "gts" not in data:
                raise DataError(f"study {path}: expected arrays 'imgs' and 'gts' (LiteMedSAM npz layout)")
            return np.asarray(data["imgs"]), np.asarray(data["gts"])
    except (OSError, ValueError) as error:
        raise DataError(f"study {path}: cannot read it ({error})") from None


def _read_volume(path: str, what: str) -> np.ndarray:
    import SimpleITK as sitk

    if not Path(path).is_file():
        raise DataError(f"{what} {path}: no such file")
    check_image_file(path)  # a truncated study would be zero-filled and counted as good
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise DataError(f"{what} {path}: cannot read it ({short_message(error)})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{what} {path}: expected a scalar volume, got {image.GetNumberOfComponentsPerPixel()} components")
    return sitk.GetArrayFromImage(image)


def _integer_labels(labels: np.ndarray, path: str) -> np.ndarray:
    if labels.dtype.kind in "ui":
        return labels
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        return labels.astype(np.int64)
    raise DataError(f"label {path}: expected integer label values, got dtype {labels.dtype} with fractions")
