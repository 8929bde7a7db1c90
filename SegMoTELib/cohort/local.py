"""The local cohort engine: one predictor in this process, the studies one after the other.

Needs nothing beyond the base install (no Ray). The predictor is built once, before the first row,
so a wrong model option (a missing checkpoint, an unknown device) stops the run at once instead of
failing every row.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..model_spec import ModelSpec
from .study import run_job


class LocalCohortEngine:
    name = "local"
    workers = 1

    def __init__(self, model: ModelSpec):
        self.model = model
        self.notice = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, jobs, out_dir) -> Iterator[list[dict]]:
        """The outcomes of each study's rows, study after study."""
        predictor = self.model.build_predictor()
        self.notice = predictor.notice or ""
        for job in jobs:
            yield run_job(predictor, job, out_dir, self.model)
