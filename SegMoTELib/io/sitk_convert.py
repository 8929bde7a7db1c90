"""SimpleITK image ⇄ `Volume`, with the shape rules SegMoTE accepts.

Accepted: 3D scalar volumes; 2D scalar images (one slice, k = 1); 2D RGB(A) images (alpha is
dropped) and a single-slice 3D RGB image. Refused with a message that says what was found: 4D
volumes (unless the 4th axis has length 1), multi-component 3D volumes (RGB series, vector fields,
tensors), RGB that is not 8-bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..volume import Volume
from .atomic import atomic_output
from .formats import extension_of


def simpleitk():
    """SimpleITK, with ITK's warnings off: they print several raw lines on stderr ("WARNING: In
    .../itkNiftiImageIO.cxx, line 2008 ... has unexpected scales in sform") ahead of SegMoTE's own
    one-line message, and what they warn of is checked here with a clear message (`integrity`,
    `dicom`) or is harmless. Errors still raise."""
    import SimpleITK

    SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)
    return SimpleITK


def volume_from_sitk(image, source: str, modality: str | None = None) -> Volume:
    """Convert a SimpleITK image read from `source` (named in errors) to a `Volume`."""
    sitk = simpleitk()
    image = _drop_singleton_fourth_axis(image, source)
    dimension = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    size = image.GetSize()
    if dimension not in (2, 3):
        raise DataError(f"{source}: {dimension}D images are not supported; expected a 2D image or a 3D volume")
    if 0 in size:
        raise DataError(f"{source}: the image is empty (size {size})")
    array = sitk.GetArrayFromImage(image)
    rgb = False
    if components > 1:
        single_slice = dimension == 2 or size[2] == 1
        if not single_slice or components not in (2, 3, 4):
            raise DataError(
                f"{source}: {components} components per voxel in a {dimension}D image of size {size}; "
                f"SegMoTE segments scalar 3D volumes and 2D grey or RGB images. Extract one component "
                f"(or convert RGB to grey) first")
        if array.dtype != np.uint8:
            raise DataError(f"{source}: RGB images must be 8-bit, this one is {array.dtype}; convert it to 8-bit first")
        if components == 2:  # grey + alpha: keep the grey
            array = array[..., 0]
        else:  # RGB or RGBA: keep RGB
            array = array[..., :3]
            rgb = True
    origin, spacing, direction = _geometry_3d(image)
    if dimension == 2:
        array = array[None]
    try:
        return Volume(array, origin, spacing, direction, modality=modality, rgb=rgb)
    except DataError:
        raise
    except ValueError as error:  # InputError from Volume: the file, not an argument, is at fault
        raise DataError(f"{source}: {error}") from error


def _drop_singleton_fourth_axis(image, source: str):
    if image.GetDimension() != 4:
        return image
    size = image.GetSize()
    if size[3] != 1:
        raise DataError(
            f"{source}: a 4D volume of size {size} ({size[3]} time points or channels); SegMoTE segments "
            f"3D volumes: extract one 3D volume first")
    extractor = simpleitk().ExtractImageFilter()
    extractor.SetSize([size[0], size[1], size[2], 0])
    extractor.SetIndex([0, 0, 0, 0])
    return extractor.Execute(image)


def _geometry_3d(image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin, spacing and direction of a 2D or 3D image as 3D LPS geometry."""
    dimension = image.GetDimension()
    origin = np.zeros(3)
    spacing = np.ones(3)
    direction = np.eye(3)
    origin[:dimension] = image.GetOrigin()
    spacing[:dimension] = image.GetSpacing()
    direction[:dimension, :dimension] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    return origin, spacing, direction


def volume_to_sitk(volume: Volume, as_2d: bool = False):
    """A SimpleITK image with the volume's voxels and geometry.

    `as_2d` (PNG/JPEG): a 2D image of the single slice; the 3D geometry is not representable there.
    """
    sitk = simpleitk()
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    if as_2d:
        if array.shape[0] != 1:
            raise DataError(f"a 2D image format holds one slice; this volume has {array.shape[0]}")
        return sitk.GetImageFromArray(np.ascontiguousarray(array[0]), isVector=volume.rgb)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=volume.rgb)
    image.SetOrigin(tuple(float(v) for v in volume.origin_lps))
    image.SetSpacing(tuple(float(v) for v in volume.spacing))
    image.SetDirection(tuple(float(v) for v in volume.direction_lps.reshape(-1)))
    return image


def short_message(error: Exception) -> str:
    """SimpleITK errors carry a C++ trace; the useful part is the last non-empty line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def write_sitk_image(image, target: Path) -> None:
    """Write a SimpleITK image atomically, compressed where the format allows it."""
    sitk = simpleitk()
    with atomic_output(target) as staged:
        try:
            sitk.WriteImage(image, str(staged), useCompression=extension_of(target) not in (".jpg", ".jpeg"))
        except RuntimeError as error:
            raise DataError(f"{target}: writing failed ({short_message(error)})") from error
