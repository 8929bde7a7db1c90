"""When a local engine ends by itself: its standard input closes, or its parent goes away.

`--exit-on-stdin-close` (what Slicer uses): the starter keeps the write end of the child's stdin
pipe open and never writes to it. However the starter ends — a clean exit, a crash, a kill — the
operating system closes that end, the child reads end of file, and stops. This works through a
launcher in between (Slicer's `PythonSlicer` is CTKAppLauncher, which starts `python-real` with its
own standard input forwarded: `QProcess::ForwardedInputChannel` and a `dup2` of its stdin in
`Base/ctkAppLauncher.cpp`), where "my parent died" cannot be seen: the parent is the launcher,
which lives on. It works the same on Windows, where there is no re-parenting to watch.

`--exit-with-parent` (POSIX): the parent recorded when the process starts, not once the model has
loaded (a Slicer that crashed during the load would otherwise never be noticed).

Both watches start before the model loads; until the server runs, noticing means exiting at once.
"""

from __future__ import annotations

import os
import threading
import time

GRACE_S = 3.0  # a running server's graceful stop before the process is ended regardless


class LifetimeWatch:
    def __init__(self):
        self._server = None
        self._lock = threading.Lock()
        self.reason: str | None = None

    def serving(self, server) -> None:
        """From now on, stop `server` (uvicorn) gracefully before exiting."""
        with self._lock:
            self._server = server

    def watch_stdin(self) -> None:
        threading.Thread(target=self._read_stdin, name="segmote stdin watch", daemon=True).start()

    def watch_parent(self) -> None:
        if os.name != "posix":
            return  # Windows: --exit-on-stdin-close (and Slicer's job object) cover it
        parent = os.getppid()

        def watch():
            while os.getppid() == parent:
                time.sleep(1.0)
            self._end("its parent process ended")

        threading.Thread(target=watch, name="segmote parent watch", daemon=True).start()

    def _read_stdin(self) -> None:
        try:
            while os.read(0, 65536):
                pass  # nothing is ever sent; anything that is, is ignored
        except OSError:
            pass  # no usable standard input counts as closed
        self._end("its standard input was closed")

    def _end(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            server = self._server
        if server is not None:
            server.should_exit = True
            time.sleep(GRACE_S)
        # Still here (loading the model, or a stop that stalls on a full output pipe): nothing of a
        # session outlives the process anyway.
        os._exit(0)
