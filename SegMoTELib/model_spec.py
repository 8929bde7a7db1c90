"""What model a run uses, as a small picklable value (the CLI's model options, a cohort engine's
workers, the service): each process builds its own predictor from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "litemedsam"
    checkpoint: str | None = None
    adapter: str | None = "default"    # a path, "default" (the shipped adapter, if any) or "none"
    device: str = "auto"
    fast: bool = False                 # the speed options for the device (modeling.speed.fast_options)
    runtime: str = "auto"              # "auto", "torch" or "onnx" (SegMoTELib.cpu_runtime)
    modality: str | None = None        # a cohort's intensity mapping; None: the file's modality, else auto

    @property
    def adapter_choice(self):
        """The predictor's `adapter` argument: None for 'none', else the value."""
        return None if str(self.adapter).lower() == "none" else self.adapter

    def build_predictor(self, cache_size: int = 16):
        """The predictor (the default cache holds a walk's seed slice, set twice, and shared slices)."""
        from .modeling.speed import fast_options
        from .predictor import SegMoTEPredictor

        speed = fast_options(self.device) if self.fast else {}
        return SegMoTEPredictor(backbone=self.backbone, checkpoint=self.checkpoint, adapter=self.adapter_choice,
                                device=self.device, cache_size=cache_size, runtime=self.runtime, **speed)
