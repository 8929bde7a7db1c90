"""Who is timed: our predictor (PyTorch default, PyTorch with the speed options, and on a CPU the
ONNX Runtime CPU runtime) and the wheel's LiteMedSAM."""

from __future__ import annotations

from dataclasses import dataclass, field

REFERENCE = "reference"
OURS = "ours"
FAST = "ours, fast"
ONNX = "ours, ONNX Runtime"


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
    onnx_base: object = None     # the CPU runtime (SAM's decoder / the shipped adapter); None on GPUs
    onnx_adapter: object = None
    notes: list[str] = field(default_factory=list)

    def bases(self) -> dict:
        """Contender name → predictor with SAM's own decoder (boxes, encoder, walks)."""
        named = {OURS: self.base, FAST: self.fast_base, ONNX: self.onnx_base}
        return {name: predictor for name, predictor in named.items() if predictor is not None}

    def adapters(self) -> dict:
        """Contender name → predictor with the SegMoTE decoder (clicks, prompt-free)."""
        named = {OURS: self.adapter, FAST: self.fast_adapter, ONNX: self.onnx_adapter}
        return {name: predictor for name, predictor in named.items() if predictor is not None}

    @property
    def fast_label(self) -> str:
        parts = (["optimize", self.precision] + (["CUDA graphs"] if self.cuda_graphs else [])
                 + (["compiled encoder"] if self.compile_encoder else []))
        return ", ".join(parts)

    def clear_caches(self) -> None:
        for predictor in (*self.bases().values(), *self.adapters().values()):
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


def build_contenders(device, precision: str, cuda_graphs: bool, compile_encoder: bool = False,
                     runtimes: str = "all") -> Contenders:
    """`runtimes`: "all" (PyTorch default and fast, and ONNX Runtime on a CPU), "torch", or "onnx" /
    "auto" (ONNX Runtime on a CPU; PyTorch elsewhere, where "auto" picks it)."""
    from ..predictor import SegMoTEPredictor
    from .reference import ReferenceLiteMedSAM

    speed = {"precision": precision, "optimize": True, "cuda_graphs": cuda_graphs, "compile_encoder": compile_encoder}
    adapter_model, adapter_kind = _adapter_model(device)
    contenders = Contenders(
        device=device, precision=precision, cuda_graphs=cuda_graphs, compile_encoder=compile_encoder,
        reference=ReferenceLiteMedSAM(device),
        base=SegMoTEPredictor(adapter=None, device=str(device), runtime="torch"),
        fast_base=SegMoTEPredictor(adapter=None, device=str(device), runtime="torch", **speed),
        adapter=SegMoTEPredictor(model=adapter_model, device=str(device), runtime="torch"),
        fast_adapter=SegMoTEPredictor(model=adapter_model, device=str(device), runtime="torch", **speed),
        adapter_kind=adapter_kind,
    )
    if device.type == "cpu" and runtimes in ("all", "onnx", "auto"):
        _add_cpu_runtime(contenders)
        if runtimes != "all" and contenders.onnx_base is not None:  # only ONNX Runtime beside the reference
            contenders.base = contenders.fast_base = contenders.adapter = contenders.fast_adapter = None
    elif runtimes == "onnx":
        from ..errors import InputError

        raise InputError(f"--runtime onnx: ONNX Runtime runs on the CPU; the bench device is {device}")
    return contenders


def _add_cpu_runtime(contenders: Contenders) -> None:
    """The ONNX Runtime predictors (graphs exported into the user cache on first use), with the same
    weights: SAM's decoder, and the shipped adapter. Left out, with a note, where they cannot run."""
    from ..predictor import SegMoTEPredictor

    base = SegMoTEPredictor(adapter=None, device="cpu", runtime="onnx")
    if base.onnx is None:
        contenders.notes.append(f"ONNX Runtime not measured: {base.notice}")
        return
    contenders.onnx_base = base
    adapter = SegMoTEPredictor(device="cpu", runtime="onnx")
    if adapter.onnx is not None and adapter.uses_adapter:
        contenders.onnx_adapter = adapter
    contenders.notes.append(f"ONNX Runtime: {base.runtime_description}")
