"""Slicer's `.seg.nrrd` format: named, coloured segments over one labelmap, through `slicerio`.

A segmentation is a labelmap `Volume` (integers [k, j, i], 0 = background) plus a list of
`SegmentInfo(name, label, color)`. Files written here load in Slicer as a segmentation node with the
same names, colours and label values. This module knows only this format; `segmentation.py` picks
between it and plain labelmap files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..names import validate_segment_name
from ..volume import LPS_TO_RAS, Volume
from .atomic import atomic_output

# Colours of Slicer's GenericAnatomyColors table (tissue, bone, skin, connective tissue, blood,
# organ, mass, muscle, foreign object, waste, teeth, fat, grey matter, white matter, nerve, vein):
# what Slicer itself gives new segments, so files look familiar there.
DEFAULT_COLORS: tuple[tuple[float, float, float], ...] = tuple(
    (r / 255.0, g / 255.0, b / 255.0) for r, g, b in (
        (128, 174, 128), (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79),
        (221, 130, 101), (144, 238, 144), (192, 104, 88), (220, 245, 20), (78, 63, 0),
        (255, 250, 220), (230, 220, 70), (200, 200, 235), (250, 250, 210), (244, 214, 49),
        (0, 151, 206)))

SEGMENTATION_EXTENSION = ".seg.nrrd"
_COMPRESSION_LEVEL = 6  # slicerio's default 9 is several times slower for a few % smaller files


def default_segment_color(label: int) -> tuple[float, float, float]:
    """The colour a new segment with this label value gets (cycles through DEFAULT_COLORS)."""
    return DEFAULT_COLORS[(int(label) - 1) % len(DEFAULT_COLORS)]


@dataclass(frozen=True)
class SegmentInfo:
    """One segment: its name, its value in the labelmap, its colour (r, g, b in 0..1)."""

    name: str
    label: int
    color: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        validate_segment_name(self.name)  # a newline would inject lines into the .seg.nrrd header
        if isinstance(self.label, bool) or int(self.label) != self.label or not 1 <= int(self.label) <= 65535:
            raise InputError(f"segment {self.name!r}: label must be an integer in 1..65535, got {self.label!r}")
        object.__setattr__(self, "label", int(self.label))
        color = default_segment_color(self.label) if self.color is None else self.color
        color = tuple(float(c) for c in color)
        if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
            raise InputError(f"segment {self.name!r}: color must be 3 numbers in 0..1 (r, g, b), got {self.color!r}")
        object.__setattr__(self, "color", color)


def default_segments(labels) -> list[SegmentInfo]:
    """`Segment_<label>` with the default colour for each non-zero value of a labelmap array."""
    values = np.unique(np.asarray(labels))
    return [SegmentInfo(f"Segment_{int(v)}", int(v)) for v in values if v != 0]


# --- writing ---------------------------------------------------------------------------------
def write_seg_nrrd(target: Path, labelmap: Volume, segments: list[SegmentInfo]) -> Path:
    """Write `labelmap` with `segments` (which must describe each non-zero value) atomically."""
    if not isinstance(labelmap, Volume) or labelmap.rgb:
        raise InputError("labelmap: expected a scalar SegMoTELib Volume (e.g. volume.with_array(mask))")
    voxels = checked_label_voxels(labelmap.array, segments)
    _write(Path(target), labelmap.with_array(voxels), segments)
    return Path(target)


def checked_label_voxels(array: np.ndarray, segments: list[SegmentInfo]) -> np.ndarray:
    if array.dtype.kind not in "biu":
        raise InputError(f"labelmap: expected integer or bool voxels, got {array.dtype}")
    for segment in segments:
        if not isinstance(segment, SegmentInfo):
            raise InputError(f"segments: expected SegmentInfo items, got {type(segment).__name__}")
    labels = [segment.label for segment in segments]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise InputError(f"segments: label values {duplicates} are used by more than one segment")
    present = {int(v) for v in np.unique(array) if v != 0}
    if any(v < 0 for v in present):
        raise InputError(f"labelmap: negative label values {sorted(v for v in present if v < 0)}")
    undescribed = sorted(present - set(labels))
    if undescribed:
        raise InputError(f"segments: the labelmap holds values {undescribed} that no segment describes")
    top = max(labels + [0])
    return array.astype(np.uint8 if top <= 255 else np.uint16, copy=False)


def _write(target: Path, labelmap: Volume, segments: list[SegmentInfo]) -> None:
    _write_layers(target, labelmap, [labelmap.array], segments, [0] * len(segments))


def write_segment_masks(target, geometry: Volume, masks: list[tuple[str, tuple | None, np.ndarray]]) -> Path:
    """Write one segment per (name, colour or None, bool mask [k, j, i]) atomically, each mask
    whole: a segment that overlaps earlier ones goes to a further layer, as Slicer stores
    overlapping segments (one labelmap per layer, a 4D file when there are several)."""
    layers: list[np.ndarray] = []
    segments, layer_of = [], []
    for number, (name, color, mask) in enumerate(masks, start=1):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != geometry.array.shape[:3]:
            raise InputError(f"segment {name!r}: mask shape {mask.shape} differs from the volume's {geometry.array.shape[:3]}")
        layer = next((index for index, voxels in enumerate(layers) if not voxels[mask].any()), len(layers))
        if layer == len(layers):
            layers.append(np.zeros(mask.shape, dtype=np.uint8 if len(masks) <= 255 else np.uint16))
        layers[layer][mask] = number
        segments.append(SegmentInfo(name, number, color))
        layer_of.append(layer)
    labelmap = geometry.with_array(layers[0] if layers else np.zeros(geometry.array.shape[:3], dtype=np.uint8))
    _write_layers(Path(target), labelmap, layers or [labelmap.array], segments, layer_of)
    return Path(target)


def _write_layers(target: Path, geometry: Volume, layers: list[np.ndarray], segments: list[SegmentInfo],
                  layer_of: list[int]) -> None:
    for segment in segments:  # pynrrd writes ASCII header lines only: a UnicodeEncodeError otherwise
        validate_segment_name(segment.name, "segment name", ascii_only=True)
    slicerio = _slicerio()
    # slicerio (pynrrd, Fortran order) indexes voxels [i, j, k]; ours are [k, j, i].
    voxels = [layer.transpose(2, 1, 0) for layer in layers]
    segmentation = {
        "voxels": voxels[0] if len(voxels) == 1 else np.stack(voxels),
        "ijkToLPS": geometry.ijk_to_lps,
        "encoding": "gzip",
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": [
            {"id": f"Segment_{s.label}", "name": s.name, "nameAutoGenerated": False,
             "color": list(s.color), "colorAutoGenerated": False, "labelValue": s.label, "layer": layer,
             "extent": _segment_extent(layers[layer] == s.label)}
            for s, layer in zip(segments, layer_of)],
    }
    with atomic_output(target) as staged:
        slicerio.write_segmentation(str(staged), segmentation, compression_level=_COMPRESSION_LEVEL)


def _segment_extent(mask_kji: np.ndarray) -> list[int]:
    """Slicer's 'Extent' field: i0 i1 j0 j1 k0 k1 of the segment's voxels (empty: 0 -1 ...)."""
    if not mask_kji.any():
        return [0, -1, 0, -1, 0, -1]
    extent = []
    for axis in (2, 1, 0):  # i, j, k
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask_kji.any(axis=other))
        extent += [int(present[0]), int(present[-1])]
    return extent


# --- reading -----------------------------------------------------------------------------------
def has_segment_fields(source: Path) -> bool:
    import nrrd

    try:
        header = nrrd.read_header(str(source))
    except Exception as error:  # pynrrd raises several types for a corrupt header
        raise DataError(f"{source}: not a readable NRRD file ({error})") from error
    return any(key.startswith("Segment0_") for key in header)


def read_seg_nrrd(source: Path) -> tuple[Volume, list[SegmentInfo]]:
    slicerio = _slicerio()
    try:
        segmentation = slicerio.read_segmentation(str(source))
    except Exception as error:  # slicerio/pynrrd raise IOError, ValueError, NRRDError...
        raise DataError(f"{source}: not a readable Slicer segmentation ({error})") from error
    voxels = np.asarray(segmentation["voxels"])
    layers = [voxels] if voxels.ndim == 3 else list(voxels)
    labelmap, segments = _merge_layers(layers, segmentation.get("segments", []), source)
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"], dtype=np.float64)
    try:
        volume = Volume.from_ijk_to_ras(labelmap.transpose(2, 1, 0), LPS_TO_RAS @ ijk_to_lps)
    except InputError as error:
        raise DataError(f"{source}: {error}") from error
    return volume, segments


def read_segment_masks(source: Path) -> tuple[Volume, list[tuple[SegmentInfo, np.ndarray]]]:
    """(geometry, [(segment, bool mask [k, j, i])]) of a `.seg.nrrd`, overlapping segments
    included (what `write_segment_masks` writes and Slicer saves)."""
    slicerio = _slicerio()
    try:
        segmentation = slicerio.read_segmentation(str(source))
    except Exception as error:  # slicerio/pynrrd raise IOError, ValueError, NRRDError...
        raise DataError(f"{source}: not a readable Slicer segmentation ({error})") from error
    voxels = np.asarray(segmentation["voxels"])
    layers = [voxels] if voxels.ndim == 3 else list(voxels)
    masks = []
    for number, field in enumerate(segmentation.get("segments", []), start=1):
        layer = int(field.get("layer", 0))
        if not 0 <= layer < len(layers) or "labelValue" not in field:
            raise DataError(f"{source}: segment {number} names no valid layer and label value")
        color = field.get("color")
        info = SegmentInfo(str(field.get("name") or field.get("id") or f"Segment_{number}"), number,
                           tuple(color) if color is not None else None)
        masks.append((info, (layers[layer] == int(field["labelValue"])).transpose(2, 1, 0)))
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"], dtype=np.float64)
    try:
        geometry = Volume.from_ijk_to_ras(np.zeros(layers[0].shape[::-1], dtype=np.uint8), LPS_TO_RAS @ ijk_to_lps)
    except InputError as error:
        raise DataError(f"{source}: {error}") from error
    return geometry, masks


def _merge_layers(layers: list[np.ndarray], fields: list[dict], source: Path) -> tuple[np.ndarray, list[SegmentInfo]]:
    """One labelmap [i, j, k] and the segments of a (possibly multi-layer) Slicer segmentation."""
    single_layer = len(layers) == 1 and all(int(field.get("layer", 0)) == 0 for field in fields)
    merged = layers[0] if single_layer else np.zeros(layers[0].shape, dtype=np.uint16)
    used: set[int] = set()
    segments = []
    for number, field in enumerate(fields):
        name = str(field.get("name") or field.get("id") or f"Segment_{number + 1}")
        if "labelValue" not in field:
            raise DataError(f"{source}: segment {name!r} has no label value")
        label = int(field["labelValue"])
        layer = int(field.get("layer", 0))
        if not 0 <= layer < len(layers):
            raise DataError(f"{source}: segment {name!r} is on layer {layer}; the file has {len(layers)}")
        if single_layer:
            new_label = label
        else:  # two layers may both use label 1: renumber the later one
            new_label = label if label not in used else max(used) + 1
            mask = layers[layer] == label
            if np.any(merged[mask] != 0):
                raise DataError(f"{source}: segment {name!r} overlaps another segment; SegMoTE reads "
                                f"non-overlapping segmentations only")
            merged[mask] = new_label
        used.add(new_label)
        color = field.get("color")
        segments.append(SegmentInfo(name, new_label, tuple(color) if color is not None else None))
    return merged, segments


def _slicerio():
    try:
        import slicerio
    except ImportError as error:  # Slicer's own Python does not ship it
        raise DataError("writing/reading .seg.nrrd files needs the 'slicerio' package (pip install slicerio)") from error
    return slicerio
