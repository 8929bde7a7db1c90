"""SegMoTE's user settings, kept in `qt.QSettings` under `SegMoTE/`.

One small value object so the Logic, the module widget and the effect read the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import qt

DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_BACKBONE = "litemedsam"
# adapter: "default" (the shipped adapter if any, else the base decoder), "none", or a file path.
ADAPTER_DEFAULT = "default"
ADAPTER_NONE = "none"

_PREFIX = "SegMoTE/"


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    backbone: str = DEFAULT_BACKBONE
    checkpoint: str = ""
    adapter: str = ADAPTER_DEFAULT
    fast: bool = True  # SegMoTELib's speed options for the device (fp16 encoder and CUDA graphs on a GPU)

    def predictorArguments(self) -> dict:
        """Keyword arguments of `SegMoTELib.predictor.SegMoTEPredictor`."""
        from SegMoTELib.modeling.speed import fast_options

        adapter = None if self.adapter == ADAPTER_NONE else (self.adapter or ADAPTER_DEFAULT)
        device = self.device if self.device in DEVICES else "auto"
        return {
            "backbone": self.backbone or DEFAULT_BACKBONE,
            "checkpoint": self.checkpoint or None,
            "adapter": adapter,
            "device": device,
            **(fast_options(device) if self.fast else {}),
        }

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
    )


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
