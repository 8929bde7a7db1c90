"""Segment the rows of one study with a predictor and write its one `.seg.nrrd`, a segment per row.

The same calls as `segmote segment` (3D box; clicks or a flat box, then propagation; auto), so a
cohort row and the one-study command give the same mask. The study's image is read and embedded
once for all its rows. The file is written once, atomically (`io.atomic_output`), with every
segment it should hold: the segments of an earlier run's file (kept, by name) and those of this
run's rows that succeeded. A row that fails loses nothing of the others; a rerun segments only the
rows whose segment is missing and rewrites the file with them added.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model_spec import ModelSpec
from ..slice_prompt import SlicePrompt
from .row_prompt import ORIENTATION


@dataclass(frozen=True)
class StudyJob:
    """The rows of one study that still lack their segment, and where the study's file goes."""

    study: str
    image: str                 # resolved image path
    rows: tuple                # CohortRow... to segment, table order
    names: tuple = ()          # the segment names of all the study's rows, table order

    def output_name(self) -> str:
        return f"{self.study}.seg.nrrd"


def written_segments(path: Path) -> dict[str, np.ndarray] | None:
    """{name: mask} of an existing study file, or None where there is none."""
    from ..io.seg_nrrd import read_segment_masks

    if not path.is_file():
        return None
    _, masks = read_segment_masks(path)
    return {info.name: mask for info, mask in masks}


def run_job(predictor, job: StudyJob, out_dir, model: ModelSpec) -> list[dict]:
    """One outcome per row of `job` ({"line", "study", "name", "status", "error", "voxels",
    "seconds"}); any failure is the row's (or, when the image cannot be read, every row's)
    outcome, never an exception for the run."""
    from ..errors import SegMoTEError, first_line

    started = time.perf_counter()
    output = Path(out_dir) / job.output_name()
    try:
        from ..intensity import IntensityMapping
        from ..io import read_volume
        from ..segment3d import VolumeSegmenter

        volume = read_volume(job.image)
        earlier = _earlier_masks(output, volume)
        segmenter = VolumeSegmenter(predictor, volume, IntensityMapping(modality=model.modality or volume.modality
                                                                         or "auto"))
    except SegMoTEError as error:
        return [_outcome(row, "failed", str(error)) for row in job.rows]
    except Exception as error:  # noqa: BLE001 - an engine bug on one study must not stop the cohort
        return [_outcome(row, "failed", _unexpected(error, first_line)) for row in job.rows]
    outcomes, masks = [], dict(earlier)
    for row in job.rows:
        row_started = time.perf_counter()
        try:
            mask = labelmap_of(segmenter, volume, row.prompt)
            masks[row.name] = mask
            outcomes.append(_outcome(row, "written", "", int(mask.sum()), time.perf_counter() - row_started))
        except SegMoTEError as error:
            outcomes.append(_outcome(row, "failed", str(error)))
        except Exception as error:  # noqa: BLE001
            outcomes.append(_outcome(row, "failed", _unexpected(error, first_line)))
    if len(masks) > len(earlier):
        try:
            _write(output, volume, job, masks)
        except SegMoTEError as error:
            return [_outcome(row, "failed", str(error)) if item["status"] == "written" else item
                    for row, item in zip(job.rows, outcomes)]
    for item in outcomes:
        item["study_seconds"] = time.perf_counter() - started
    return outcomes


def _earlier_masks(output: Path, volume) -> dict[str, np.ndarray]:
    from ..errors import DataError

    masks = written_segments(output) or {}
    for name, mask in masks.items():
        if mask.shape != volume.array.shape[:3]:
            raise DataError(f"{output} holds segment {name!r} on another grid ({mask.shape[::-1]} voxels, the "
                            f"image has {volume.array.shape[2::-1]}); move it away to segment the study again")
    return masks


def _write(output: Path, volume, job: StudyJob, masks: dict[str, np.ndarray]) -> None:
    """Segments in table order, then any other segment the earlier file held."""
    from ..io.seg_nrrd import write_segment_masks

    order = [name for name in job.names or [row.name for row in job.rows] if name in masks]
    order += [name for name in masks if name not in order]
    write_segment_masks(output, volume, [(name, None, masks[name]) for name in order])


def labelmap_of(segmenter, volume, prompt) -> np.ndarray:
    """The bool mask [k, j, i] a row's prompt gives (see row_prompt.py)."""
    from ..geometry import slice_axis_for, slice_count

    placed = prompt.in_volume(volume)
    if placed.auto:
        index = slice_count(volume, slice_axis_for(volume, ORIENTATION)) // 2
        return segmenter.segment_auto(ORIENTATION, index).labelmap
    if placed.box_is_3d:
        return segmenter.segment_box3d(placed.box_ras, ORIENTATION)
    seed = segmenter.segment_slice(SlicePrompt.build("ras", points=placed.points_ras, labels=placed.labels,
                                                     box=placed.box_ras), ORIENTATION)
    return segmenter.propagate(seed)


def _outcome(row, status: str, error: str, voxels: int = 0, seconds: float = 0.0) -> dict:
    return {"line": row.line, "study": row.study, "name": row.name, "status": status, "error": error,
            "voxels": voxels, "seconds": seconds}


def _unexpected(error: Exception, first_line) -> str:
    return f"{type(error).__name__}: {first_line(error)}".rstrip(": ")
