"""DICOM series (a folder of single-slice files) as a `Volume`, refusing a half-read study.

ITK reads whatever files GDCM could parse: a truncated or damaged file is left out of the series
without a word, and a missing slice only logs "Non uniform sampling or missing slices detected",
after which the volume gets the average spacing, so every slice past the gap is misplaced. Both
are refused here with the file or the slices named.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume import Volume
from .sitk_convert import short_message, simpleitk, volume_from_sitk

log = logging.getLogger(__name__)
MODALITY_TAG = "0008|0060"
POSITION_TAG = "0020|0032"     # Image Position (Patient)
ORIENTATION_TAG = "0020|0037"  # Image Orientation (Patient)
SPACING_TOLERANCE = 0.05       # of the series' usual slice distance: rounding, not a missing slice


def read_dicom_series(folder, series_uid: str | None = None) -> Volume:
    """Read one DICOM series from a folder (not recursive)."""
    sitk = simpleitk()

    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    series = list(reader.GetGDCMSeriesIDs(str(folder)))
    files_of = {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in series}
    _refuse_unreadable_files(folder, [name for names in files_of.values() for name in names])
    if not series:
        raise DataError(f"{folder}: the folder holds no DICOM series")
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"series_uid: {series_uid!r} is not in {folder}; it holds {', '.join(series)}")
        chosen = series_uid
    else:
        chosen = max(series, key=lambda uid: len(files_of[uid]))
        if len(series) > 1:
            log.warning("%s holds %d DICOM series; reading %s (%d files), the largest. Pass series_uid "
                        "to choose another.", folder, len(series), chosen, len(files_of[chosen]))
    reader.SetFileNames(files_of[chosen])
    reader.MetaDataDictionaryArrayUpdateOn()
    try:  # ITK's multi-line spacing warning is off (`simpleitk()`): the check below says it in one
        image = reader.Execute()
    except RuntimeError as error:
        raise DataError(f"{folder}: DICOM series {chosen} is unreadable ({short_message(error)})") from error
    _refuse_uneven_slices(reader, len(files_of[chosen]), f"{folder}: DICOM series {chosen}")
    modality = reader.GetMetaData(0, MODALITY_TAG).strip() if reader.HasMetaDataKey(0, MODALITY_TAG) else None
    return volume_from_sitk(image, f"{folder} (series {chosen})", modality=modality or None)


def _refuse_unreadable_files(folder: Path, listed: list[str]) -> None:
    """Image files of DICOM that no series lists: GDCM dropped them (truncated or damaged)."""
    known = {Path(name).resolve() for name in listed}
    unread = [path for path in sorted(folder.iterdir())
              if path.is_file() and path.resolve() not in known and _dropped_dicom_image(path)]
    if unread:
        names = ", ".join(path.name for path in unread[:5]) + (f" and {len(unread) - 5} more" if len(unread) > 5 else "")
        raise DataError(f"{folder}: {len(unread)} DICOM file(s) could not be read ({names}); they may be truncated "
                        f"or damaged, and the series would miss their slices. Copy the study again, or move "
                        f"those files out of the folder to read the rest")


def _dropped_dicom_image(path: Path) -> bool:
    """A DICOM file (its 'DICM' mark, or a .dcm name) that is an image, or whose header is unreadable;
    not a DICOMDIR, structured report or other object without pixels, which no image series lists."""
    sitk = simpleitk()
    if path.name.upper() == "DICOMDIR":
        return False
    if path.suffix.lower() not in (".dcm", ".dicom"):
        try:
            with path.open("rb") as stream:
                if stream.read(132)[128:132] != b"DICM":
                    return False
        except OSError:
            return False
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return True  # a DICOM file whose header does not even parse
    return reader.HasMetaDataKey("0028|0010")  # Rows: an image GDCM left out of every series


def _refuse_uneven_slices(reader, count: int, where: str) -> None:
    """Slice positions along the slice normal must step evenly: a gap is a missing slice."""
    if count < 3:
        return
    try:
        positions = np.array([[float(v) for v in reader.GetMetaData(i, POSITION_TAG).split("\\")]
                              for i in range(count)])
        cosines = [float(v) for v in reader.GetMetaData(0, ORIENTATION_TAG).split("\\")]
    except (RuntimeError, ValueError):  # positions or orientation absent or malformed: nothing to check
        return
    if positions.shape != (count, 3) or len(cosines) != 6:
        return
    along = np.sort(positions @ np.cross(cosines[:3], cosines[3:]))
    steps = np.diff(along)
    usual = float(np.median(steps))
    if usual <= 1e-6:
        raise DataError(f"{where}: several slices share one position (two acquisitions in one series?); "
                        f"pick the files of one acquisition into a folder of their own")
    uneven = np.flatnonzero(np.abs(steps - usual) > SPACING_TOLERANCE * usual)
    if uneven.size:
        first = int(uneven[0])
        raise DataError(f"{where}: slices {first} and {first + 1} (of {count}) lie {steps[first]:.3g} mm apart where "
                        f"the others lie {usual:.3g} mm apart: a slice is missing (or the spacing varies), and the "
                        f"volume would be misplaced past it. Copy the study again, or resample it to even spacing")
