"""Every threshold, weight and scale of the curation gates, score and sampler, in one dataclass.

Defaults are MedSeg-HQ's values; docs/CURATION.md documents every field. `QCConfig.from_file` reads overrides from a
JSON object whose keys are field names, so a run can be reproduced from its saved config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class QCConfig:
    # Hard gates (inclusive bounds).
    mean_min: float = 5.0
    mean_max: float = 245.0
    std_min: float = 6.0
    fg_ratio_min: float = 0.02
    fg_ratio_max: float = 0.95
    components_max: int = 300
    # Score = sum of weight * tanh(metric / scale).
    weight_sharpness: float = 0.30
    weight_contrast: float = 0.30
    weight_entropy: float = 0.20
    weight_gradient: float = 0.20
    scale_sharpness: float = 200.0
    scale_contrast: float = 40.0
    scale_entropy: float = 6.0
    scale_gradient: float = 20.0
    # Sampler: p ∝ score^(1/tau), slice-index quantile buckets per class.
    tau: float = 0.85
    n_buckets: int = 5

    def __post_init__(self):
        for name in ("scale_sharpness", "scale_contrast", "scale_entropy", "scale_gradient", "tau"):
            if not getattr(self, name) > 0:
                raise InputError(f"config {name}: must be a positive number, got {getattr(self, name)}")
        for name in ("weight_sharpness", "weight_contrast", "weight_entropy", "weight_gradient"):
            if not getattr(self, name) >= 0:
                raise InputError(f"config {name}: must be a non-negative number, got {getattr(self, name)}")
        if int(self.n_buckets) != self.n_buckets or self.n_buckets < 1:
            raise InputError(f"config n_buckets: must be a positive integer, got {self.n_buckets}")
        if self.mean_min > self.mean_max or self.fg_ratio_min > self.fg_ratio_max:
            raise InputError("config: a gate's minimum is above its maximum (mean_min/mean_max or fg_ratio_min/fg_ratio_max)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> QCConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"config: unknown field(s) {', '.join(unknown)}; known fields are {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> QCConfig:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"config file {path}: cannot read it as JSON ({error})") from None
        if not isinstance(values, dict):
            raise InputError(f"config file {path}: expected a JSON object of QCConfig fields")
        return cls.from_dict(values)
