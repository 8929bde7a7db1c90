"""Summary figures and numbers of a curation run.

`summarise` gives the numbers (gate rejection counts, score distribution per modality, and per
class what `explain.py` works out: gates that removed more than 10 %, quota, buckets, global fill);
`write_plots` draws a bar per class (selected, passed but not selected, rejected), per metric and
for the score one histogram panel per class (all records in grey, selected ones in colour, gate
bounds dashed) and a box plot of the score per modality; `write_report` writes summary.json and
report.md, which says in words what the numbers mean (docs/CURATION.md for the method).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import QCConfig
from .explain import NOTABLE_SHARE, class_name, explain_classes, gate_advice
from .gates import GATES
from .metrics import METRIC_NAMES
from .tables import write_text_atomic

PLOTTED = tuple(name for name in METRIC_NAMES if name != "contrast") + ("score",)  # contrast ≡ std


def _distribution(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": int(values.size), "median": float(median), "q1": float(q1), "q3": float(q3),
            "iqr": float(q3 - q1), "mean": float(values.mean())}


def summarise(records: list[dict], selected: list[int], target: int, class_by: tuple, errors: list[dict],
              config: QCConfig | None = None) -> dict:
    config = config or QCConfig()
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
    classes = explain_classes(records, selected, target, class_by, config) if records else {}
    return {"records": len(records), "passed": int(sum(r["passed"] for r in records)),
            "rejected": int(sum(not r["passed"] for r in records)), "selected": int(chosen.sum()),
            "target": int(target), "class_by": list(class_by), "gate_rejections": gate_counts,
            "files_with_errors": len(errors), "score_by_modality": by_modality, "classes": classes,
            "notable_gates": notable_gate_lines(classes, config)}


def notable_gate_lines(classes: dict, config: QCConfig) -> list[str]:
    """One line per (class, gate) where the gate removed more than NOTABLE_SHARE of the class."""
    return [f"{name}: {gate_advice(gate, entry['gates'][gate], entry['records'], config)}"
            for name, entry in classes.items() for gate in entry["notable_gates"]]


def write_plots(records: list[dict], selected: list[int], class_by: tuple, config: QCConfig, folder: Path) -> list[str]:
    """PNG figures: per-class histograms of every metric and the score (all records, then the
    selected ones), and the score per modality. Returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not records:
        return []
    chosen = np.zeros(len(records), dtype=bool)
    chosen[selected] = True
    keys = [class_name(record, class_by) for record in records]
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
    written.append(str(_class_bars(records, chosen, classes, rows, folder / "classes.png")))
    return written


def _class_bars(records: list[dict], chosen, classes: list[str], rows, path: Path) -> Path:
    """One horizontal bar per class: selected, passed but not selected, rejected; each bar's
    counts written beside it, so a small class reads as well as a large one."""
    passed = np.array([bool(record["passed"]) for record in records])
    counts = {name: np.bincount(rows[mask], minlength=len(classes)) for name, mask in
              (("selected", chosen), ("passed, not selected", passed & ~chosen), ("rejected by a gate", ~passed))}
    figure = _figure((7.5, 1.6 + 0.22 * len(classes)))
    axis = figure.subplots()
    positions = np.arange(len(classes))
    left = np.zeros(len(classes))
    for (label, values), colour in zip(counts.items(), ("tab:blue", "tab:green", "tab:red")):
        axis.barh(positions, values, left=left, color=colour, label=label, height=0.75)
        left += values
    for position, (picked, kept, _) in enumerate(zip(*counts.values())):
        axis.text(left[position], position, f"  {picked} selected / {picked + kept} passed / {left[position]:.0f}",
                  va="center", fontsize=5)
    axis.set_xlim(0, left.max() * 1.3)
    axis.set_yticks(positions, [name[:40] for name in classes], fontsize=6)
    axis.invert_yaxis()
    axis.set_xlabel("records (slice, label)", fontsize=7)
    axis.tick_params(axis="x", labelsize=6)
    axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.5 / figure.get_figheight() - 0.12), ncol=3,
                frameon=False)
    axis.set_title("per class: selected, passed the gates but not selected, rejected", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


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
    classes = summary["classes"]
    lines = ["# Curation report", "",
             f"Records (slice, label): {summary['records']}; passed the gates: {summary['passed']}; "
             f"selected: {summary['selected']} (target {summary['target']}, classes by {', '.join(summary['class_by'])}); "
             f"files with errors: {summary['files_with_errors']}. Method and `--config` fields: docs/CURATION.md "
             f"of the SegMoTE repository.", "",
             "## Gates that removed more than 10 % of a class", ""]
    if summary["notable_gates"]:
        lines += ["Each line names the `--config` field that sets the bound; `rejects.csv` lists every rejected "
                  "record with its value.", ""]
        lines += [f"- {line}" for line in summary["notable_gates"]]
    else:
        lines.append(f"None: every gate kept at least {100 - 100 * NOTABLE_SHARE:.0f} % of every class.")
    lines += ["", "| gate | records failing |", "|---|---|"]
    lines += [f"| {gate} | {count} |" for gate, count in summary["gate_rejections"].items()]
    lines += ["", "## How the selection was made", "",
              f"1. Each class's quota is its share of all {summary['records']} records (rejected ones included) times "
              f"the target {summary['target']}.",
              "2. Inside a class, records are ranked by slice index and split into buckets; each bucket draws its "
              "share of the quota among its own passing records, with probability growing with the score.",
              "3. Whatever the buckets could not supply is drawn from all passing records left (the global fill).",
              "", "Figure: `classes.png` (selected, passed but not selected, rejected, per class).", "",
              "| class | records | rejected | passed | quota | from its buckets | from the global fill | selected "
              "| why |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {c['records']} | {c['rejected']} | {c['passed']} | {c['quota']} | {c['from_buckets']} | "
              f"{c['from_fill']} | {c['selected']} | {c['note']} |" for name, c in classes.items()]
    lines += ["", "## Scores", "",
              "| modality | records | passed | score median (IQR) of passed | selected | median (IQR) of selected |",
              "|---|---|---|---|---|---|"]
    for modality, parts in summary["score_by_modality"].items():
        lines.append(f"| {modality} | {parts['all']['n']} | {parts['passed']['n']} | {_median_iqr(parts['passed'])} "
                     f"| {parts['selected']['n']} | {_median_iqr(parts['selected'])} |")
    timing = summary.get("timing", {})
    if timing:
        lines += ["", "Timing: " + ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                                             for key, value in timing.items())]
    write_text_atomic(folder / "report.md", "\n".join(lines) + "\n")


def _median_iqr(distribution: dict) -> str:
    if not distribution.get("n"):
        return "-"
    return f"{distribution['median']:.3f} ({distribution['q1']:.3f}-{distribution['q3']:.3f})"
