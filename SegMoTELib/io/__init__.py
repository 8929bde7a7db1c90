"""Reading and writing volumes, 2D images, LiteMedSAM npz files and segmentations.

Everything written goes through `atomic.atomic_output` (temporary file beside the target, then
rename). SimpleITK, pynrrd and slicerio are imported only when a file is read or written, so
importing this package is cheap.
"""

from .atomic import atomic_output, writable_target
from .formats import extension_of
from .npz import read_npz_case, write_npz_case
from .segmentation import (
    DEFAULT_COLORS,
    SegmentInfo,
    default_segment_color,
    default_segments,
    read_labelmap,
    read_segmentation,
    write_segmentation,
)
from .volumes import read_dicom_series, read_volume, write_volume

__all__ = [
    "DEFAULT_COLORS",
    "SegmentInfo",
    "atomic_output",
    "default_segment_color",
    "default_segments",
    "extension_of",
    "read_dicom_series",
    "read_labelmap",
    "read_npz_case",
    "read_segmentation",
    "read_volume",
    "writable_target",
    "write_npz_case",
    "write_segmentation",
    "write_volume",
]
