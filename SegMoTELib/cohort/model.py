"""What model a cohort run uses, as a small picklable value: each engine worker builds its own predictor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "litemedsam"
    checkpoint: str | None = None
    adapter: str | None = "default"    # a path, "default" or "none"
    device: str = "auto"
    fast: bool = False
    modality: str | None = None        # intensity mapping; None: the file's modality, else auto

    def build_predictor(self):
        from ..commands.model_options import predictor_from_args

        # The walk of a propagation revisits its seed slice: a cache as `segmote segment` uses.
        return predictor_from_args(self, cache_size=16)
