"""What curation makes of a file read through `SegMoTELib.io`: 8-bit pixels and integer label maps.

Every file is decoded by `SegMoTELib.io` (one reader for the whole engine); this module only adds
curation's rules. 2D images keep their colours for export (grey stays grey, RGB stays RGB);
statistics use the grey slice (`metrics.to_grey`: ITU-R 601 luma for RGB). Images that are not
8-bit and all 3D studies go through `SegMoTELib.intensity.to_uint8` with their modality; a study
already stored as uint8 (e.g. LiteMedSAM .npz) is taken as already mapped. Errors name the file
and keep io's reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, InputError, SegMoTEError
from ..intensity import IntensityMapping, normalise_modality, to_uint8
from .records import present_values
from .sources import Study


def mapping_for(modality: str | None) -> IntensityMapping:
    try:
        return IntensityMapping(modality=normalise_modality(modality))
    except InputError:
        return IntensityMapping(modality="auto")  # free-text modalities (e.g. "fundus") map as auto


def _reason(error: SegMoTEError, path) -> str:
    """io's message without the file name it starts with (ours names the file already)."""
    message = str(error)
    for prefix in (f"{Path(path).expanduser()}: ", f"{path}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _read(path, what: str):
    from ..io import read_volume

    try:
        return read_volume(path)
    except SegMoTEError as error:
        raise DataError(f"{what} {path}: cannot read it ({_reason(error, path)})") from None


def read_image_2d(path: str, modality: str | None = None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of an image file."""
    volume = _read(path, "image")
    if volume.array.shape[0] != 1:
        raise DataError(f"image {path}: expected a grey or RGB image, got shape {volume.array.shape}")
    pixels = volume.array[0]
    if volume.rgb:
        return pixels
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype != np.uint8:
        pixels = to_uint8(pixels, mapping_for(modality))
    return pixels


def read_labelmap_2d(path: str) -> np.ndarray:
    """Integer label map of a mask file (one channel; equal RGB channels accepted)."""
    volume = _read(path, "mask")
    labels = volume.array
    if labels.shape[0] != 1:
        raise DataError(f"mask {path}: expected a one-channel label map, got shape {labels.shape}")
    labels = labels[0]
    if volume.rgb:
        if not (labels == labels[..., :1]).all():
            raise DataError(f"mask {path}: expected a one-channel label map, got a colour image")
        labels = labels[..., 0]
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.dtype.kind not in "ui":
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
        image, label_volume = _read_npz(study.image)
    else:
        image = _read(study.image, "image")
        label_volume = _read(study.label, "label")
    volume, labels = image.array, label_volume.array
    if image.rgb or volume.ndim != 3:
        raise DataError(f"image {study.image}: expected a 3D volume, got shape {volume.shape}")
    if labels.shape != volume.shape:
        raise DataError(f"label {study.label}: shape {labels.shape} differs from the image {study.image} shape {volume.shape}")
    labels = _integer_labels(labels, study.label)
    if volume.dtype != np.uint8:
        volume = to_uint8(volume, mapping_for(modality))
    return volume, labels, modality


def _read_npz(path: str):
    from ..io import read_npz_case

    try:
        image, labels = read_npz_case(path)
    except SegMoTEError as error:
        raise DataError(f"study {path}: cannot read it ({_reason(error, path)})") from None
    if labels is None:
        raise DataError(f"study {path}: expected arrays 'imgs' and 'gts' (LiteMedSAM npz layout)")
    return image, labels


def _integer_labels(labels: np.ndarray, path: str) -> np.ndarray:
    if labels.dtype.kind in "ui":
        return labels
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        return labels.astype(np.int64)
    raise DataError(f"label {path}: expected integer label values, got dtype {labels.dtype} with fractions")
