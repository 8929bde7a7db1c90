"""What a worker process does with one unit: read it and measure every (slice, label).

Workers return metric records only (identity + metrics); gates and scores are applied once at the
end from the run's configuration, so a resumed run may change thresholds without re-measuring.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, SegMoTEError
from .metrics import METRIC_NAMES, to_grey
from .loading import pair_labels, read_image_2d, read_labelmap_2d, read_study
from .records import IDENTITY_FIELDS, LabelledSlice, make_record_id, measure_slices, records_from_volume
from .sources import Unit

RECORD_FIELDS = IDENTITY_FIELDS + METRIC_NAMES


def process_unit(unit: Unit, axis: int = 0, modality: str = "auto") -> dict:
    """{"key", "identity", "records", "errors", "slices"} of one unit; bad files become errors, not exceptions."""
    if unit.kind == "pairs":
        records, errors, slices = _process_pairs(unit)
    else:
        records, errors, slices = _process_study(unit, axis, modality)
    return {"key": unit.key, "identity": unit.identity, "records": [{name: record[name] for name in RECORD_FIELDS} for record in records],
            "errors": errors, "slices": slices}


def _error(unit: Unit, path: str, error: Exception) -> dict:
    return {"source": unit.source, "dataset": unit.dataset, "file": path, "error": str(error)}


def _process_pairs(unit: Unit) -> tuple[list[dict], list[dict], int]:
    slices, errors = [], []
    for row in unit.items:
        try:
            image = read_image_2d(row.image, row.modality)
            labelmap = read_labelmap_2d(row.mask)
            if image.shape[:2] != labelmap.shape:
                raise DataError(f"mask {row.mask}: size {labelmap.shape[1]}×{labelmap.shape[0]} differs from the "
                                f"image {row.image} size {image.shape[1]}×{image.shape[0]}")
            if min(labelmap.shape) < 2:
                raise DataError(f"image {row.image}: too small ({image.shape[1]}×{image.shape[0]} pixels)")
            labels = pair_labels(labelmap, row.mask, unit.label_names, row.target_names or unit.dataset)
        except SegMoTEError as error:
            errors.append(_error(unit, row.image, error))
            continue
        identity = {"record_id": None, "source": unit.source, "dataset": unit.dataset, "case": row.case,
                    "slice_index": row.slice_index, "modality": row.modality, "image_file": row.image,
                    "mask_file": row.mask, "axis": None}
        slices.append(LabelledSlice(to_grey(image), labelmap, labels, identity))
    records = measure_slices(slices)
    for record in records:
        record["record_id"] = make_record_id(unit.dataset, record["case"], None, record["label"],
                                             stem=Path(record["image_file"]).stem)
    return records, errors, len(slices)


def _process_study(unit: Unit, axis: int, modality: str) -> tuple[list[dict], list[dict], int]:
    study = unit.items[0]
    try:
        volume, labels, study_modality = read_study(study, modality)
        if axis not in (0, 1, 2):
            raise DataError(f"axis: expected 0, 1 or 2, got {axis}")
        records = records_from_volume(volume, labels, axis, unit.source, study.case, study_modality,
                                      dict(study.label_names), dataset=unit.dataset,
                                      image_file=study.image, mask_file=study.label)
    except SegMoTEError as error:
        return [], [_error(unit, study.image, error)], 0
    return records, [], len({record["slice_index"] for record in records})
