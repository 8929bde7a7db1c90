"""Who is timed: our predictor (default, and with the speed options) and the wheel's LiteMedSAM."""

from __future__ import annotations

from dataclasses import dataclass, field

REFERENCE = "reference"
OURS = "ours"
FAST = "ours, fast"


@dataclass
class Contenders:
    """The predictors of one run. `base` and `fast_base` use SAM's own decoder (what boxes use);
    `adapter` and `fast_adapter` the SegMoTE decoder (clicks, prompt-free)."""

    device: object
    precision: str
    cuda_graphs: bool
    compile_encoder: bool
    reference: object
    base: object
    fast_base: object
    adapter: object
    fast_adapter: object
    adapter_kind: str
    notes: list[str] = field(default_factory=list)

    @property
    def fast_label(self) -> str:
        parts = (["optimize", self.precision] + (["CUDA graphs"] if self.cuda_graphs else [])
                 + (["compiled encoder"] if self.compile_encoder else []))
        return ", ".join(parts)

    def clear_caches(self) -> None:
        for predictor in (self.base, self.fast_base, self.adapter, self.fast_adapter):
            predictor.clear_cache()


def _adapter_model(device):
    """The shipped adapter if there is one, else an untrained adapter (the same computation)."""
    from ..backbones import load_backbone
    from ..modeling import SegMoTEModel
    from ..predictor import resolve_default_adapter

    path = resolve_default_adapter("litemedsam")
    if path is not None:
        return SegMoTEModel.from_adapter(load_backbone("litemedsam"), path), f"shipped adapter {path.name}"
    return SegMoTEModel(load_backbone("litemedsam")), "untrained adapter (no shipped one yet; same computation)"


def build_contenders(device, precision: str, cuda_graphs: bool, compile_encoder: bool = False) -> Contenders:
    from ..predictor import SegMoTEPredictor
    from .reference import ReferenceLiteMedSAM

    speed = {"precision": precision, "optimize": True, "cuda_graphs": cuda_graphs, "compile_encoder": compile_encoder}
    adapter_model, adapter_kind = _adapter_model(device)
    return Contenders(
        device=device, precision=precision, cuda_graphs=cuda_graphs, compile_encoder=compile_encoder,
        reference=ReferenceLiteMedSAM(device),
        base=SegMoTEPredictor(adapter=None, device=str(device)),
        fast_base=SegMoTEPredictor(adapter=None, device=str(device), **speed),
        adapter=SegMoTEPredictor(model=adapter_model, device=str(device)),
        fast_adapter=SegMoTEPredictor(model=adapter_model, device=str(device), **speed),
        adapter_kind=adapter_kind,
    )
