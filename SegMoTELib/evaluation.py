"""Dice evaluation of the SegMoTE adapter against the base decoder (box, clicks or prompt-free).

Protocol (2D, one score per target):
  * box -- the tight box of the target mask, no jitter (a one-pixel-thin box is widened by one
    pixel, since a box needs an area);
  * click -- N clicks: the first at `central_click` (the foreground pixel deepest inside the mask),
    each later one at `deepest_error_click` of the previous prediction (deepest pixel of the
    largest connected error region; positive if missed object, negative if extra background), with
    all clicks so far and the previous low-res logits as mask_input; Dice after each click is kept;
  * auto -- `predict_auto()` (PPT) on foreground/background targets only; the base decoder has no
    prompt-free mode, so it gets no score there;
  * scribble, lasso -- see `evaluation_strokes` (a scribble curve like the click curve, with the
    negative scribble after a leaking click; one lasso around the target).
Both decoders run on one predictor so they share each image's embedding: the base decoder is the
untouched SAM decoder, "segmote" is the adapter (for boxes too, whatever the adapter's
use_for_boxes routing says, so that the comparison is the adapter's own).
Scores: mean Dice per dataset, and the macro average (mean of the dataset means). With clicks, also
the click curve (mean Dice after each click) and NoC@85 / NoC@90: the number of clicks after which
a target first reaches that Dice, counted as the number of clicks evaluated when it never does (a
NoC is then at most --clicks: compare NoC only between runs with the same --clicks). The
convention of a fixed cap of 20 counted targets that were given 3 clicks as if they had needed 20.
`case_rows` gives one row per target and decoder (the per-case CSV).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .evaluation_strokes import lasso_dice, negative_scribble_effect, scribble_dice_curve
from .training.simulated_user import central_click, deepest_error_click, tight_box

PROMPTS = ("box", "click", "auto", "scribble", "lasso")
CURVE_PROMPTS = ("click", "scribble")  # prompts scored after each interaction
NOC_THRESHOLDS = (0.85, 0.90)
DECODER_TITLES = {"segmote": "SegMoTE", "base": "base decoder"}


def dice_score(prediction: np.ndarray, target: np.ndarray) -> float:
    """2·|P∩T| / (|P| + |T|); 1.0 when both masks are empty."""
    prediction, target = np.asarray(prediction, bool), np.asarray(target, bool)
    total = int(prediction.sum()) + int(target.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & target).sum()) / total


def evaluation_box(mask: np.ndarray) -> np.ndarray:
    """The tight box (x0, y0, x1, y1) of a mask, widened by a pixel where it is one pixel thin."""
    x0, y0, x1, y1 = tight_box(mask)
    height, width = mask.shape
    if x1 == x0:
        x0, x1 = (x0, x0 + 1) if x0 + 1 <= width - 1 else (x0 - 1, x0)
    if y1 == y0:
        y0, y1 = (y0, y0 + 1) if y0 + 1 <= height - 1 else (y0 - 1, y0)
    return np.array([x0, y0, x1, y1], dtype=np.float64)


class DecoderView:
    """One decoder ("segmote" or "base") of a shared `SegMoTEPredictor`.

    Both views share the predictor's embedding cache; each call names its decoder explicitly.
    """

    def __init__(self, predictor, name: str):
        if name not in DECODER_TITLES:
            raise InputError(f"decoder: expected one of {', '.join(DECODER_TITLES)}, got {name!r}")
        if name == "segmote" and not predictor.uses_adapter:
            raise InputError("adapter: the SegMoTE decoder needs an adapter; the predictor has none loaded")
        self.predictor = predictor
        self.name = name

    @property
    def can_predict_auto(self) -> bool:
        return self.name == "segmote"

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, prompt=None, **parts):
        return self.predictor.predict(prompt, decoder=self.name, **parts)

    def predict_auto(self):
        return self.predictor.predict_auto()


def decoder_views(predictor, decoders: Iterable[str] | None = None) -> dict[str, DecoderView]:
    """Views of the predictor's decoders: both when it holds an adapter, else the base one."""
    names = list(decoders) if decoders is not None else (["segmote", "base"] if predictor.uses_adapter else ["base"])
    return {name: DecoderView(predictor, name) for name in names}


def box_dice(view, mask: np.ndarray) -> float:
    prediction = view.predict(box=evaluation_box(mask))
    return dice_score(prediction.masks[0], mask)


def click_dice_curve(view, mask: np.ndarray, clicks: int) -> list[float]:
    """Dice after each of `clicks` simulated clicks (central, then deepest-error refinements)."""
    x, y = central_click(mask)
    points, labels = [[x, y]], [1]
    prediction = view.predict(points=np.array(points, float), labels=np.array(labels))
    curve = [dice_score(prediction.masks[0], mask)]
    while len(curve) < clicks:
        click = deepest_error_click(mask, prediction.masks[0])
        if click is None:  # perfect: further clicks would change nothing
            curve.append(curve[-1])
            continue
        points.append([click[0], click[1]])
        labels.append(click[2])
        prediction = view.predict(points=np.array(points, float), labels=np.array(labels),
                                  mask_input=prediction.low_res_logits[0])
        curve.append(dice_score(prediction.masks[0], mask))
    return curve


def clicks_to_reach(curve: list[float], threshold: float, cap: int | None = None) -> int:
    """NoC: the 1-based click after which Dice first reaches `threshold`; `cap` (default: the
    clicks evaluated, len(curve)) when it never does within the curve, or only after `cap` clicks."""
    cap = len(curve) if cap is None else cap
    for clicks, dice in enumerate(curve, start=1):
        if clicks > cap:
            break
        if dice >= threshold:
            return clicks
    return cap


def noc_key(threshold: float) -> str:
    return f"noc@{round(100 * threshold)}"


@dataclass
class SampleResult:
    dataset: str
    case: str
    target: str
    dice: dict[str, float]  # decoder -> final Dice
    curve: dict[str, list[float]] = field(default_factory=dict)  # decoder -> Dice after each click
    negative_scribble: dict[str, dict] = field(default_factory=dict)  # decoder -> leak removed (scribble prompt)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


@dataclass
class EvaluationReport:
    prompt: str
    clicks: int
    decoders: list[str]
    samples: list[SampleResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def per_dataset(self) -> dict[str, dict]:
        grouped: dict[str, list[SampleResult]] = {}
        for sample in self.samples:
            grouped.setdefault(sample.dataset, []).append(sample)
        summary = {}
        for dataset, samples in sorted(grouped.items()):
            row = {"n": len(samples),
                   "dice": {d: _mean([s.dice[d] for s in samples if d in s.dice]) for d in self.decoders}}
            if self.prompt == "scribble":
                row["negative_scribble"] = _leak_summary(samples, self.decoders)
            if self.prompt in CURVE_PROMPTS:
                curves = {d: [s.curve[d] for s in samples if d in s.curve] for d in self.decoders}
                curves = {d: c for d, c in curves.items() if c}
                row["dice_per_click"] = {d: [float(v) for v in np.mean(c, axis=0)] for d, c in curves.items()}
                row["noc"] = {d: {noc_key(t): float(np.mean([clicks_to_reach(curve, t) for curve in c]))
                                  for t in NOC_THRESHOLDS} for d, c in curves.items()}
            summary[dataset] = row
        return summary

    def macro_curves(self) -> dict[str, dict]:
        """Per decoder, the mean over datasets of the per-click Dice and of the NoC (click prompts)."""
        rows = [row for row in self.per_dataset().values() if "dice_per_click" in row]
        macro = {}
        for d in self.decoders:
            scored = [row for row in rows if d in row["dice_per_click"]]
            if scored:
                macro[d] = {"dice_per_click": [float(v) for v in np.mean([r["dice_per_click"][d] for r in scored], axis=0)],
                            "noc": {noc_key(t): float(np.mean([r["noc"][d][noc_key(t)] for r in scored]))
                                    for t in NOC_THRESHOLDS}}
        return macro

    def macro(self) -> dict[str, float | None]:
        """Mean over datasets of each decoder's per-dataset mean Dice."""
        rows = self.per_dataset().values()
        return {d: _mean([r["dice"][d] for r in rows if r["dice"][d] is not None]) for d in self.decoders}

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "clicks": self.clicks if self.prompt in CURVE_PROMPTS else None,
            "decoders": self.decoders,
            "notes": self.notes,
            "n_targets": len(self.samples),
            "datasets": self.per_dataset(),
            "macro": self.macro(),
            **({"macro_curves": self.macro_curves(), "noc_cap": self.clicks} if self.prompt in CURVE_PROMPTS else {}),
            **({"macro_negative_scribble": self.macro_negative_scribble()} if self.prompt == "scribble" else {}),
            "samples": [{"dataset": s.dataset, "case": s.case, "target": s.target, "dice": s.dice,
                         **({"dice_per_click": s.curve,
                             "noc": {d: {noc_key(t): clicks_to_reach(c, t) for t in NOC_THRESHOLDS}
                                     for d, c in s.curve.items()}} if s.curve else {}),
                         **({"negative_scribble": s.negative_scribble} if s.negative_scribble else {})}
                        for s in self.samples],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        def percent(value):
            return "n/a" if value is None else f"{100 * value:.1f}"

        prompt = f"{self.clicks} {self.prompt}(s)" if self.prompt in CURVE_PROMPTS else self.prompt
        titles = [f"{DECODER_TITLES[d]} Dice %" for d in self.decoders]
        lines = [f"## Dice by dataset — prompt: {prompt}", "",
                 "| dataset | n | " + " | ".join(titles) + " |",
                 "|---|---:|" + "---:|" * len(titles)]
        for dataset, row in self.per_dataset().items():
            lines.append(f"| {dataset} | {row['n']} | " + " | ".join(percent(row["dice"][d]) for d in self.decoders) + " |")
        macro = self.macro()
        lines.append(f"| **macro average** | {len(self.samples)} | "
                     + " | ".join(f"**{percent(macro[d])}**" for d in self.decoders) + " |")
        if self.prompt in CURVE_PROMPTS:
            lines += [""] + self._curve_lines(percent)
        if self.prompt == "scribble":
            lines += [""] + self._leak_lines(percent)
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def macro_negative_scribble(self) -> dict[str, dict]:
        """Per decoder, the mean over datasets of the leak a negative scribble removes (scribble prompt)."""
        rows = [row["negative_scribble"] for row in self.per_dataset().values() if "negative_scribble" in row]
        macro = {}
        for d in self.decoders:
            scored = [row[d] for row in rows if row.get(d)]
            if scored:
                macro[d] = {"n": int(sum(r["n"] for r in scored)),
                            **{k: float(np.mean([r[k] for r in scored])) for k in ("removed", "dice_before", "dice_after")}}
        return macro

    def _leak_lines(self, percent) -> list[str]:
        lines = ["## Negative scribble after a leaking click — share of the false-positive area removed", "",
                 "| dataset | decoder | leaking targets | FP area removed % | Dice % after the click | after the scribble |",
                 "|---|---|---:|---:|---:|---:|"]

        def row(label, decoder, values, bold=False):
            mark = "**" if bold else ""
            cells = [str(values["n"])] + [f"{mark}{percent(values[k])}{mark}" for k in ("removed", "dice_before", "dice_after")]
            return f"| {label} | {DECODER_TITLES[decoder]} | " + " | ".join(cells) + " |"

        for dataset, summary in self.per_dataset().items():
            for d, values in summary.get("negative_scribble", {}).items():
                if values:
                    lines.append(row(dataset, d, values))
        for d, values in self.macro_negative_scribble().items():
            lines.append(row("**macro average**", d, values, bold=True))
        lines += ["", "A target leaks when the central click's mask has false positives of at least 1 % of the "
                      "target's area; one negative scribble runs along the largest leak; removed = 1 − false "
                      "positives after / before (mean over the leaking targets of each dataset, then over datasets)."]
        return lines

    def _curve_lines(self, percent) -> list[str]:
        nocs = [noc_key(t) for t in NOC_THRESHOLDS]
        kind = self.prompt
        lines = [f"## {kind.capitalize()} curves — Dice % after each {kind}, and {kind}s to reach 85 / 90 % Dice", "",
                 "| dataset | decoder | " + " | ".join(str(c) for c in range(1, self.clicks + 1)) + " | "
                 + " | ".join(n.replace("noc", "NoC") for n in nocs) + " |",
                 "|---|---|" + "---:|" * (self.clicks + len(nocs))]

        def row(label, decoder, curve, noc, bold=False):
            mark = "**" if bold else ""
            cells = [f"{mark}{percent(v)}{mark}" for v in curve] + [f"{mark}{noc[n]:.2f}{mark}" for n in nocs]
            return f"| {label} | {DECODER_TITLES[decoder]} | " + " | ".join(cells) + " |"

        for dataset, summary in self.per_dataset().items():
            for d, curve in summary.get("dice_per_click", {}).items():
                lines.append(row(dataset, d, curve, summary["noc"][d]))
        for d, macro in self.macro_curves().items():
            lines.append(row("**macro average**", d, macro["dice_per_click"], macro["noc"], bold=True))
        lines += ["", f"NoC@85 / NoC@90: mean number of {kind}s until a target's Dice first reaches 85 / 90 %; "
                      f"a target that does not within the {self.clicks} {kind}(s) evaluated counts as {self.clicks}."]
        return lines

    def case_rows(self) -> list[dict]:
        """One row per target and decoder: its Dice, and with clicks its Dice after each click and NoC."""
        rows = []
        for sample in self.samples:
            for decoder in self.decoders:
                if decoder not in sample.dice:
                    continue
                row = {"dataset": sample.dataset, "case": sample.case, "target": sample.target, "decoder": decoder,
                       "dice": round(sample.dice[decoder], 6)}
                curve = sample.curve.get(decoder)
                if curve:
                    row.update({f"dice_click_{n}": round(v, 6) for n, v in enumerate(curve, start=1)})
                    row.update({noc_key(t): clicks_to_reach(curve, t) for t in NOC_THRESHOLDS})
                rows.append(row)
        return rows

    def to_csv(self) -> str:
        import csv
        import io

        rows = self.case_rows()
        columns = ["dataset", "case", "target", "decoder", "dice"]
        if self.prompt in CURVE_PROMPTS:
            columns += [f"dice_click_{n}" for n in range(1, self.clicks + 1)] + [noc_key(t) for t in NOC_THRESHOLDS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def draw_click_curve(self, path) -> None:
        """PNG: macro Dice after each click per decoder (thick), each dataset's curve (thin)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.0, 4.0))
        FigureCanvasAgg(figure)  # drawn without pyplot: no global backend switch (Slicer-safe)
        axis = figure.subplots()
        clicks = np.arange(1, self.clicks + 1)
        colours = {"segmote": "tab:blue", "base": "tab:orange"}
        for row in self.per_dataset().values():
            for decoder, curve in row.get("dice_per_click", {}).items():
                axis.plot(clicks, 100 * np.asarray(curve), color=colours.get(decoder, "grey"), alpha=0.25, linewidth=0.8)
        for decoder, macro in self.macro_curves().items():
            axis.plot(clicks, 100 * np.asarray(macro["dice_per_click"]), color=colours.get(decoder, "black"),
                      linewidth=2.2, marker="o", label=f"{DECODER_TITLES[decoder]} (macro; thin: each dataset)")
        for threshold in NOC_THRESHOLDS:
            axis.axhline(100 * threshold, color="grey", linestyle=":", linewidth=0.8)
        axis.set_xticks(clicks)
        axis.set_xlabel(self.prompt)
        axis.set_ylabel("Dice %")
        axis.set_ylim(0, 100)
        axis.set_title(f"Dice after each {self.prompt} ({len(self.samples)} targets)", fontsize=9)
        axis.legend(fontsize=7, loc="lower right")
        figure.tight_layout()
        figure.savefig(path, dpi=100)


def _leak_summary(samples: list[SampleResult], decoders: list[str]) -> dict[str, dict]:
    summary = {}
    for d in decoders:
        effects = [s.negative_scribble[d] for s in samples if d in s.negative_scribble]
        summary[d] = {"n": len(effects), **{k: float(np.mean([e[k] for e in effects]))
                                            for k in ("removed", "dice_before", "dice_after")}} if effects else {}
    return summary


def evaluate(samples: Iterable, views: dict[str, DecoderView], prompt: str = "box", clicks: int = 1,
             progress: Callable[[SampleResult], None] | None = None) -> EvaluationReport:
    """Score every sample (an `evalsets.EvalSample`) with every decoder view.

    For prompt "auto", give only prompt-free targets (`iter_eval_samples(prompt_free_only=True)`);
    decoders without a prompt-free mode are left out of the scores.
    """
    if prompt not in PROMPTS:
        raise InputError(f"prompt: expected one of {', '.join(PROMPTS)}, got {prompt!r}")
    if clicks < 1:
        raise InputError(f"clicks: expected at least 1, got {clicks}")
    if not views:
        raise InputError("decoders: nothing to evaluate (no decoder given)")
    report = EvaluationReport(prompt, clicks, list(views))
    if prompt == "auto":
        skipped = [name for name, view in views.items() if not view.can_predict_auto]
        report.notes += [f"{DECODER_TITLES[name]}: no prompt-free mode, not scored" for name in skipped]
    for sample in samples:
        result = SampleResult(sample.dataset, sample.case, sample.target, {})
        for name, view in views.items():
            view.set_image(sample.image)
            if prompt == "box":
                result.dice[name] = box_dice(view, sample.mask)
            elif prompt == "click":
                result.curve[name] = click_dice_curve(view, sample.mask, clicks)
                result.dice[name] = result.curve[name][-1]
            elif prompt == "scribble":
                result.curve[name] = scribble_dice_curve(view, sample.mask, clicks)
                result.dice[name] = result.curve[name][-1]
                leak = negative_scribble_effect(view, sample.mask)
                if leak is not None:
                    result.negative_scribble[name] = leak
            elif prompt == "lasso":
                result.dice[name] = lasso_dice(view, sample.mask)
            elif view.can_predict_auto:
                result.dice[name] = dice_score(view.predict_auto().masks[0], sample.mask)
        report.samples.append(result)
        if progress is not None:
            progress(result)
    return report
