"""Hard quality gates and the quality score (docs/CURATION.md), for one record or whole columns.

Gates (inclusive bounds): μ ∈ [mean_min, mean_max], σ ≥ std_min,
fg_ratio_min ≤ R_FG ≤ fg_ratio_max, C_N ≤ components_max.
Score = Σ weight · tanh(metric / scale) over sharpness S, contrast C, entropy H and boundary
gradient G (defaults 0.30/200, 0.30/40, 0.20/6, 0.20/20).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import QCConfig


@dataclass(frozen=True)
class Gate:
    name: str          # record key of the gate's boolean (True = passed)
    metric: str        # metric it tests
    low_field: str | None   # QCConfig field of the lower bound, if any
    high_field: str | None  # QCConfig field of the upper bound, if any

    def bounds(self, config: QCConfig) -> tuple[float | None, float | None]:
        return (getattr(config, self.low_field) if self.low_field else None,
                getattr(config, self.high_field) if self.high_field else None)

    def passes(self, values, config: QCConfig):
        low, high = self.bounds(config)
        values = np.asarray(values, dtype=np.float64)
        ok = np.ones(values.shape, dtype=bool)
        if low is not None:
            ok &= values >= low
        if high is not None:
            ok &= values <= high
        return ok

    def describe(self, value: float, config: QCConfig) -> str:
        """Why `value` failed, e.g. 'std=0 < 6'."""
        low, high = self.bounds(config)
        shown = f"{self.metric}={_number(value)}"
        if low is not None and value < low:
            return f"{shown} < {_number(low)}"
        return f"{shown} > {_number(high)}"


GATES = (
    Gate("gate_mean", "mean", "mean_min", "mean_max"),
    Gate("gate_std", "std", "std_min", None),
    Gate("gate_fg_ratio", "fg_ratio", "fg_ratio_min", "fg_ratio_max"),
    Gate("gate_n_components", "n_components", None, "components_max"),
)
GATE_NAMES = tuple(gate.name for gate in GATES)
SCORE_TERMS = (("sharpness", "weight_sharpness", "scale_sharpness"),
               ("contrast", "weight_contrast", "scale_contrast"),
               ("entropy", "weight_entropy", "scale_entropy"),
               ("boundary_gradient", "weight_gradient", "scale_gradient"))


def _number(value: float) -> str:
    return f"{value:.4g}"


def evaluate_gates(metrics: dict, config: QCConfig | None = None) -> tuple[bool, list[str]]:
    """(passed, failures) of one record's metrics; failures read like 'std=0 < 6'."""
    config = config or QCConfig()
    failures = [gate.describe(float(metrics[gate.metric]), config)
                for gate in GATES if not bool(gate.passes(metrics[gate.metric], config))]
    return not failures, failures


def quality_score(metrics: dict, config: QCConfig | None = None):
    """Score of one record (a float) or of metric columns (an array)."""
    config = config or QCConfig()
    total = 0.0
    for metric, weight, scale in SCORE_TERMS:
        values = np.asarray(metrics[metric], dtype=np.float64)
        total = total + getattr(config, weight) * np.tanh(values / getattr(config, scale))
    return float(total) if np.ndim(total) == 0 else total


def apply_quality(records: list[dict], config: QCConfig | None = None) -> list[dict]:
    """Add every gate boolean, `passed`, `failures` (text) and `score` to records, in place."""
    config = config or QCConfig()
    if not records:
        return records
    columns = {gate.metric: np.array([record[gate.metric] for record in records], dtype=np.float64)
               for gate in GATES}
    for metric, _, _ in SCORE_TERMS:
        columns[metric] = np.array([record[metric] for record in records], dtype=np.float64)
    verdicts = {gate.name: gate.passes(columns[gate.metric], config) for gate in GATES}
    scores = quality_score(columns, config)
    for index, record in enumerate(records):
        failures = []
        for gate in GATES:
            ok = bool(verdicts[gate.name][index])
            record[gate.name] = ok
            if not ok:
                failures.append(gate.describe(float(columns[gate.metric][index]), config))
        record["passed"] = not failures
        record["failures"] = "; ".join(failures)
        record["score"] = float(scores[index])
    return records
