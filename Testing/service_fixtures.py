"""A real `segmote serve` process on a free port, for the service tests (SegMoTELib's launcher)."""

from __future__ import annotations

from pathlib import Path

from SegMoTELib.service.launcher import LocalEngine

REPO = Path(__file__).resolve().parents[1]


class ServerProcess(LocalEngine):
    def __init__(self, *options: str):
        super().__init__(options=["--device", "cpu", "--adapter", "none", *options], pythonpath=str(REPO))
        self.start()
