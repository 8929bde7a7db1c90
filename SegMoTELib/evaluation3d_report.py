"""The report of `segmote evaluate-3d`: scores per structure, means per dataset, per modality family and
overall, as Markdown, JSON and a per-structure CSV (one row per structure, every method's figures).

Aggregates: the mean over structures of each dataset; the macro (mean of the dataset means, as
before, so figures stay comparable); the mean per modality family ("CT" / "other", as
`walk_rules.modality_family` names them); and the mean over all structures. Ratio = a method's Dice
/ the oracle's Dice on the same structure.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .metrics3d import DEFAULT_NSD_TOLERANCE_MM, dice, hd95_and_nsd

METHOD_TITLES = {"click": "click + propagation", "box3d": "3D box", "corrections": "after corrections",
                 "oracle": "oracle (box on every slice)"}


def _presence(mask_kji: np.ndarray, axis: int) -> np.ndarray:
    fixed = 2 - int(axis)
    return mask_kji.sum(axis=tuple(d for d in range(3) if d != fixed))


@dataclass
class MethodScore:
    dice: float
    slices_found: int   # labelled slices with predicted voxels
    slices_extra: int   # predicted slices where the label has none
    hd95_mm: float | None = None
    nsd: float | None = None

    @staticmethod
    def dice_of(prediction: np.ndarray, truth: np.ndarray) -> float:
        return dice(prediction, truth)

    @classmethod
    def of(cls, prediction: np.ndarray, truth: np.ndarray, axis: int, spacing=None,
           tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM, labelled: np.ndarray | None = None) -> MethodScore:
        """`labelled`: the truth's slices with voxels, when the caller has them already; `spacing`
        (i, j, k) mm: also HD95 and NSD."""
        predicted = _presence(prediction, axis) > 0
        labelled = _presence(truth, axis) > 0 if labelled is None else labelled
        hd95 = nsd = None
        if spacing is not None:
            hd95, nsd = hd95_and_nsd(prediction, truth, spacing, tolerance_mm)
        return cls(dice(prediction, truth), int((predicted & labelled).sum()), int((predicted & ~labelled).sum()),
                   hd95, nsd)


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
    family: str = "other"
    stops: dict[str, str] = field(default_factory=dict)
    correction_dice: list[float] = field(default_factory=list)  # Dice after each simulated correction

    def ratio(self, method: str) -> float | None:
        """The method's Dice as a fraction of the oracle's (None without an oracle above 0)."""
        oracle = self.scores.get("oracle")
        if method not in self.scores or oracle is None or oracle.dice <= 0:
            return None
        return self.scores[method].dice / oracle.dice


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
                "hd95_mm": _mean(r.scores[method].hd95_mm for r in scored),
                "nsd": _mean(r.scores[method].nsd for r in scored),
                "slices_found": int(sum(r.scores[method].slices_found for r in scored)),
                "slices_extra": int(sum(r.scores[method].slices_extra for r in scored)),
                "ratio_to_oracle": _mean(r.ratio(method) for r in scored) if method != "oracle" else None,
            }
        curves = [r.correction_dice for r in results if r.correction_dice]
        if curves:
            row["correction_curve"] = [float(np.mean([c[i] for c in curves])) for i in range(min(map(len, curves)))]
        return row

    def _grouped(self, key) -> dict[str, dict]:
        grouped: dict[str, list[StructureResult]] = {}
        for result in self.results:
            grouped.setdefault(key(result), []).append(result)
        return {name: self._summary(results) for name, results in sorted(grouped.items())}

    def per_dataset(self) -> dict[str, dict]:
        return self._grouped(lambda r: r.dataset)

    def per_family(self) -> dict[str, dict]:
        return self._grouped(lambda r: r.family)

    def overall(self) -> dict:
        return self._summary(self.results)

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
            "families": self.per_family(),
            "overall": self.overall(),
            "macro": self.macro(),
            "structures": [{**{k: v for k, v in asdict(r).items() if k != "scores"},
                            "scores": {m: {**asdict(s), "ratio_to_oracle": r.ratio(m) if m != "oracle" else None}
                                       for m, s in r.scores.items()}} for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per structure: its identity, then per method Dice, HD95, NSD, slices found/extra and
        the ratio to the oracle, then the Dice after each correction."""
        columns = ["dataset", "case", "structure", "label", "family", "orientation", "true_slices", "click_slice"]
        for method in self.methods:
            columns += [f"{method}_{k}" for k in ("dice", "hd95_mm", "nsd", "slices_found", "slices_extra", "ratio")]
        longest = max((len(r.correction_dice) for r in self.results), default=0)
        columns += [f"dice_after_correction_{i + 1}" for i in range(longest)]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for r in self.results:
            row = [r.dataset, r.case, r.name, r.label, r.family, r.orientation, r.true_slices, r.click_slice]
            for method in self.methods:
                s = r.scores.get(method)
                ratio = r.ratio(method) if method != "oracle" else None
                row += ["" if s is None else _fmt(v) for v in
                        ((None, None, None, None, None) if s is None else
                         (s.dice, s.hd95_mm, s.nsd, s.slices_found, s.slices_extra))] + [_fmt(ratio)]
            row += [_fmt(v) for v in r.correction_dice] + [""] * (longest - len(r.correction_dice))
            writer.writerow(row)
        return buffer.getvalue()

    def to_markdown(self) -> str:
        titles = [METHOD_TITLES[m] for m in self.methods]
        lines = ["## 3D scores per structure", "",
                 "Dice % · HD95 mm · NSD % (labelled slices found / labelled slices, +slices predicted outside "
                 "the label) · % of the oracle's Dice", "",
                 "| dataset | case | structure | family | slices | " + " | ".join(titles) + " |",
                 "|---|---|---|---|---:|" + "---|" * len(titles)]
        for r in self.results:
            cells = [_cell(r.scores.get(m), r.true_slices, r.ratio(m) if m != "oracle" else None) for m in self.methods]
            lines.append(f"| {r.dataset} | {r.case} | {r.name} | {r.family} | {r.true_slices} | " + " | ".join(cells)
                         + " |")
        lines += self._summary_table("Mean by dataset", self.per_dataset(), "dataset", macro=True)
        lines += self._summary_table("Mean by modality family", self.per_family(), "family")
        curve_rows = [(name, row["correction_curve"]) for name, row in
                      [*self.per_dataset().items(), ("**all structures**", self.overall())] if "correction_curve" in row]
        if curve_rows:
            count = max(len(c) for _, c in curve_rows)
            lines += ["", "## Simulated corrections after click + propagation (mean Dice % after each)", "",
                      "| group | click | " + " | ".join(f"+{i + 1}" for i in range(count)) + " | oracle |",
                      "|---|---:|" + "---:|" * (count + 1)]
            groups = {**self.per_dataset(), "**all structures**": self.overall()}
            for name, curve in curve_rows:
                row = groups[name]
                click = row.get("click", {}).get("dice")
                oracle = row.get("oracle", {}).get("dice")
                lines.append(f"| {name} | {_pct(click)} | " + " | ".join(_pct(v) for v in curve) + f" | {_pct(oracle)} |")
        stops = [f"{r.dataset} {r.case} {r.name} ({m}): {text}" for r in self.results
                 for m, text in r.stops.items() if text]
        settings = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        lines += [""] + ([f"- settings: {settings}"] if settings else []) + [f"- {note}" for note in self.notes]
        if stops:
            lines += ["", "<details><summary>where each walk ended</summary>", ""] + [f"- {s}" for s in stops] + \
                     ["", "</details>"]
        return "\n".join(lines).rstrip() + "\n"

    def _summary_table(self, title: str, rows: dict, what: str, macro: bool = False) -> list[str]:
        titles = [METHOD_TITLES[m] for m in self.methods]
        ratios = [m for m in self.methods if m != "oracle"]
        lines = ["", f"## {title}", "",
                 f"| {what} | structures | " + " | ".join(f"{t} Dice % · HD95 mm · NSD %" for t in titles)
                 + "".join(f" | {METHOD_TITLES[m]} / oracle %" for m in ratios) + " |",
                 "|---|---:|" + "---|" * len(titles) + "---:|" * len(ratios)]
        for name, row in rows.items():
            lines.append(self._summary_line(name, row, ratios))
        lines.append(self._summary_line("**all structures**", self.overall(), ratios))
        if macro:
            m = self.macro()
            lines.append(f"| **macro (mean of datasets)** | {len(self.results)} | "
                         + " | ".join(f"**{_pct(m[k]['dice'])}**" for k in self.methods)
                         + "".join(f" | **{_pct(m[k]['ratio_to_oracle'])}**" for k in ratios) + " |")
        return lines

    def _summary_line(self, name: str, row: dict, ratios: list[str]) -> str:
        cells = [f"{_pct(row[m]['dice'])} · {_mm(row[m]['hd95_mm'])} · {_pct(row[m]['nsd'])}" for m in self.methods]
        return (f"| {name} | {row['n']} | " + " | ".join(cells)
                + "".join(f" | {_pct(row[m]['ratio_to_oracle'])}" for m in ratios) + " |")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _mm(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cell(score: MethodScore | None, true_slices: int, ratio: float | None) -> str:
    if score is None:
        return "–"
    text = f"{_pct(score.dice)} · {_mm(score.hd95_mm)} · {_pct(score.nsd)} ({score.slices_found}/{true_slices}"
    text += f", +{score.slices_extra})" if score.slices_extra else ")"
    return text + (f" · {_pct(ratio)} %" if ratio is not None else "")
