"""The engine of a Slicer session, out of Slicer's process, through SegMoTELib's one client.

Local (the default): `segmote serve` started on demand with Slicer's own Python (`PythonSlicer`)
on a free port with a fresh token, restarted once if it dies (then a clear message), stopped when
Slicer exits. Remote: a server URL and token from the settings. Either way the model, torch and
its crashes live in another process; here only the standard library and numpy run (no Qt either,
so this file is tested without Slicer).

Each volume gets a session on the server (uploaded once, reused while the volume is unchanged);
a call that finds its session gone (idle limit, restarted engine) opens a new one and runs again.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
from collections import OrderedDict

from SegMoTELib.service.client import EngineClient, EngineUnavailable, SessionClosed
from SegMoTELib.service.launcher import LocalEngine

ENGINE_LOCAL = "local"
ENGINE_REMOTE = "remote"
KEPT_SESSIONS = 2  # the effect's volume and the Logic's, typically the same one


def slicerPython() -> str:
    """Slicer's `PythonSlicer` (the interpreter with Slicer's packages), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def engineFolder() -> str | None:
    """The folder holding the SegMoTELib package (a checkout or the extension's install tree)."""
    spec = importlib.util.find_spec("SegMoTELib")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


class EngineConnection:
    def __init__(self, python: str | None = None, startupTimeout: float = 300.0):
        self.python = python
        self.startupTimeout = startupTimeout
        self._lock = threading.RLock()
        self._settings = None
        self._local: LocalEngine | None = None
        self._client: EngineClient | None = None
        self._restarts = 0
        self._sessions: OrderedDict = OrderedDict()
        self.notice: str | None = None

    # --- the engine ----------------------------------------------------------------------------
    def client(self, settings) -> EngineClient:
        """The client of the engine `settings` name; starts (or restarts once) the local engine."""
        with self._lock:
            if settings != self._settings:
                self._disconnect()
                self._settings, self._restarts = settings, 0
            if getattr(settings, "engine", ENGINE_LOCAL) == ENGINE_REMOTE:
                if self._client is None:
                    self._client = EngineClient(settings.serverUrl, settings.serverToken or None)
                    self.notice = self._client.info().get("notice")
                return self._client
            if self._local is not None and not self._local.running:
                if self._restarts >= 1:
                    raise EngineUnavailable(
                        f"The local SegMoTE engine stopped again ({self._local.describe_exit()}). Check the "
                        f"model settings, then click 'Save settings' in the SegMoTE module to start it afresh.")
                self._restarts += 1
                self._forgetEngine()
            if self._local is None:
                self._local = LocalEngine(self.python or slicerPython(), settings.serveArguments(),
                                          pythonpath=engineFolder(), startup_timeout=self.startupTimeout)
                self._local.start()
                self._client = self._local.client()
                self.notice = self._client.info().get("notice")
            return self._client

    def run(self, settings, work):
        """`work(connection)` once, and once more after a lost session or a restarted local engine."""
        for attempt in range(2):
            try:
                return work(self)
            except SessionClosed:
                self._dropSessions()
                if attempt:
                    raise
            except EngineUnavailable:
                self._dropSessions()
                local = self._local
                if attempt or local is None or local.running:
                    raise  # a remote server, or a local one that answers slowly: nothing to restart
        return None

    # --- sessions ------------------------------------------------------------------------------
    def volumeSession(self, settings, key, volume, mapping):
        """The server session of `volume` (uploaded on first use while `key` stays the same)."""
        client = self.client(settings)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
        session = client.open_volume(volume, mapping)
        with self._lock:
            self._sessions[key] = session
            while len(self._sessions) > KEPT_SESSIONS:
                _, old = self._sessions.popitem(last=False)
                old.close(quiet=True)
        return session

    def _dropSessions(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            try:
                session.close(quiet=True)
            except EngineUnavailable:
                pass

    # --- lifetime ------------------------------------------------------------------------------
    def _forgetEngine(self) -> None:
        self._sessions.clear()  # they lived in the engine that is gone
        if self._client is not None:
            self._client.close()
        self._client = None
        if self._local is not None:
            self._local.stop()
        self._local = None

    def _disconnect(self) -> None:
        # Sessions are not closed over the network: a local engine stops anyway, and a remote
        # server closes them after its idle limit (a server that is down must not hold us up).
        self._forgetEngine()
        self.notice = None

    def shutdown(self) -> None:
        """Stop the local engine at once (Slicer exits). Takes no lock: a job may be waiting for
        the engine to start, and exit must not wait for it (that job then fails)."""
        local, self._local, self._client = self._local, None, None
        self._sessions = OrderedDict()
        self._settings = None
        if local is not None:
            local.stop(timeout=5.0)

    def reset(self) -> None:
        """Forget the engine (settings saved): the next call starts or reaches it afresh."""
        with self._lock:
            self._disconnect()
            self._settings = None

    @property
    def localEngine(self) -> LocalEngine | None:
        return self._local
