"""An optimized CPU runtime for the whole model: the image encoder, SAM's and SegMoTE's decoders
(prompt encoder, PPT, mask upsampling) exported to ONNX and run by ONNX Runtime.

Why ONNX Runtime: measured on the project's 2-core AMD EPYC (BENCHMARKS.md, "Choosing the CPU
runtime"), OpenVINO's encoder was at most ~10-25 % cheaper, but OpenVINO 2026.4's CPU plugin does
not compile the decoder graphs with a dynamic point count (only with fixed shapes, one compilation
per count, and its SAM decoder was slower there); ONNX Runtime takes any number of prompt points
in one graph and installs with pip everywhere Slicer runs. int8 (dynamic, or static with
calibration on train_pool) was no faster on this AVX2 CPU (no VNNI) and moved the embedding by
18-78 %: the runtime is fp32.

`choose_runtime(requested, device, backbone)` decides what a predictor runs on: "torch", or
"onnx" on a CPU device for LiteMedSAM when onnxruntime (and onnx, for the export) import; "auto"
is "onnx" where it can run, else "torch". When the packages are missing, the predictor says so in
one line and runs on PyTorch.
"""

from __future__ import annotations

from ..errors import InputError, first_line

RUNTIMES = ("auto", "torch", "onnx")
SUPPORTED_BACKBONES = ("litemedsam",)


def check_runtime_name(requested: str) -> str:
    name = str(requested).strip().lower()
    if name not in RUNTIMES:
        raise InputError(f"runtime: expected one of {', '.join(RUNTIMES)}, got {requested!r}")
    return name


def onnx_unavailable() -> str | None:
    """Why the ONNX runtime cannot run here (a missing or broken package), or None."""
    for package in ("onnxruntime", "onnx"):
        try:
            __import__(package)
        except Exception as error:  # noqa: BLE001 — an ImportError, or a broken native library
            detail = "is not installed" if isinstance(error, ModuleNotFoundError) \
                else f"does not load ({first_line(error, 120)})"
            return f"the '{package}' package {detail}"
    return None


def choose_runtime(requested: str, device, backbone: str) -> tuple[str, str | None]:
    """(runtime to use, a one-line notice or None). Raises InputError only for an explicit request
    that cannot make sense (ONNX on a GPU device, or for a backbone it is not made for)."""
    name = check_runtime_name(requested)
    if name == "torch":
        return "torch", None
    kind = getattr(device, "type", str(device))
    if kind != "cpu" or backbone not in SUPPORTED_BACKBONES:
        if name == "onnx":
            why = (f"it runs on the CPU and the device is {device} (use --device cpu or --runtime torch)"
                   if kind != "cpu" else f"it is made for {', '.join(SUPPORTED_BACKBONES)}, not {backbone}")
            raise InputError(f"runtime: 'onnx' cannot run this model: {why}")
        return "torch", None
    problem = onnx_unavailable()
    if problem is not None:
        return "torch", (f"runtime: {problem}, so the model runs on PyTorch (slower on a CPU); "
                         f"pip install 'onnxruntime>=1.17,<2' 'onnx>=1.16,<2' for the optimized CPU runtime")
    return "onnx", None


def load_onnx_model(model, uses_adapter: bool, adapter_path, threads: int, low_res: int, log=None):
    """The model's `OnnxModel`, its graphs loaded from the cache or exported first."""
    from .export import load_or_export
    from .onnx_model import OnnxModel

    folder, metadata = load_or_export(model, uses_adapter, adapter_path, log=log)
    return OnnxModel(folder, metadata, threads, low_res)
