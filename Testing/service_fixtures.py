"""A real `segmote serve` process on a free port, for the service tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 240  # a model load on a busy 2-core machine


class ServerProcess:
    def __init__(self, *options: str):
        self.token = secrets.token_urlsafe(24)
        environment = {**os.environ, "SEGMOTE_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "SegMoTELib.cli", "serve", "--port", "0", "--device", "cpu",
                   "--adapter", "none", *options]
        self.process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.url = self._wait_for_listening()

    def _wait_for_listening(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("listening on "):
                return line.split()[-1].strip()
        self.stop()
        raise RuntimeError("segmote serve did not start:\n" + "".join(seen))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
