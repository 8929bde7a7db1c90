"""Curation records: one per (slice, label), with identity, metrics, gate verdicts and score.

Record keys: `record_id`, `source`, `dataset`, `case`, `slice_index` (None for 2D images that
are not slices of a volume), `label` (value in the label map), `mask_value` (the pixel value that
marks the label in the mask file: 255 for 0/255 binary masks), `label_name`, `modality`,
`image_file`, `mask_file`, `axis` (None for 2D), every name of `metrics.METRIC_NAMES`, every
gate of `gates.GATE_NAMES` (True = passed), `passed`, `failures` (text) and `score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .config import QCConfig
from .gates import apply_quality
from .metrics import CHUNK, METRIC_NAMES, metrics_for_masks

IDENTITY_FIELDS = ("record_id", "source", "dataset", "case", "slice_index", "label", "mask_value",
                   "label_name", "modality", "image_file", "mask_file", "axis")


@dataclass
class LabelledSlice:
    """A grey uint8 slice, its label map, the labels to measure and the identity of its records."""

    grey: np.ndarray
    labelmap: np.ndarray
    labels: list[tuple[int, int, str]]  # (label, mask_value, label_name)
    identity: dict = field(default_factory=dict)


def make_record_id(dataset: str, case: str, slice_index, label: int, axis=None, stem: str | None = None) -> str:
    where = stem if stem is not None else f"{case}/axis{axis}/slice{int(slice_index):04d}"
    return f"{dataset}/{where}#label{label}"


def measure_slices(slices: list[LabelledSlice]) -> list[dict]:
    """One metric record per (slice, label), in input order; image statistics once per slice."""
    records: list[dict | None] = []
    jobs: dict[tuple, list[tuple[int, int, int]]] = {}  # shape -> [(slice number, label pos, record pos)]
    for number, item in enumerate(slices):
        for position, (label, mask_value, label_name) in enumerate(item.labels):
            record = dict(item.identity)
            record.update(label=int(label), mask_value=int(mask_value), label_name=label_name)
            jobs.setdefault(item.grey.shape, []).append((number, position, len(records)))
            records.append(record)
    for shape_jobs in jobs.values():
        slice_numbers = sorted({number for number, _, _ in shape_jobs})
        for start in range(0, len(slice_numbers), CHUNK):
            chunk = slice_numbers[start:start + CHUNK]
            local = {number: k for k, number in enumerate(chunk)}
            chunk_jobs = [job for job in shape_jobs if job[0] in local]
            images = np.stack([slices[number].grey for number in chunk])
            masks = np.stack([slices[number].labelmap == slices[number].labels[position][1]
                              for number, position, _ in chunk_jobs])
            values = metrics_for_masks(images, masks, np.array([local[number] for number, _, _ in chunk_jobs]))
            for k, (_, _, record_position) in enumerate(chunk_jobs):
                for name in METRIC_NAMES:
                    value = values[name][k]
                    records[record_position][name] = int(value) if name == "n_components" else float(value)
    return records


def records_from_volume(volume_u8_kji: np.ndarray, labelmap_kji: np.ndarray, axis: int, source: str, case: str,
                        modality: str, label_names: dict | None = None, config: QCConfig | None = None,
                        dataset: str | None = None, image_file: str = "", mask_file: str = "") -> list[dict]:
    """Records of every (slice along `axis`, label present) of an 8-bit volume and its label map.

    The volume must already be mapped to uint8 (`SegMoTELib.intensity.to_uint8` with the study's
    modality); slices are taken as stored (`np.take(volume, index, axis)`), not reoriented.
    """
    volume = np.asarray(volume_u8_kji)
    labelmap = np.asarray(labelmap_kji)
    if volume.ndim != 3 or volume.dtype != np.uint8:
        raise InputError(f"volume: expected a 3D uint8 array (map it with intensity.to_uint8 first), "
                         f"got shape {volume.shape} dtype {volume.dtype}")
    if labelmap.shape != volume.shape:
        raise InputError(f"labelmap: shape {labelmap.shape} differs from the volume shape {volume.shape}")
    if labelmap.dtype.kind not in "uib":
        raise InputError(f"labelmap: expected integer labels, got dtype {labelmap.dtype}")
    if axis not in (0, 1, 2):
        raise InputError(f"axis: expected 0, 1 or 2 (array axis of the [k, j, i] volume), got {axis!r}")
    label_names = {int(key): str(value) for key, value in (label_names or {}).items()}
    dataset = dataset or Path(str(source)).name or str(source)
    images = np.moveaxis(volume, axis, 0)
    labels = np.moveaxis(labelmap, axis, 0)
    slices = []
    for index in _slices_with_labels(labels):
        present = present_values(labels[index])
        present = present[present != 0]
        identity = {"record_id": None, "source": str(source), "dataset": dataset, "case": str(case),
                    "slice_index": int(index), "modality": modality, "image_file": image_file,
                    "mask_file": mask_file, "axis": int(axis)}
        slices.append(LabelledSlice(np.ascontiguousarray(images[index]), np.ascontiguousarray(labels[index]),
                                    [(int(v), int(v), label_names.get(int(v), f"label_{int(v)}")) for v in present],
                                    identity))
    records = measure_slices(slices)
    for record in records:
        record["record_id"] = make_record_id(dataset, case, record["slice_index"], record["label"], axis)
    return apply_quality(records, config)


def present_values(labelmap: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a label map (a histogram for 8/16-bit maps: faster than unique)."""
    if labelmap.dtype in (np.uint8, np.uint16):
        return np.flatnonzero(np.bincount(labelmap.ravel(), minlength=1))
    return np.unique(labelmap)


def _slices_with_labels(labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
