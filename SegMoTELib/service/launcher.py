"""Start `segmote serve` as a child process on 127.0.0.1 with a fresh token (stdlib only).

What Slicer (with its own PythonSlicer), `segmote bench --server` and the tests use. The token
goes to the child through its environment, never its command line; `--port 0` lets the system
pick a free port, which the child prints in its `listening on` line.

The child runs with `--exit-on-stdin-close` and a standard input pipe that this object keeps open
and never writes to: however this process ends (exit, crash, kill), the system closes the pipe and
the engine stops within seconds, also through a launcher in between (`service/lifetime.py`).
`stop()` ends the child and its own children together (`process_tree.py`: a process group, or a
Windows job object), and no console window shows on Windows.

`launch()` returns at once; `poll()` says whether the engine listens yet (what Slicer's main thread
calls from a timer); `start()` is both, blocking. A thread reads the child's output (a full pipe
would block it) and keeps the last lines for error messages; once the engine listens it prints
nothing more (no access log), so that thread sleeps in its read.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections import deque

from ..errors import SegMoTEError
from .client import TOKEN_ENV, EngineClient, EngineUnavailable
from .process_tree import ProcessTree, popen_options

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
        self._tree: ProcessTree | None = None
        self._lines: deque[str] = deque(maxlen=_KEPT_LINES)
        self._ended_output = threading.Event()
        self._launched_at = 0.0

    def command(self) -> list[str]:
        return [self.python, "-m", "SegMoTELib.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                "--exit-on-stdin-close", "--no-access-log", *self.options]

    def launch(self) -> None:
        """Start the child (returns at once); `poll()` then says when it listens."""
        environment = {**os.environ, TOKEN_ENV: self.token, "PYTHONUNBUFFERED": "1"}
        if self.pythonpath:
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [self.pythonpath, environment.get("PYTHONPATH")]))
        try:
            self.process = subprocess.Popen(self.command(), env=environment, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                            encoding="utf-8", errors="replace", **popen_options())
        except OSError as error:
            raise EngineUnavailable(f"could not start the engine with {self.python} ({error.strerror})") from None
        self._tree = ProcessTree(self.process)
        self._launched_at = time.monotonic()
        threading.Thread(target=self._read_output, name="segmote engine output", daemon=True).start()

    def poll(self) -> str | None:
        """The URL once the engine listens, None while it starts; EngineUnavailable when it ended or
        did not listen within the start-up timeout."""
        if self.url is not None:
            return self.url
        if self.process is None:
            raise SegMoTEError("the local engine is not started")
        if self._ended_output.is_set() or self.process.poll() is not None:
            self._ended_output.wait(2.0)  # its last lines say why
            self.stop()
            raise EngineUnavailable(f"the local engine did not start ({self.describe_exit()})")
        if time.monotonic() - self._launched_at > self.startup_timeout:
            self.stop()
            raise EngineUnavailable(f"the local engine did not start within {self.startup_timeout:g} s "
                                    f"({self.describe_exit()})")
        return None

    def start(self) -> str:
        """Start the child and wait for its `listening on` line; the URL, or EngineUnavailable."""
        self.launch()
        while True:
            url = self.poll()
            if url is not None:
                return url
            time.sleep(0.05)

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line.rstrip())
            if self.url is None and line.startswith("listening on "):
                self.url = line.split()[-1].strip()
        self._ended_output.set()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def describe_exit(self) -> str:
        """A short account of why the child is not serving: its exit status and last output line."""
        status = "still starting" if self.running else f"exit status {self.process.poll()}" if self.process else \
            "not started"
        last = next((line for line in reversed(self._lines) if line.strip()), "")
        return f"{status}; last output: {last}" if last else status

    def output_lines(self) -> list[str]:
        return list(self._lines)

    def client(self, timeout: float | None = None) -> EngineClient:
        if self.url is None:
            raise SegMoTEError("the local engine is not started")
        return EngineClient(self.url, self.token) if timeout is None else EngineClient(self.url, self.token, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """End the engine and whatever it started (a launcher's python-real)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._tree.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._tree.kill()
                self.process.wait(timeout)
        else:
            self._tree.terminate()  # the launcher is gone; its children may not be
        self._close_stdin()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._tree.kill()
            self.process.wait(10)
        self._close_stdin()

    def _close_stdin(self) -> None:
        stdin = self.process.stdin if self.process is not None else None
        if stdin is not None and not stdin.closed:
            try:
                stdin.close()
            except OSError:
                pass
