"""Start `segmote serve` as a child process on 127.0.0.1 with a fresh token (stdlib only).

What Slicer (with its own PythonSlicer), `segmote bench --server` and the tests use. The token
goes to the child through its environment, never its command line; `--port 0` lets the system
pick a free port, which the child prints in its `listening on` line. A thread keeps reading the
child's output (a full pipe would block it) and keeps the last lines for error messages.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import sys
import threading
from collections import deque

from ..errors import SegMoTEError
from .client import TOKEN_ENV, EngineClient, EngineUnavailable

STARTUP_TIMEOUT_S = 300.0  # a first model load on a slow machine
_KEPT_LINES = 40


class LocalEngine:
    def __init__(self, python: str | None = None, options=(), pythonpath: str | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT_S):
        """`options`: more `segmote serve` arguments (--device, --adapter, --fast, limits...);
        `pythonpath`: a folder to put first on the child's sys.path (a source checkout)."""
        self.python = python or sys.executable
        self.options = [str(option) for option in options]
        self.pythonpath = pythonpath
        self.startup_timeout = float(startup_timeout)
        self.token = secrets.token_urlsafe(32)
        self.url: str | None = None
        self.process: subprocess.Popen | None = None
        self._lines: deque[str] = deque(maxlen=_KEPT_LINES)

    def start(self) -> str:
        """Start the child and wait for its `listening on` line; the URL, or EngineUnavailable."""
        environment = {**os.environ, TOKEN_ENV: self.token, "PYTHONUNBUFFERED": "1"}
        if self.pythonpath:
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [self.pythonpath, environment.get("PYTHONPATH")]))
        command = [self.python, "-m", "SegMoTELib.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--exit-with-parent", *self.options]
        try:
            self.process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        except OSError as error:
            raise EngineUnavailable(f"could not start the engine with {self.python} ({error.strerror})") from None
        announced: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_output, args=(announced,), name="segmote engine output", daemon=True).start()
        try:
            url = announced.get(timeout=self.startup_timeout)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise EngineUnavailable(f"the local engine did not start ({self.describe_exit()})")
        self.url = url
        return url

    def _read_output(self, announced: queue.Queue) -> None:
        told = False
        for line in self.process.stdout:
            self._lines.append(line.rstrip())
            if not told and line.startswith("listening on "):
                announced.put(line.split()[-1].strip())
                told = True
        if not told:
            announced.put(None)  # the child ended before it listened

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe_exit(self) -> str:
        """A short account of why the child is not serving: its exit status and last output line."""
        status = "still starting" if self.running else f"exit status {self.process.poll()}" if self.process else \
            "not started"
        last = next((line for line in reversed(self._lines) if line.strip()), "")
        return f"{status}; last output: {last}" if last else status

    def client(self, timeout: float = 600.0) -> EngineClient:
        if self.url is None:
            raise SegMoTEError("the local engine is not started")
        return EngineClient(self.url, self.token, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
