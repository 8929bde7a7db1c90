"""2D images (PNG, JPEG, TIFF, BMP) as one-slice volumes.

A 2D image has no patient geometry: it becomes a `Volume` with k = 1, spacing 1, identity direction
and origin 0, whatever physical spacing the file may declare, so that pixel (x, y) is voxel
(i = x, j = y, k = 0) and the axial slice of the volume is the image as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume import Volume
from .formats import extension_of
from .integrity import check_image_file
from .sitk_convert import short_message, simpleitk, volume_from_sitk, volume_to_sitk, write_sitk_image


def read_image_2d(path) -> Volume:
    sitk = simpleitk()

    source = Path(path)
    if source.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty")
    check_image_file(source)  # SimpleITK zero-fills a truncated PNG or JPEG
    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as error:
        raise DataError(f"{source}: not a readable 2D image ({short_message(error)})") from error
    if image.GetDimension() != 2:
        raise DataError(f"{source}: expected a 2D image, got {image.GetDimension()}D of size {image.GetSize()}")
    volume = volume_from_sitk(image, str(source))
    return Volume(volume.array, rgb=volume.rgb)  # drop any declared pixel size: see the module docstring


def write_image_2d(volume: Volume, path) -> Path:
    target = Path(path)
    if volume.array.shape[0] != 1:
        raise InputError(f"output: {target.name} can hold one 2D slice; the volume has {volume.array.shape[0]} "
                         f"slices (write .nii.gz, .nrrd or .mha instead)")
    allowed = (np.uint8,) if extension_of(target) in (".jpg", ".jpeg") else (np.uint8, np.uint16, np.bool_)
    if volume.array.dtype.type not in allowed:
        names = ", ".join(np.dtype(t).name for t in allowed)
        raise InputError(f"output: {target.name} stores {names} pixels; this image is {volume.array.dtype} "
                         f"(map it to 8 bits first, e.g. with intensity.to_uint8)")
    write_sitk_image(volume_to_sitk(volume, as_2d=True), target)
    return target
