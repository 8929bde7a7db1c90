"""3D evaluation: per structure of a labelled volume, three ways of prompting, scored against the labels.

Methods (all on one `VolumeSegmenter`, so each slice is embedded once per volume whatever the
method or structure — the embedding is the cost on a CPU):
  * click  -- one positive click at the deepest pixel of the structure on its largest slice
    (`central_click`), given in RAS like a Slicer click, then `VolumeSegmenter.propagate`;
  * box3d  -- the tight 3D box of the label (the voxel centres of its extremes, 8 RAS corners), through
    `VolumeSegmenter.segment_box3d`;
  * oracle -- the tight 2D box of the label on every labelled slice, no propagation: what the model
    can do when every slice is prompted well, the ceiling the other two are compared with.
Prompts go through the predictor's own policy (the adapter for clicks; for boxes, the decoder the
adapter's `use_for_boxes` says), as a user of Slicer or of `segmote segment` would get.

Scores: 3D Dice of the whole labelmap; slices found = labelled slices where the method put voxels,
of the labelled slices; extra slices = slices with voxels where the label has none (an overrun or a
jump); ratio = a method's Dice / the oracle's Dice. Aggregates: mean per dataset, and the macro
(mean of the dataset means).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError
from .evaluation import dice_score, evaluation_box
from .geometry import SliceRef, extract_slice, insert_slice, orientation_of_axis, slice_axis_for, slice_pixels_to_ras
from .segment3d import PropagationRules, VolumeSegmenter
from .slice_prompt import SlicePrompt
from .training.simulated_user import central_click

METHODS = ("click", "box3d", "oracle")
METHOD_TITLES = {"click": "click + propagation", "box3d": "3D box", "oracle": "oracle (box on every slice)"}
AXES = ("auto", "axial", "coronal", "sagittal")
ANISOTROPY = 1.1  # a spacing this much larger than the others makes its axis the slice axis under "auto"


def evaluation_axis(volume, axis: str = "auto") -> int:
    """Voxel axis (0 i, 1 j, 2 k) to slice across: the named orientation, or under "auto" the axis
    of largest spacing when it stands out, else the axial one (the rule of volumes3d's INVENTORY)."""
    if axis not in AXES:
        raise InputError(f"--axis: expected one of {', '.join(AXES)}, got {axis!r}")
    if axis != "auto":
        return slice_axis_for(volume, axis)
    spacing = np.asarray(volume.spacing, dtype=float)
    largest = int(np.argmax(spacing))
    others = np.delete(spacing, largest)
    return largest if spacing[largest] > ANISOTROPY * others.max() else slice_axis_for(volume, "axial")


def slice_presence(mask_kji: np.ndarray, axis: int) -> np.ndarray:
    """Voxel count of the mask on each slice across voxel `axis`."""
    fixed = 2 - int(axis)
    return mask_kji.sum(axis=tuple(d for d in range(3) if d != fixed))


@dataclass
class MethodScore:
    dice: float
    slices_found: int   # labelled slices with predicted voxels
    slices_extra: int   # predicted slices where the label has none

    @classmethod
    def of(cls, prediction: np.ndarray, truth: np.ndarray, axis: int,
           labelled: np.ndarray | None = None) -> MethodScore:
        """`labelled`: the truth's slices with voxels, when the caller has them already."""
        predicted = slice_presence(prediction, axis) > 0
        labelled = slice_presence(truth, axis) > 0 if labelled is None else labelled
        return cls(dice_score(prediction, truth), int((predicted & labelled).sum()), int((predicted & ~labelled).sum()))


@dataclass
class StructureResult:
    dataset: str
    case: str
    label: int
    name: str
    orientation: str
    true_slices: int
    click_slice: int
    scores: dict[str, MethodScore] = field(default_factory=dict)

    def ratio(self, method: str) -> float | None:
        """The method's Dice as a fraction of the oracle's (None without an oracle above 0)."""
        oracle = self.scores.get("oracle")
        if method not in self.scores or oracle is None or oracle.dice <= 0:
            return None
        return self.scores[method].dice / oracle.dice


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


class VolumeEvaluator:
    """The three methods on one volume; `segmenter` holds the predictor and the 8-bit volume."""

    def __init__(self, segmenter: VolumeSegmenter, axis: int, rules: PropagationRules | None = None,
                 methods: Iterable[str] = METHODS):
        self.segmenter, self.axis = segmenter, int(axis)
        self.rules = rules or PropagationRules.for_predictor(segmenter.predictor)
        self.methods = [m for m in METHODS if m in set(methods)]
        unknown = set(methods) - set(METHODS)
        if unknown or not self.methods:
            raise InputError(f"methods: expected some of {', '.join(METHODS)}, got {sorted(set(methods))}")
        self.orientation = orientation_of_axis(segmenter.volume, self.axis)
        # Every slice of the volume stays embedded while the volume is scored: each method and
        # structure reuses the others' embeddings (the predictor's cache is keyed by slice content).
        predictor = segmenter.predictor
        if hasattr(predictor, "cache_size"):
            predictor.cache_size = max(predictor.cache_size, segmenter.volume.shape_ijk[self.axis] + 1)

    def evaluate(self, truth: np.ndarray) -> tuple[dict[str, MethodScore], int, int]:
        """Scores of each method for one structure (bool [k, j, i]), the click's slice index and the
        number of slices the structure is on."""
        areas = slice_presence(truth, self.axis)
        if not areas.any():
            raise InputError("truth: the structure has no voxel")
        largest = int(np.argmax(areas))
        predictions = {}
        if "click" in self.methods:
            predictions["click"] = self.click_and_propagate(truth, largest)
        if "box3d" in self.methods:
            predictions["box3d"] = self.box3d(truth)
        if "oracle" in self.methods:
            predictions["oracle"] = self.oracle(truth, np.flatnonzero(areas))
        labelled = areas > 0
        scores = {m: MethodScore.of(p, truth, self.axis, labelled) for m, p in predictions.items()}
        return scores, largest, int(labelled.sum())

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

    def box3d(self, truth: np.ndarray) -> np.ndarray:
        present = np.argwhere(truth)
        low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # (i, j, k)
        ijk = np.array([[i, j, k] for i in (low[0], high[0]) for j in (low[1], high[1]) for k in (low[2], high[2])],
                       dtype=float)
        corners = self.segmenter.volume.ijk_to_ras_points(ijk)
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


# --- report -------------------------------------------------------------------------------------
def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


@dataclass
class Evaluation3DReport:
    methods: list[str]
    settings: dict = field(default_factory=dict)
    results: list[StructureResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _summary(self, results: list[StructureResult]) -> dict:
        row = {"n": len(results), "true_slices": int(sum(r.true_slices for r in results))}
        for method in self.methods:
            scored = [r for r in results if method in r.scores]
            row[method] = {
                "dice": _mean(r.scores[method].dice for r in scored),
                "slices_found": int(sum(r.scores[method].slices_found for r in scored)),
                "slices_extra": int(sum(r.scores[method].slices_extra for r in scored)),
                "ratio_to_oracle": _mean(r.ratio(method) for r in scored) if method != "oracle" else None,
            }
        return row

    def per_dataset(self) -> dict[str, dict]:
        grouped: dict[str, list[StructureResult]] = {}
        for result in self.results:
            grouped.setdefault(result.dataset, []).append(result)
        return {dataset: self._summary(results) for dataset, results in sorted(grouped.items())}

    def macro(self) -> dict[str, dict]:
        """Mean over datasets of the per-dataset means (Dice and ratio to the oracle)."""
        rows = list(self.per_dataset().values())
        return {m: {key: _mean(row[m][key] for row in rows) for key in ("dice", "ratio_to_oracle")}
                for m in self.methods}

    def to_dict(self) -> dict:
        return {
            "methods": self.methods,
            "settings": self.settings,
            "notes": self.notes,
            "n_structures": len(self.results),
            "datasets": self.per_dataset(),
            "macro": self.macro(),
            "structures": [{**{k: v for k, v in asdict(r).items() if k != "scores"},
                            "scores": {m: {**asdict(s), "ratio_to_oracle": r.ratio(m) if m != "oracle" else None}
                                       for m, s in r.scores.items()}} for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        def pct(value):
            return "n/a" if value is None else f"{100 * value:.1f}"

        def cell(score: MethodScore | None, true_slices: int, ratio: float | None):
            if score is None:
                return "–"
            text = f"{pct(score.dice)} ({score.slices_found}/{true_slices}"
            text += f", +{score.slices_extra})" if score.slices_extra else ")"
            return text + (f" · {pct(ratio)} %" if ratio is not None else "")

        titles = [METHOD_TITLES[m] for m in self.methods]
        lines = ["## 3D Dice per structure", "",
                 "Dice % (labelled slices found / labelled slices, +slices predicted outside the label) "
                 "· % of the oracle's Dice", "",
                 "| dataset | case | structure | slices | " + " | ".join(titles) + " |",
                 "|---|---|---|---:|" + "---|" * len(titles)]
        for r in self.results:
            cells = [cell(r.scores.get(m), r.true_slices, r.ratio(m) if m != "oracle" else None) for m in self.methods]
            lines.append(f"| {r.dataset} | {r.case} | {r.name} | {r.true_slices} | " + " | ".join(cells) + " |")
        lines += ["", "## Mean by dataset", "",
                  "| dataset | structures | " + " | ".join(f"{t} Dice %" for t in titles)
                  + "".join(f" | {METHOD_TITLES[m]} / oracle %" for m in self.methods if m != "oracle") + " |",
                  "|---|---:|" + "---:|" * (len(titles) + sum(m != "oracle" for m in self.methods))]
        for dataset, row in self.per_dataset().items():
            lines.append(f"| {dataset} | {row['n']} | " + " | ".join(pct(row[m]["dice"]) for m in self.methods)
                         + "".join(f" | {pct(row[m]['ratio_to_oracle'])}" for m in self.methods if m != "oracle")
                         + " |")
        macro = self.macro()
        lines.append(f"| **macro** | {len(self.results)} | " + " | ".join(f"**{pct(macro[m]['dice'])}**"
                                                                          for m in self.methods)
                     + "".join(f" | **{pct(macro[m]['ratio_to_oracle'])}**" for m in self.methods if m != "oracle")
                     + " |")
        settings = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        lines += [""] + ([f"- settings: {settings}"] if settings else []) + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def evaluate_cases(cases, predictor, axis: str = "auto", methods: Iterable[str] = METHODS,
                   select: Iterable[str] | None = None, max_structures: int | None = None, min_slices: int = 1,
                   mapping_for: Callable | None = None, rules: PropagationRules | None = None,
                   progress: Callable[[StructureResult], None] | None = None) -> Evaluation3DReport:
    """Score every selected structure of every case (`volume_cases.VolumeCase`); volume by volume, so
    that one volume's embeddings are in memory at a time. `mapping_for(volume)` gives the intensity
    mapping of a volume (default: from its modality)."""
    methods = [m for m in METHODS if m in set(methods)]
    report = Evaluation3DReport(methods, settings={"axis": axis})
    for case in cases:
        image, labels = case.image, case.labels
        voxel_axis = evaluation_axis(image, axis)
        chosen = structures_of(labels, case.names, select, max_structures, min_slices, voxel_axis)
        if not chosen:
            report.notes.append(f"{case.dataset} {case.case}: no selected structure")
            case.release()
            continue
        segmenter = VolumeSegmenter(predictor, image, mapping_for(image) if mapping_for else None)
        evaluator = VolumeEvaluator(segmenter, voxel_axis, rules, methods)
        for value, name in chosen:
            truth = labels == value
            scores, click_slice, true_slices = evaluator.evaluate(truth)
            result = StructureResult(case.dataset, case.case, value, name, evaluator.orientation, true_slices,
                                     click_slice, scores)
            report.results.append(result)
            if progress is not None:
                progress(result)
        if hasattr(predictor, "clear_cache"):
            predictor.clear_cache()  # this volume's embeddings are not needed again
        case.release()
    return report
