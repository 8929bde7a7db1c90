"""3D evaluation: per structure of a labelled volume, several ways of prompting, scored against the labels.

Methods (all on one `VolumeSegmenter`, so each slice is embedded once per volume whatever the
method or structure — the embedding is the cost on a CPU):
  * click  -- one positive click at the deepest pixel of the structure on its largest slice
    (`central_click`), given in RAS like a Slicer click, then `VolumeSegmenter.propagate`;
  * box3d  -- the tight 3D box of the label in the volume's own frame (the voxel centres of its
    extreme indices: a rotated ROI on an oblique volume), through `VolumeSegmenter.segment_box3d`;
  * corrections -- a simulated user after click + propagation: up to N times, on the slice whose
    Dice is worst, one click at the deepest pixel of its largest error region (missed → positive,
    extra → negative), through `VolumeSegmenter.correct` (the fix is re-walked outward); the Dice
    after each correction is the 3D click curve;
  * oracle -- the tight 2D box of the label on every labelled slice, no propagation: what the model
    can do when every slice is prompted well, the ceiling the others are compared with.
Prompts go through the predictor's own policy (the adapter for clicks; for boxes, the decoder the
adapter's `use_for_boxes` says), as a user of Slicer or of `segmote segment` would get.

Scores per method (`MethodScore`): 3D Dice, HD95 and NSD in mm (`metrics3d`), labelled slices found
and extra slices. The walk runs along the acquisition axis (`geometry.acquisition_axis`) unless an
orientation is named. The report (`evaluation3d_report`) aggregates per dataset, per modality
family and overall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .evaluation import evaluation_box
from .evaluation3d_report import Evaluation3DReport, MethodScore, StructureResult
from .geometry import (
    SliceRef,
    acquisition_axis,
    extract_slice,
    ijk_box_corners_ras,
    insert_slice,
    orientation_of_axis,
    slice_axis_for,
    slice_pixels_to_ras,
)
from .metrics3d import DEFAULT_NSD_TOLERANCE_MM
from .segment3d import VolumeSegmenter
from .slice_prompt import SlicePrompt
from .training.simulated_user import central_click, deepest_error_click
from .walk_rules import PropagationRules

METHODS = ("click", "box3d", "corrections", "oracle")
AXES = ("auto", "axial", "coronal", "sagittal")
DEFAULT_CORRECTIONS = 5

__all__ = ["METHODS", "AXES", "evaluation_axis", "slice_presence", "structures_of", "VolumeEvaluator",
           "evaluate_cases", "Evaluation3DReport", "MethodScore", "StructureResult"]


def evaluation_axis(volume, axis: str = "auto") -> int:
    """Voxel axis (0 i, 1 j, 2 k) to slice across: the named orientation, or under "auto" the
    acquisition axis (largest spacing when it stands out, else the axial one)."""
    if axis not in AXES:
        raise InputError(f"--axis: expected one of {', '.join(AXES)}, got {axis!r}")
    return acquisition_axis(volume) if axis == "auto" else slice_axis_for(volume, axis)


def slice_presence(mask_kji: np.ndarray, axis: int) -> np.ndarray:
    """Voxel count of the mask on each slice across voxel `axis`."""
    fixed = 2 - int(axis)
    return mask_kji.sum(axis=tuple(d for d in range(3) if d != fixed))


def structures_of(labels: np.ndarray, names: dict[int, str], select: Iterable[str] | None = None,
                  max_structures: int | None = None, min_slices: int = 1, axis: int = 2) -> list[tuple[int, str]]:
    """(value, name) of the structures to score: the label values present (in value order), kept
    when `select` names them (by value or by name, case-insensitive) and they span `min_slices`."""
    values = [int(v) for v in np.unique(labels) if v != 0]
    chosen = values
    if select:
        wanted = {str(s).strip().lower() for s in select}
        chosen = [v for v in values if str(v) in wanted or names.get(v, "").lower() in wanted]
    chosen = [v for v in chosen if int((slice_presence(labels == v, axis) > 0).sum()) >= min_slices]
    if max_structures is not None:
        chosen = chosen[:max_structures]
    return [(v, names.get(v, f"label {v}")) for v in chosen]


@dataclass
class Outcome:
    """One structure's predictions: a labelmap per method, and the correction curve's labelmaps."""

    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    correction_steps: list[np.ndarray] = field(default_factory=list)  # after correction 1, 2, …
    click_slice: int = 0
    true_slices: int = 0
    stops: dict[str, str] = field(default_factory=dict)  # method -> where/why its walk ended


class VolumeEvaluator:
    """The methods on one volume; `segmenter` holds the predictor and the 8-bit volume."""

    def __init__(self, segmenter: VolumeSegmenter, axis: int, rules: PropagationRules | None = None,
                 methods: Iterable[str] = METHODS, corrections: int = DEFAULT_CORRECTIONS):
        self.segmenter, self.axis = segmenter, int(axis)
        self.rules = rules or PropagationRules.for_predictor(segmenter.predictor)
        self.methods = [m for m in METHODS if m in set(methods)]
        unknown = set(methods) - set(METHODS)
        if unknown or not self.methods:
            raise InputError(f"methods: expected some of {', '.join(METHODS)}, got {sorted(set(methods))}")
        if not 1 <= corrections <= 20:
            raise InputError(f"corrections: expected 1..20, got {corrections}")
        self.corrections = corrections
        self.orientation = orientation_of_axis(segmenter.volume, self.axis)
        # Every slice of the volume stays embedded while the volume is scored: each method and
        # structure reuses the others' embeddings (the predictor's cache is keyed by slice content).
        predictor = segmenter.predictor
        if hasattr(predictor, "cache_size"):
            predictor.cache_size = max(predictor.cache_size, segmenter.volume.shape_ijk[self.axis] + 1)

    def run(self, truth: np.ndarray) -> Outcome:
        """Every method's labelmap for one structure (bool [k, j, i])."""
        areas = slice_presence(truth, self.axis)
        if not areas.any():
            raise InputError("truth: the structure has no voxel")
        outcome = Outcome(click_slice=int(np.argmax(areas)), true_slices=int((areas > 0).sum()))
        if "click" in self.methods or "corrections" in self.methods:
            outcome.predictions["click"] = self.click_and_propagate(truth, outcome.click_slice)
            outcome.stops["click"] = self._stops()
        if "corrections" in self.methods:
            outcome.correction_steps = self.simulate_corrections(truth, outcome.predictions["click"])
            outcome.predictions["corrections"] = outcome.correction_steps[-1]
        if "box3d" in self.methods:
            outcome.predictions["box3d"] = self.box3d(truth)
            outcome.stops["box3d"] = self._stops()
        if "oracle" in self.methods:
            outcome.predictions["oracle"] = self.oracle(truth, np.flatnonzero(areas))
        if "click" not in self.methods:
            outcome.predictions.pop("click", None)
        return outcome

    def evaluate(self, truth: np.ndarray, tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM):
        """(scores per method, the click's slice index, the number of slices the structure is on)."""
        outcome = self.run(truth)
        return self.score(outcome, truth, tolerance_mm), outcome.click_slice, outcome.true_slices

    def score(self, outcome: Outcome, truth: np.ndarray, tolerance_mm: float) -> dict[str, MethodScore]:
        labelled = slice_presence(truth, self.axis) > 0
        spacing = self.segmenter.volume.spacing
        return {m: MethodScore.of(p, truth, self.axis, spacing, tolerance_mm, labelled)
                for m, p in outcome.predictions.items()}

    def _stops(self) -> str:
        total = self.segmenter.volume.shape_ijk[self.axis]
        return "; ".join(stop.describe(total) for stop in self.segmenter.last_stops)

    def _truth_slice(self, truth: np.ndarray, index: int) -> np.ndarray:
        volume = self.segmenter.volume.with_array(truth.view(np.uint8))
        return extract_slice(volume, SliceRef(self.axis, index)).astype(bool)

    def click_and_propagate(self, truth: np.ndarray, index: int) -> np.ndarray:
        ref = SliceRef(self.axis, index)
        x, y = central_click(self._truth_slice(truth, index))
        click_ras = slice_pixels_to_ras(self.segmenter.volume, ref, [[x, y]])
        seed = self.segmenter.segment_slice(SlicePrompt.build("ras", points=click_ras), self.orientation,
                                            slice_index=index)
        return self.segmenter.propagate(seed, rules=self.rules)

    def simulate_corrections(self, truth: np.ndarray, labelmap: np.ndarray) -> list[np.ndarray]:
        """The labelmap after each of up to `corrections` simulated clicks (a perfect one ends early:
        the rest of the curve repeats it)."""
        steps, current = [], labelmap
        for _ in range(self.corrections):
            click = self._worst_slice_click(truth, current)
            if click is not None:
                index, x, y, label = click
                point = slice_pixels_to_ras(self.segmenter.volume, SliceRef(self.axis, index), [[x, y]])
                prompt = SlicePrompt.build("ras", points=point, labels=[label])
                current = self.segmenter.correct(current, prompt, self.orientation, slice_index=index,
                                                 rules=self.rules).labelmap
            steps.append(current)
        return steps

    def _worst_slice_click(self, truth: np.ndarray, prediction: np.ndarray):
        """(slice, x, y, label) of the click on the worst slice's largest error, or None without error."""
        predicted, labelled = slice_presence(prediction, self.axis), slice_presence(truth, self.axis)
        candidates = np.flatnonzero((predicted > 0) | (labelled > 0))
        worst = None
        for index in candidates:
            truth2d = self._truth_slice(truth, int(index))
            pred2d = self._truth_slice(prediction, int(index))
            errors = int(np.count_nonzero(truth2d ^ pred2d))
            if errors == 0:
                continue
            total = int(truth2d.sum()) + int(pred2d.sum())
            dice = 2.0 * int(np.count_nonzero(truth2d & pred2d)) / total
            key = (dice, -errors)
            if worst is None or key < worst[0]:
                worst = (key, int(index), truth2d, pred2d)
        if worst is None:
            return None
        _, index, truth2d, pred2d = worst
        x, y, label = deepest_error_click(truth2d, pred2d)
        return index, int(x), int(y), int(label)

    def box3d(self, truth: np.ndarray) -> np.ndarray:
        present = np.argwhere(truth)
        low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # (i, j, k)
        corners = ijk_box_corners_ras(self.segmenter.volume, low, high)
        return self.segmenter.segment_box3d(corners, self.orientation, rules=self.rules)

    def oracle(self, truth: np.ndarray, indices: Iterable[int]) -> np.ndarray:
        labelmap = np.zeros(truth.shape, dtype=bool)
        predictor = self.segmenter.predictor
        for index in indices:
            ref = SliceRef(self.axis, int(index))
            self.segmenter.set_slice(ref)
            prediction = predictor.predict(box=evaluation_box(self._truth_slice(truth, int(index))))
            insert_slice(labelmap, ref, np.asarray(prediction.masks[0], dtype=bool), geometry=self.segmenter.volume)
        return labelmap


def evaluate_cases(cases, predictor, axis: str = "auto", methods: Iterable[str] = METHODS,
                   select: Iterable[str] | None = None, max_structures: int | None = None, min_slices: int = 1,
                   mapping_for: Callable | None = None, rules: PropagationRules | None = None,
                   progress: Callable[[StructureResult], None] | None = None, corrections: int = DEFAULT_CORRECTIONS,
                   tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM, save_masks: Callable | None = None
                   ) -> Evaluation3DReport:
    """Score every selected structure of every case (`volume_cases.VolumeCase`); volume by volume, so
    that one volume's embeddings are in memory at a time. `mapping_for(volume)` gives the intensity
    mapping of a volume (default: from its modality); `save_masks(case, image, {method: labels})`
    receives each case's predictions as label maps (structure value per voxel)."""
    methods = [m for m in METHODS if m in set(methods)]
    report = Evaluation3DReport(methods, settings={"axis": axis, "nsd_tolerance_mm": tolerance_mm,
                                                   "corrections": corrections if "corrections" in methods else 0})
    for case in cases:
        image, labels = case.image, case.labels
        voxel_axis = evaluation_axis(image, axis)
        chosen = structures_of(labels, case.names, select, max_structures, min_slices, voxel_axis)
        if not chosen:
            report.notes.append(f"{case.dataset} {case.case}: no selected structure")
            case.release()
            continue
        segmenter = VolumeSegmenter(predictor, image, mapping_for(image) if mapping_for else None)
        evaluator = VolumeEvaluator(segmenter, voxel_axis, rules, methods, corrections)
        saved = {m: np.zeros(labels.shape, dtype=np.int32) for m in methods} if save_masks else None
        for value, name in chosen:
            truth = labels == value
            outcome = evaluator.run(truth)
            result = StructureResult(case.dataset, case.case, value, name, evaluator.orientation, outcome.true_slices,
                                     outcome.click_slice, evaluator.score(outcome, truth, tolerance_mm),
                                     family=segmenter.family, stops=outcome.stops,
                                     correction_dice=[float(MethodScore.dice_of(step, truth))
                                                      for step in outcome.correction_steps])
            report.results.append(result)
            if saved is not None:
                for method, prediction in outcome.predictions.items():
                    saved[method][prediction & (saved[method] == 0)] = value
            if progress is not None:
                progress(result)
        if save_masks is not None:
            save_masks(case, image, saved)
        if hasattr(predictor, "clear_cache"):
            predictor.clear_cache()  # this volume's embeddings are not needed again
        case.release()
    return report


def mask_writer(folder) -> Callable:
    """A `save_masks` for evaluate_cases: <folder>/<dataset>/<case>__<method>.nii.gz (label values as the truth's)."""
    from .io import write_volume

    root = Path(folder)

    def save(case, image, labelmaps: dict) -> None:
        target = root / _safe(case.dataset)
        target.mkdir(parents=True, exist_ok=True)
        for method, labels in labelmaps.items():
            write_volume(image.with_array(labels.astype(np.int16)), target / f"{_safe(case.case)}__{method}.nii.gz")

    return save


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
