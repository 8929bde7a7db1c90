"""File-name conventions: which format a path means (double extensions included)."""

from __future__ import annotations

from pathlib import Path

# Longest first so that ".seg.nrrd" wins over ".nrrd" and ".nii.gz" over ".gz".
_KNOWN_EXTENSIONS = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npz",
                     ".png", ".jpg", ".jpeg", ".dcm", ".tif", ".tiff", ".bmp")

VOLUME_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_2D_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
WRITABLE_EXTENSIONS = VOLUME_EXTENSIONS + (".png", ".jpg", ".jpeg", ".npz", ".seg.nrrd")


def extension_of(path) -> str:
    """The lower-case format extension of `path` ('.nii.gz', '.seg.nrrd', '.png', ...), or ''."""
    name = Path(path).name.lower()
    for extension in _KNOWN_EXTENSIONS:
        if name.endswith(extension):
            return extension
    return Path(name).suffix
