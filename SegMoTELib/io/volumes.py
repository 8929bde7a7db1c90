"""Read and write volumes: NIfTI, NRRD, MHA/MHD, DICOM series (a folder), 2D images, npz.

`read_volume(path)` picks the reader from the extension (a folder is a DICOM series) and returns a
`Volume` with its full geometry; `write_volume(volume, path)` writes atomically. Any failure names
the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, InputError
from ..volume import Volume
from .dicom import MODALITY_TAG, read_dicom_series
from .formats import IMAGE_2D_EXTENSIONS, VOLUME_EXTENSIONS, WRITABLE_EXTENSIONS, extension_of
from .integrity import check_image_file
from .sitk_convert import short_message, simpleitk, volume_from_sitk, volume_to_sitk, write_sitk_image

__all__ = ["read_dicom_series", "read_volume", "write_volume"]


def read_volume(path, series_uid: str | None = None, confine_to=None) -> Volume:
    """Read a 3D volume or a 2D image as a `Volume`.

    `confine_to` (folders): read only if the file and every file its header names lie under one
    of them, an `AccessError` otherwise (`confinement.py`; the service's --data-root).

    Folders are read as a DICOM series (`series_uid` picks one when the folder holds several;
    otherwise the series with most files is used and the choice is logged). `.npz` files give
    their `imgs` array (see `io.npz`). 2D PNG/JPEG images become one slice, spacing 1, identity
    direction. Float volumes with NaN or infinite voxels are refused.
    """
    source = Path(path).expanduser()
    if confine_to is not None:
        from .confinement import confine

        source = confine(source, confine_to)  # before anything says whether a file exists
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if source.is_dir():
        return read_dicom_series(source, series_uid)
    extension = extension_of(source)
    if extension == ".npz":
        from .npz import read_npz_case

        return read_npz_case(source)[0]
    if extension in IMAGE_2D_EXTENSIONS:
        from .images2d import read_image_2d

        return read_image_2d(source)
    return _read_with_sitk(source)


def read_volume_geometry(path) -> Volume:
    """What `read_volume` would give, without decoding the voxels where the format allows it: a
    `Volume` whose geometry and shape are the file's and whose `array` is a read-only view of
    zeros. For checking prompts against many files in seconds (`segmote batch --check`). The file
    passes the same integrity checks as for `read_volume` (a truncated file fails here too); DICOM
    folders, .npz and 2D images are read whole."""
    import numpy as np

    source = Path(path).expanduser()
    extension = extension_of(source)
    if not source.is_file() or extension not in VOLUME_EXTENSIONS:
        return read_volume(source)
    if source.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty")
    check_image_file(source)
    sitk = simpleitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(source))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise DataError(f"{source}: not a readable image ({short_message(error)})") from error
    size = list(reader.GetSize())
    if len(size) == 4 and size[3] == 1:
        size = size[:3]
    components = reader.GetNumberOfComponents()
    if len(size) not in (2, 3) or 0 in size or (components > 1 and len(size) == 3 and size[2] != 1):
        return read_volume(source)  # let the full reader give its message for shapes SegMoTE refuses
    dimension = len(size)
    header = sitk.Image([1] * dimension, sitk.sitkUInt8)
    header.SetOrigin(reader.GetOrigin()[:dimension])
    header.SetSpacing(reader.GetSpacing()[:dimension])
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(len(reader.GetSize()), -1)
    header.SetDirection(tuple(direction[:dimension, :dimension].reshape(-1)))
    shape = tuple(reversed(size)) if dimension == 3 else (1, size[1], size[0])
    volume = volume_from_sitk(header, str(source))
    return Volume(np.broadcast_to(np.zeros((), dtype=np.uint8), shape), volume.origin_lps, volume.spacing,
                  volume.direction_lps)


def _read_with_sitk(source: Path) -> Volume:
    sitk = simpleitk()

    if source.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty")
    check_image_file(source)  # SimpleITK zero-fills a truncated file and reads pixdim 0 as 1 mm
    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as error:
        raise DataError(f"{source}: not a readable image ({short_message(error)}); expected one of "
                        f"{', '.join(VOLUME_EXTENSIONS)}, a 2D image, .npz or a DICOM folder") from error
    modality = image.GetMetaData(MODALITY_TAG).strip() if image.HasMetaDataKey(MODALITY_TAG) else None
    return volume_from_sitk(image, str(source), modality=modality or None)


def write_volume(volume: Volume, path) -> Path:
    """Write `volume` to `path` atomically; the extension picks the format.

    `.nii(.gz)`, `.nrrd`, `.nhdr`, `.mha`, `.mhd` keep the full geometry; `.png`/`.jpg` hold one
    slice of uint8 (or uint16 for PNG) and no geometry; `.npz` uses the LiteMedSAM layout;
    `.seg.nrrd` goes through `write_segmentation`. Returns the path written.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"volume: expected a SegMoTELib Volume, got {type(volume).__name__}")
    target = Path(path).expanduser()
    extension = extension_of(target)
    if extension == ".seg.nrrd":
        from .seg_nrrd import default_segments, write_seg_nrrd

        return write_seg_nrrd(target, volume, default_segments(volume.array))
    if extension == ".npz":
        from .npz import write_npz_case

        return write_npz_case(target, volume)
    if extension in IMAGE_2D_EXTENSIONS:
        from .images2d import write_image_2d

        return write_image_2d(volume, target)
    if extension not in VOLUME_EXTENSIONS:
        raise InputError(f"output: unknown format {extension or '(no extension)'!r} for {target}; expected one "
                         f"of {', '.join(WRITABLE_EXTENSIONS)} (DICOM is read-only)")
    write_sitk_image(volume_to_sitk(volume), target)
    return target
