"""SegMoTE's user settings, kept in `qt.QSettings` under `SegMoTE/`.

One small value object so the Logic, the module widget and the effect read the same values.
Engine: "local" (default: `segmote serve` started with Slicer's Python, with the model options
below) or "remote" (a server URL and its token; the model is the server's). The token is kept
in Slicer's settings file of this user; left empty, the SEGMOTE_TOKEN environment variable is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import qt

DEVICES = ("auto", "cpu", "cuda", "mps")
# What runs the model (SegMoTELib.cpu_runtime.RUNTIMES): "auto" is ONNX Runtime on a CPU device, else PyTorch.
RUNTIMES = ("auto", "onnx", "torch")
DEFAULT_BACKBONE = "litemedsam"
# adapter: "default" (the shipped adapter if any, else the base decoder), "none", or a file path.
ADAPTER_DEFAULT = "default"
ADAPTER_NONE = "none"
ENGINES = ("local", "remote")

_PREFIX = "SegMoTE/"


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    backbone: str = DEFAULT_BACKBONE
    checkpoint: str = ""
    adapter: str = ADAPTER_DEFAULT
    fast: bool = True  # SegMoTELib's speed options for the device (fp16 encoder and CUDA graphs on a GPU)
    runtime: str = "auto"
    engine: str = "local"
    serverUrl: str = ""
    serverToken: str = field(default="", repr=False)

    def serveArguments(self) -> list[str]:
        """The model options of the local `segmote serve`."""
        arguments = ["--device", self.device if self.device in DEVICES else "auto",
                     "--backbone", self.backbone or DEFAULT_BACKBONE, "--adapter", self.adapter or ADAPTER_DEFAULT]
        if self.checkpoint:
            arguments += ["--checkpoint", self.checkpoint]
        arguments += ["--runtime", self.runtime if self.runtime in RUNTIMES else "auto"]
        return arguments + (["--fast"] if self.fast else [])

    def withChanges(self, **changes) -> EngineSettings:
        return replace(self, **changes)


def loadSettings() -> EngineSettings:
    settings = qt.QSettings()
    defaults = EngineSettings()
    return EngineSettings(
        device=str(settings.value(_PREFIX + "device", defaults.device)),
        backbone=str(settings.value(_PREFIX + "backbone", defaults.backbone)),
        checkpoint=str(settings.value(_PREFIX + "checkpoint", defaults.checkpoint)),
        adapter=str(settings.value(_PREFIX + "adapter", defaults.adapter)),
        fast=_asBool(settings.value(_PREFIX + "fast", defaults.fast)),
        runtime=_choice(settings.value(_PREFIX + "runtime", defaults.runtime), RUNTIMES),
        engine=_choice(settings.value(_PREFIX + "engine", defaults.engine), ENGINES),
        serverUrl=str(settings.value(_PREFIX + "serverUrl", defaults.serverUrl)),
        serverToken=str(settings.value(_PREFIX + "serverToken", defaults.serverToken)),
    )


def _choice(value, choices) -> str:
    return str(value) if str(value) in choices else choices[0]


def _asBool(value) -> bool:
    # QSettings hands back what the platform stored: a bool, or the strings "true" / "false"
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def saveSettings(engineSettings: EngineSettings) -> None:
    settings = qt.QSettings()
    settings.setValue(_PREFIX + "device", engineSettings.device)
    settings.setValue(_PREFIX + "backbone", engineSettings.backbone)
    settings.setValue(_PREFIX + "checkpoint", engineSettings.checkpoint)
    settings.setValue(_PREFIX + "adapter", engineSettings.adapter)
    settings.setValue(_PREFIX + "fast", bool(engineSettings.fast))
    settings.setValue(_PREFIX + "runtime", engineSettings.runtime)
    settings.setValue(_PREFIX + "engine", engineSettings.engine)
    settings.setValue(_PREFIX + "serverUrl", engineSettings.serverUrl)
    settings.setValue(_PREFIX + "serverToken", engineSettings.serverToken)
