"""The one SegMoTE engine of a Slicer session: the worker thread and the engine service it calls.

The effect, the main module's Logic and the curation module share it. The model runs in another
process (`segmote serve`, local or remote: `engineservice`), so nothing here imports torch, and a
crash of the model does not take Slicer down. Calls still go through one worker thread, so the
GUI never waits on the network; results come back to the main thread by the worker's Qt timer.
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer

from .dependencies import dependencyStatus, requireDependencies
from .engineservice import ENGINE_LOCAL, EngineConnection
from .settings import EngineSettings, loadSettings
from .worker import INTERACTIVE, TorchWorker


@dataclass(frozen=True)
class RemoteEngineStatus:
    """The remote engine's side of `engineStatus`: it needs none of the model packages here (a
    workstation without a GPU and without torch prompts a GPU server), only its URL."""

    serverUrl: str
    installable: bool = False

    @property
    def ready(self) -> bool:
        return bool(self.serverUrl.strip())

    def describe(self) -> str:
        if self.ready:
            return f"Engine: the remote server at {self.serverUrl}."
        return "Engine: remote, but no server URL is set (module SegMoTE, section 'Engine')."


def engineStatus(settings: EngineSettings | None = None):
    """Whether prompts can go to the engine now: a local engine needs this Slicer's model packages
    (`dependencyStatus`), a remote one only its URL. Both have `ready`, `installable`, `describe()`."""
    engineSettings = settings or loadSettings()
    if engineSettings.engine == ENGINE_LOCAL:
        return dependencyStatus()
    return RemoteEngineStatus(engineSettings.serverUrl)


@dataclass(frozen=True)
class EngineHandle:
    """What a job receives: the connection and the settings it was submitted with."""

    connection: EngineConnection
    settings: EngineSettings


class EngineSession:
    def __init__(self):
        self._worker: TorchWorker | None = None
        self.connection = EngineConnection()

    @property
    def worker(self) -> TorchWorker:
        if self._worker is None:
            self._worker = TorchWorker()
            # The worker, its Qt timer and the local engine must stop before Qt and Python are torn down.
            slicer.app.connect("aboutToQuit()", self.shutdown)
        return self._worker

    def shutdown(self) -> None:
        """Stop the worker and the local engine (application exit); a later job starts new ones.

        The engine stops first (after the queued jobs are cancelled, so none starts it again): a job
        waiting for it to start, or for its answer, then fails at once instead of holding the
        worker's join, and Slicer's exit, for its whole timeout."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancelAll()
        self.connection.shutdown()
        if worker is not None:
            worker.shutdown()

    def submit(self, function, description: str, priority: int = INTERACTIVE, onDone=None, onError=None,
               replaceKey=None, settings: EngineSettings | None = None):
        """Queue `function(job, engine)` on the worker; `engine` reaches the engine `settings` name."""
        engineSettings = settings or loadSettings()
        if engineSettings.engine == ENGINE_LOCAL:
            requireDependencies()  # the local engine runs on this Slicer's Python packages
        handle = EngineHandle(self.connection, engineSettings)

        def run(job):
            return self.connection.run(engineSettings, lambda _connection: function(job, handle))

        return self.worker.submit(run, description, priority, onDone, onError, replaceKey)

    def submitPlain(self, function, description: str, priority: int, onDone=None, onError=None):
        """Queue `function(job)`, which needs no model (curation metrics)."""
        return self.worker.submit(function, description, priority, onDone, onError)

    # --- worker thread -------------------------------------------------------------------------
    def segmenterFor(self, engine: EngineHandle, key, volume, mapping=None):
        """The engine's session on `volume` (key: node id + modification time): it has the methods
        of SegMoTELib's VolumeSegmenter, computed by the engine; the volume is uploaded once."""
        return engine.connection.volumeSession(engine.settings, key, volume, mapping)

    def reset(self) -> None:
        """Forget the engine (settings changed from the GUI); the next job starts or reaches it again."""
        self.connection.reset()

    def predictorNotice(self) -> str | None:
        return self.connection.notice


_SESSION: EngineSession | None = None


def engineSession() -> EngineSession:
    global _SESSION
    if _SESSION is None:
        _SESSION = EngineSession()
    return _SESSION
