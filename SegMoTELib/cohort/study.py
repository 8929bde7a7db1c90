"""Segment one study of a cohort with a predictor and write `<study>.seg.nrrd` in its geometry.

The same calls as `segmote segment` (ras-box / ras-point + --propagate / auto), so a cohort row and
the one-study command give the same mask. The file is written atomically (`io.atomic_output`): a
study either has its complete output or none, which is what lets a rerun skip finished studies.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model_spec import ModelSpec
from .table import CohortRow

ORIENTATION = "axial"


def segment_study(predictor, row: CohortRow, out_dir, model: ModelSpec) -> dict:
    """Segment `row` and write its output; returns {"voxels", "seconds", "output"}."""
    from ..intensity import IntensityMapping
    from ..io import SegmentInfo, read_volume, write_segmentation
    from ..segment3d import VolumeSegmenter

    started = time.perf_counter()
    volume = read_volume(row.path)
    mapping = IntensityMapping(modality=model.modality or volume.modality or "auto")
    segmenter = VolumeSegmenter(predictor, volume, mapping)
    labelmap = _labelmap(segmenter, volume, row)
    output = Path(out_dir) / row.output_name()
    write_segmentation(output, volume.with_array(labelmap.astype(np.uint8)), [SegmentInfo(row.name, 1)])
    return {"voxels": int(labelmap.sum()), "seconds": time.perf_counter() - started, "output": str(output)}


def _labelmap(segmenter, volume, row: CohortRow) -> np.ndarray:
    from ..geometry import slice_axis_for, slice_count, slice_extent_of_box

    prompt = row.prompt
    if prompt.kind == "auto":
        index = slice_count(volume, slice_axis_for(volume, ORIENTATION)) // 2
        return segmenter.segment_auto(ORIENTATION, index).labelmap
    if prompt.kind == "ras-box":
        corners = np.asarray(prompt.values, dtype=np.float64).reshape(2, 3)
        first, last = slice_extent_of_box(volume, slice_axis_for(volume, ORIENTATION), corners)
        if last > first:
            return segmenter.segment_box3d(corners, ORIENTATION)
        return segmenter.propagate(segmenter.segment_slice(ORIENTATION, box_ras=corners))
    point = np.asarray([prompt.values], dtype=np.float64)
    seed = segmenter.segment_slice(ORIENTATION, points_ras=point, labels=np.ones(1, dtype=np.int64))
    return segmenter.propagate(seed)


def run_row(predictor, row: CohortRow, out_dir, model: ModelSpec) -> dict:
    """One row's outcome; any failure of this study is its outcome, never an exception for the run."""
    from ..errors import SegMoTEError, first_line

    outcome = {"line": row.line, "study": row.study}
    try:
        outcome.update(segment_study(predictor, row, out_dir, model), status="written", error="")
    except SegMoTEError as error:
        outcome.update(status="failed", error=str(error))
    except Exception as error:  # noqa: BLE001 - an engine bug on one study must not stop the cohort
        outcome.update(status="failed", error=f"{type(error).__name__}: {first_line(error)}".rstrip(": "))
    return outcome
