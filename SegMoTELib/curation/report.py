"""Summary figures and numbers of a curation run.

`summarise` gives the numbers (gate rejection counts, score distribution per modality, per-class
counts); `write_plots` draws, per metric and for the score, one histogram panel per class (all
records in grey, selected ones in colour, gate bounds dashed) and a box plot of the score per
modality; `write_report` writes summary.json and a short report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import QCConfig
from .gates import GATES
from .metrics import METRIC_NAMES
from .sampler import class_key, class_quotas
from .tables import write_text_atomic

PLOTTED = tuple(name for name in METRIC_NAMES if name != "contrast") + ("score",)  # contrast ≡ std


def _distribution(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": int(values.size), "median": float(median), "q1": float(q1), "q3": float(q3),
            "iqr": float(q3 - q1), "mean": float(values.mean())}


def summarise(records: list[dict], selected: list[int], target: int, class_by: tuple, errors: list[dict]) -> dict:
    chosen = np.zeros(len(records), dtype=bool)
    chosen[selected] = True
    gate_counts = {gate.name: sum(1 for r in records if not r[gate.name]) for gate in GATES}
    modalities = sorted({str(r["modality"]) for r in records})
    by_modality = {}
    for modality in modalities:
        members = [i for i, r in enumerate(records) if str(r["modality"]) == modality]
        by_modality[modality] = {
            "all": _distribution([records[i]["score"] for i in members]),
            "passed": _distribution([records[i]["score"] for i in members if records[i]["passed"]]),
            "selected": _distribution([records[i]["score"] for i in members if chosen[i]]),
        }
    quotas = class_quotas(records, target, class_by) if records else {}
    classes = {}
    for index, record in enumerate(records):
        key = " / ".join(class_key(record, class_by))
        entry = classes.setdefault(key, {"records": 0, "passed": 0, "selected": 0, "quota": 0})
        entry["records"] += 1
        entry["passed"] += int(record["passed"])
        entry["selected"] += int(chosen[index])
    for key, quota in quotas.items():
        classes[" / ".join(key)]["quota"] = int(quota)
    return {"records": len(records), "passed": int(sum(r["passed"] for r in records)),
            "rejected": int(sum(not r["passed"] for r in records)), "selected": int(chosen.sum()),
            "target": int(target), "class_by": list(class_by), "gate_rejections": gate_counts,
            "files_with_errors": len(errors), "score_by_modality": by_modality, "classes": classes}


def write_plots(records: list[dict], selected: list[int], class_by: tuple, config: QCConfig, folder: Path) -> list[str]:
    """PNG figures: per-class histograms of every metric and the score (all records, then the
    selected ones), and the score per modality. Returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not records:
        return []
    chosen = np.zeros(len(records), dtype=bool)
    chosen[selected] = True
    keys = [" / ".join(class_key(record, class_by)) for record in records]
    classes = sorted(set(keys))
    position = {name: row for row, name in enumerate(classes)}
    rows = np.array([position[key] for key in keys])
    values = {metric: np.array([record[metric] for record in records], dtype=np.float64) for metric in PLOTTED}
    written = []
    for subset, title, name in ((np.ones_like(chosen), "all records", "histograms_by_class.png"),
                                (chosen, "selected records", "histograms_by_class_selected.png")):
        path = folder / name
        _histogram_grid(values, rows, subset, classes, config, title, path)
        written.append(str(path))
    written.append(str(_score_by_modality(records, chosen, folder / "score_by_modality.png")))
    return written


def _figure(size):
    """A figure drawn by the Agg canvas without pyplot: no global backend switch (Slicer-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def _gate_lines(metric: str, config: QCConfig) -> list[float]:
    return [bound for gate in GATES if gate.metric == metric for bound in gate.bounds(config) if bound is not None]


def _histogram_grid(values: dict, rows, subset, classes, config: QCConfig, title: str, path: Path, bins: int = 40) -> None:
    """One panel per metric; in each, one histogram per class drawn as an image row scaled to
    its peak (bins over the metric's range across all records; the last bin holds values above
    the 99.5th percentile). Gate bounds in red."""
    figure = _figure((2.0 * len(values) + 2.2, 1.3 + 0.13 * len(classes)))
    axes = figure.subplots(1, len(values))
    totals = np.bincount(rows[subset], minlength=len(classes))
    for panel, (axis, (metric, column_values)) in enumerate(zip(axes, values.items())):
        low = float(column_values.min())
        high = max(float(np.percentile(column_values, 99.5)), low + 1e-9)
        edges = np.linspace(low, high, bins + 1)
        column = np.clip(np.searchsorted(edges, column_values, side="right") - 1, 0, bins - 1)
        counts = np.zeros((len(classes), bins))
        np.add.at(counts, (rows[subset], column[subset]), 1)
        axis.imshow(counts / np.maximum(counts.max(axis=1, keepdims=True), 1), aspect="auto", cmap="Greys",
                    interpolation="nearest", extent=(edges[0], edges[-1], len(classes) - 0.5, -0.5))
        for line in _gate_lines(metric, config):
            if edges[0] <= line <= edges[-1]:
                axis.axvline(line, color="tab:red", linestyle="--", linewidth=0.8)
        axis.set_title(metric, fontsize=7)
        axis.tick_params(axis="x", labelsize=5)
        if panel == 0:
            axis.set_yticks(np.arange(len(classes)), [f"{name[:34]} ({n})" for name, n in zip(classes, totals)],
                            fontsize=5)
        else:
            axis.set_yticks([])
    figure.suptitle(f"{title}: per-class histograms (rows scaled to their peak; gate bounds red)", fontsize=8)
    figure.subplots_adjust(left=0.13, right=0.995, bottom=0.4 / figure.get_figheight(),
                           top=1 - 0.5 / figure.get_figheight(), wspace=0.12)
    figure.savefig(path, dpi=110)


def _score_by_modality(records, chosen, path: Path) -> Path:
    modalities = sorted({str(r["modality"]) for r in records})
    scores = [[r["score"] for r in records if str(r["modality"]) == m and r["passed"]] or [np.nan] for m in modalities]
    picked = [[r["score"] for i, r in enumerate(records) if str(r["modality"]) == m and chosen[i]] or [np.nan]
              for m in modalities]
    figure = _figure((max(5, 1.2 * len(modalities)), 3.5))
    axis = figure.subplots()
    positions = np.arange(len(modalities))
    axis.boxplot(scores, positions=positions - 0.18, widths=0.3, showfliers=False)
    axis.boxplot(picked, positions=positions + 0.18, widths=0.3, showfliers=False,
                 boxprops={"color": "tab:blue"}, medianprops={"color": "tab:blue"})
    axis.set_xticks(positions, modalities, rotation=30, fontsize=7)
    axis.set_ylabel("quality score")
    axis.set_title("score per modality: gate-passing records (black), selected (blue)", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return path


def write_report(summary: dict, folder: Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "summary.json", json.dumps(summary, indent=1, default=str))
    lines = ["# Curation report", "",
             f"Records (slice, label): {summary['records']}; passed the gates: {summary['passed']}; "
             f"selected: {summary['selected']} (target {summary['target']}, classes by {', '.join(summary['class_by'])}); "
             f"files with errors: {summary['files_with_errors']}.", "",
             "| gate | records failing |", "|---|---|"]
    lines += [f"| {gate} | {count} |" for gate, count in summary["gate_rejections"].items()]
    lines += ["", "| modality | records | passed | score median (IQR) of passed | selected | median (IQR) of selected |",
              "|---|---|---|---|---|---|"]
    for modality, parts in summary["score_by_modality"].items():
        lines.append(f"| {modality} | {parts['all']['n']} | {parts['passed']['n']} | {_median_iqr(parts['passed'])} "
                     f"| {parts['selected']['n']} | {_median_iqr(parts['selected'])} |")
    timing = summary.get("timing", {})
    if timing:
        lines += ["", "Timing: " + ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                                             for key, value in timing.items())]
    lines += ["", "| class | records | passed | quota | selected |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {c['records']} | {c['passed']} | {c['quota']} | {c['selected']} |"
              for name, c in sorted(summary["classes"].items())]
    write_text_atomic(folder / "report.md", "\n".join(lines) + "\n")


def _median_iqr(distribution: dict) -> str:
    if not distribution.get("n"):
        return "-"
    return f"{distribution['median']:.3f} ({distribution['q1']:.3f}-{distribution['q3']:.3f})"
