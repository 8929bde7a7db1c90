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

    def predictorArguments(self) -> dict:
        """Keyword arguments of `SegMoTELib.predictor.SegMoTEPredictor`."""
        adapter = None if self.adapter == ADAPTER_NONE else (self.adapter or ADAPTER_DEFAULT)
        return {
            "backbone": self.backbone or DEFAULT_BACKBONE,
            "checkpoint": self.checkpoint or None,
            "adapter": adapter,
            "device": self.device if self.device in DEVICES else "auto",
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
    )


def saveSettings(engineSettings: EngineSettings) -> None:
    settings = qt.QSettings()
    settings.setValue(_PREFIX + "device", engineSettings.device)
    settings.setValue(_PREFIX + "backbone", engineSettings.backbone)
    settings.setValue(_PREFIX + "checkpoint", engineSettings.checkpoint)
    settings.setValue(_PREFIX + "adapter", engineSettings.adapter)
