"""Reading and writing volumes, 2D images, LiteMedSAM npz files and segmentations.

Everything written goes through `atomic.atomic_output` (temporary file beside the target, then
rename). SimpleITK, pynrrd and slicerio are imported only when a file is read or written, so
importing this package is cheap.
"""

from .atomic import atomic_output, atomic_outputs, writable_target
from .folder_lock import FolderLock
from .formats import extension_of
from .integrity import check_image_file
from .npz import read_npz_case, write_npz_case
from .outputs import (
    check_free_space,
    output_errors,
    probe_writable,
    refuse_overwriting_input,
    writable_folder,
)
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
    "FolderLock",
    "atomic_output",
    "atomic_outputs",
    "check_free_space",
    "check_image_file",
    "default_segment_color",
    "default_segments",
    "extension_of",
    "output_errors",
    "probe_writable",
    "read_dicom_series",
    "read_labelmap",
    "read_npz_case",
    "read_segmentation",
    "read_volume",
    "refuse_overwriting_input",
    "writable_folder",
    "writable_target",
    "write_npz_case",
    "write_segmentation",
    "write_volume",
]
