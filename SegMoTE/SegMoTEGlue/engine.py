"""The SegMoTE engine of a Slicer session: one handle, `Engine`, that the effect, the Logic and the
module widget share (`engineFor(settings)`).

The model runs in another process (`segmote serve`, local or remote), so nothing here imports torch
and a crash of the model does not take Slicer down. Every call goes out through Qt's asynchronous
HTTP on the main thread (`SegMoTELib.service.qt_client`): its answer arrives as a Qt signal on the
main thread, so no Python thread waits for the GIL that Slicer's idle main thread holds, and nothing
here ever blocks the GUI (no lock, no wait on the network). Calls run one at a time, the most
urgent first (`SegMoTELib.priorities`), and each can be cancelled.

States (`Engine.state`, shown by the module and the effect): stopped → starting → ready, or
failed with the reason. Nothing starts and nothing is uploaded until a first prompt or an explicit
*Start engine*; a local engine is `segmote serve` run with Slicer's Python, its standard input a
pipe only this process holds (it ends with Slicer, crash included), without size caps (it is the
user's own process); a remote one is the URL and token the user chose in the module.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import shutil
import sys
from collections import OrderedDict
from dataclasses import dataclass

from SegMoTELib.priorities import BATCH, INTERACTIVE, PREFETCH
from SegMoTELib.service import operations
from SegMoTELib.service.launcher import LocalEngine
from SegMoTELib.service.qt_client import Cancelled, QtRunner, release_later
from SegMoTELib.service.wire import EngineUnavailable, SessionClosed

from .dependencies import dependencyStatus, requireDependencies
from .worker import JobCancelled  # one cancellation for the engine's calls and the worker's jobs

__all__ = ["BATCH", "INTERACTIVE", "PREFETCH", "Engine", "EngineCall", "engineFor", "engineStatus"]

ENGINE_LOCAL = "local"
ENGINE_REMOTE = "remote"
STOPPED, STARTING, READY, FAILED = "stopped", "starting", "ready", "failed"
KEPT_SESSIONS = 2     # the effect's volume and the Logic's, typically the same one
KEPT_ENGINES = 2      # the saved settings' engine and one other (a Logic with its own settings)
START_POLL_MSEC = 100
READ_TIMEOUT_S = 300.0


# --- what can run -----------------------------------------------------------------------------------
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


def engineStatus(settings=None):
    """Whether prompts can go to the engine now: a local engine needs this Slicer's model packages
    (`dependencyStatus`), a remote one only its URL. Both have `ready`, `installable`, `describe()`."""
    from .settings import loadSettings

    engineSettings = settings or loadSettings()
    if engineSettings.engine == ENGINE_LOCAL:
        return dependencyStatus()
    return RemoteEngineStatus(engineSettings.serverUrl)


def slicerPython() -> str:
    """Slicer's `PythonSlicer` (the interpreter with Slicer's packages), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def engineFolder() -> str | None:
    """The folder holding the SegMoTELib package (a checkout or the extension's install tree)."""
    spec = importlib.util.find_spec("SegMoTELib")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


# --- one call -------------------------------------------------------------------------------------
class EngineCall:
    """A call submitted to the engine: `work(call)` gives the operation to carry out (a generator of
    requests, see `SegMoTELib.service.operations`). What the progress dialog reads (`progress`,
    `finished`) and does (`cancel()`); `onDone(result)` / `onError(error)` run on the main thread."""

    _order = itertools.count()

    def __init__(self, work, description: str, priority: int, onDone=None, onError=None, replaceKey=None):
        self.work, self.description, self.priority = work, description, priority
        self.onDone, self.onError, self.replaceKey = onDone, onError, replaceKey
        self.order = next(self._order)
        self.progress = 0.0
        self.result = None
        self.error: BaseException | None = None
        self.finished = False
        self.cancelled = False
        self.attempts = 0
        self._running = None  # the QtRunner's Running while it is on the wire
        self._whenCancelled = None  # the engine's hook: a queued call ends at once

    def reportProgress(self, done: float, total: float | None = None) -> None:
        """Progress from an operation: (done, total) or one fraction; raises once cancelled."""
        self.progress = float(done) / float(total) if total else float(done)
        if self.cancelled:
            raise JobCancelled(self.description)

    def cancel(self) -> None:
        """Stop the call: on the wire, its request is aborted (a job is cancelled on the server);
        queued, it ends at once. `onError` then gets JobCancelled."""
        if self.finished or self.cancelled:
            return
        self.cancelled = True
        if self._running is not None:
            self._running.cancel()
        elif self._whenCancelled is not None:
            self._whenCancelled(self)

    def wait(self, timeout: float | None = None, processEvents=None):
        """For the Python console: run the event loop until the call has finished; its result or error."""
        import time

        if processEvents is None:
            import slicer

            processEvents = slicer.app.processEvents
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.description}: still running after {timeout} s")
            processEvents()
            time.sleep(0.005)
        if self.error is not None:
            raise self.error
        return self.result


# --- a session on one volume, opened on first use ------------------------------------------------------
class VolumeSession:
    """The `VolumeSegmenter` methods on one volume, as operations: the first one opens the server
    session (the volume uploaded once, in slabs), later ones reuse it."""

    def __init__(self, volume, mapping, progress=None):
        self.volume, self.mapping = volume, mapping
        self.calls: operations.SessionCalls | None = None
        self._progress = progress

    @property
    def open(self) -> bool:
        return self.calls is not None

    def _opened(self):
        if self.calls is None:
            sessionId = yield from operations.open_volume(self.volume, self.mapping, self._progress)
            self.calls = operations.SessionCalls(sessionId, self.volume)
        return self.calls

    def forget(self) -> None:
        self.calls = None

    def segment_slice(self, *args, **kwargs):
        return (yield from (yield from self._opened()).segment_slice(*args, **kwargs))

    def segment_auto(self, *args, **kwargs):
        return (yield from (yield from self._opened()).segment_auto(*args, **kwargs))

    def prefetch(self, *args, **kwargs):
        return (yield from (yield from self._opened()).prefetch(*args, **kwargs))

    def propagate(self, *args, **kwargs):
        return (yield from (yield from self._opened()).propagate(*args, **kwargs))

    def segment_box3d(self, *args, **kwargs):
        return (yield from (yield from self._opened()).segment_box3d(*args, **kwargs))

    def correct(self, *args, **kwargs):
        return (yield from (yield from self._opened()).correct(*args, **kwargs))


# --- the engine --------------------------------------------------------------------------------------
class Engine:
    def __init__(self, settings, qtModule=None, python: str | None = None, startupTimeout: float = 300.0,
                 pythonpath: str | None = None):
        if qtModule is None:
            import qt as qtModule
        self.settings = settings
        self.qt = qtModule
        self.python = python
        self.pythonpath = pythonpath
        self.startupTimeout = startupTimeout
        self.state, self.reason, self.notice, self.description = STOPPED, None, None, None
        self._listeners: list = []
        self._local: LocalEngine | None = None
        self._runner: QtRunner | None = None
        self._startTimer = None
        self._restarts = 0
        self._pending: list[EngineCall] = []
        self._current: EngineCall | None = None
        self._sessions: OrderedDict = OrderedDict()

    # --- state ---------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return getattr(self.settings, "engine", ENGINE_LOCAL) == ENGINE_REMOTE

    def addListener(self, listener) -> None:
        """`listener(engine)` after each state change (on the main thread)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def removeListener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def describeState(self) -> str:
        where = f"remote server {self.settings.serverUrl}" if self.remote else "local process"
        if self.state == READY:
            return f"Engine ready ({where}{'; ' + self.description if self.description else ''})."
        if self.state == STARTING:
            return f"Engine starting ({where})..."
        if self.state == FAILED:
            return f"Engine failed: {self.reason}"
        return f"Engine stopped ({where}); it starts on the first prompt."

    def _setState(self, state: str, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:  # a failing listener must not stop the engine
                logging.exception("SegMoTE: engine state listener failed")

    # --- starting and stopping -------------------------------------------------------------------
    def start(self) -> None:
        """Start the local engine, or reach the remote one; returns at once (state: starting)."""
        if self.state in (STARTING, READY):
            return
        self._setState(STARTING)
        try:
            if self.remote:
                self._runner = self._newRunner(self.settings.serverUrl, self.settings.serverToken or None)
                self._runner.probe(self._askInfo, self._startFailed)
                return
            requireDependencies()  # the local engine runs on this Slicer's Python packages
            self._local = LocalEngine(self.python or slicerPython(), [*self.settings.serveArguments(),
                                                                       "--no-size-limits"],
                                      pythonpath=self.pythonpath or engineFolder(),
                                      startup_timeout=self.startupTimeout)
            self._local.launch()
        except Exception as error:  # a missing package, a bad URL or token, a Python that cannot start
            # reported from the event loop, as every other outcome: the caller's submit() returns first
            self.qt.QTimer.singleShot(0, lambda failure=error: self._startFailed(failure))
            return
        self._startTimer = self.qt.QTimer()
        self._startTimer.timeout.connect(self._pollLocal)
        self._startTimer.start(START_POLL_MSEC)

    def _newRunner(self, url: str, token: str | None) -> QtRunner:
        return QtRunner(self.qt, url, token, read_timeout=READ_TIMEOUT_S)

    def _pollLocal(self) -> None:
        local = self._local
        try:
            url = None if local is None else local.poll()
        except Exception as error:
            self._stopStartTimer()
            self._startFailed(error)
            return
        if url is None:
            return
        self._stopStartTimer()
        try:
            self._runner = self._newRunner(url, local.token)
        except Exception as error:
            self._startFailed(error)
            return
        self._askInfo()

    def _stopStartTimer(self) -> None:
        timer, self._startTimer = self._startTimer, None
        if timer is not None:  # often from its own timeout(): deleted from the event loop, not now
            timer.stop()
            release_later(self.qt, timer)

    def _releaseRunner(self) -> None:
        """Drop the runner; its network manager is deleted from the event loop (this often runs in
        one of its replies' finished())."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.release()

    def _askInfo(self) -> None:
        self._runner.start(operations.info(), self._ready, self._startFailed)

    def _ready(self, info: dict) -> None:
        self.notice = info.get("notice")
        self.description = f"{info.get('backbone', '?')}, adapter {info.get('adapter', '?')}, " \
                           f"device {info.get('device', '?')}"
        self._setState(READY)
        self._next()

    def _startFailed(self, error: BaseException) -> None:
        from .feedback import describeError

        self._abandonCurrent(error)
        if self._local is not None:
            self._local.stop(timeout=5.0)
            self._local = None
        self._releaseRunner()
        self._sessions.clear()
        self._setState(FAILED, describeError(error))
        pending, self._pending = self._pending, []
        for call in pending:  # a failed start is reported to every call that waited for it
            self._finish(call, None, error)

    def stop(self) -> None:
        """Stop (a local engine ends; a remote one is only left); pending calls are cancelled."""
        self._stopStartTimer()
        for call in list(self._pending):  # first: the running call's end would start the next one
            self._dropQueued(call)
        self._abandonCurrent(None)
        if self._runner is not None:
            self._runner.cancel_all()
        local, self._local = self._local, None
        self._releaseRunner()
        self._sessions.clear()
        self._restarts = 0
        if local is not None:
            local.stop(timeout=5.0)
        self._setState(STOPPED)

    @property
    def localEngine(self) -> LocalEngine | None:
        return self._local

    # --- calls ---------------------------------------------------------------------------------
    def submit(self, work, description: str, priority: int = INTERACTIVE, onDone=None, onError=None,
               replaceKey=None) -> EngineCall:
        """Queue `work(call)` → an operation; starts the engine if needed; returns the call at once."""
        call = EngineCall(work, description, priority, onDone, onError, replaceKey)
        call._whenCancelled = self._dropQueued
        if replaceKey is not None:  # only the latest prefetch of the current slice matters
            for pending in [p for p in self._pending if p.replaceKey == replaceKey]:
                self._pending.remove(pending)
                self._finish(pending, None, JobCancelled(pending.description))
        self._pending.append(call)
        if self.state == READY:
            self._next()
        elif self.state in (STOPPED, FAILED):
            self._restarts = 0
            self.start()
        return call

    def _dropQueued(self, call: EngineCall) -> None:
        if call in self._pending:
            self._pending.remove(call)
            self._finish(call, None, JobCancelled(call.description))

    def segmenterFor(self, key, volume, mapping=None, progress=None) -> VolumeSession:
        """The engine's session on `volume` (`key`: what identifies its voxels and geometry); opened
        and uploaded by the first call that uses it."""
        session = self._sessions.get(key)
        if session is None:
            session = VolumeSession(volume, mapping, progress or self._reportUpload)
            self._sessions[key] = session
            while len(self._sessions) > KEPT_SESSIONS:
                _key, old = self._sessions.popitem(last=False)
                if old.open and self._runner is not None:  # closed on the server, nobody waits for it
                    self._runner.start(old.calls.close(), lambda _r: None, lambda _e: None)
        else:
            self._sessions.move_to_end(key)
        return session

    def _reportUpload(self, done, total) -> None:
        """An upload's progress goes to the call it runs for (its progress dialog, its cancel)."""
        if self._current is not None:
            self._current.reportProgress(done, total)

    def hasSession(self, key) -> bool:
        session = self._sessions.get(key)
        return session is not None and session.open

    def _next(self) -> None:
        if self._current is not None or not self._pending or self.state != READY:
            return
        call = min(self._pending, key=lambda c: (c.priority, c.order))
        self._pending.remove(call)
        if call.cancelled:
            self._finish(call, None, JobCancelled(call.description))
            self._next()
            return
        self._current = call
        call.attempts += 1
        try:
            operation = call.work(call)
        except Exception as error:  # the work could not even be described (a bad argument)
            self._current = None
            self._finish(call, None, error)
            self._next()
            return
        call._running = self._runner.start(operation, lambda result: self._done(call, result),
                                           lambda error: self._failed(call, error))

    def _abandonCurrent(self, error: BaseException | None) -> None:
        """The running call ends now (cancelled; `error`, or JobCancelled) and no longer holds the
        engine: its operation may still have a clean-up request on the wire (a job cancelled on the
        server), whose end must neither delay nor fail the calls of the engine's next run."""
        current, self._current = self._current, None
        if current is None:
            return
        current.cancel()
        if not current.finished:
            self._finish(current, None, error if error is not None else JobCancelled(current.description))

    def _done(self, call: EngineCall, result) -> None:
        call._running = None
        if call is not self._current:
            return  # abandoned (stop, failure): its caller has heard already
        self._current = None
        self._finish(call, result, None)
        self._next()

    def _failed(self, call: EngineCall, error: BaseException) -> None:
        call._running = None
        if call is not self._current:
            return  # abandoned (stop, failure): its caller has heard already
        self._current = None
        if isinstance(error, Cancelled):
            error = JobCancelled(call.description)
        retry = False
        if isinstance(error, SessionClosed) and call.attempts < 2:
            for session in self._sessions.values():
                session.forget()  # reopened (uploaded again) by the retry
            retry = True
        elif isinstance(error, EngineUnavailable) and not self.remote and self._local is not None \
                and not self._local.running:
            retry = self._engineDied(call)
        if retry:
            self._pending.append(call)
            if self.state == READY:
                self._next()
            return
        self._finish(call, None, error)
        if isinstance(error, EngineUnavailable) and self.state == READY:
            # unreachable, silent, or no SegMoTE engine: say so, and reach it afresh on the next call
            self._startFailed(error)
            return
        self._next()

    def _engineDied(self, call: EngineCall) -> bool:
        """The local engine ended under a call: restart it once and run the call again; after a second
        death, say so (exit status and last output line) and stop trying."""
        died = self._local.describe_exit()
        self._local = None
        self._releaseRunner()
        for session in self._sessions.values():
            session.forget()
        if self._restarts >= 1 or call.attempts >= 2:
            self._setState(FAILED, f"the local SegMoTE engine stopped again ({died}). Check the model settings, "
                                   f"then click 'Start engine' in the SegMoTE module.")
            return False
        self._restarts += 1
        self._setState(STOPPED)
        self.start()
        return True

    def _finish(self, call: EngineCall, result, error) -> None:
        call.result, call.error, call.finished = result, error, True
        callback, value = (call.onDone, result) if error is None else (call.onError, error)
        if callback is None:
            if error is not None and not isinstance(error, JobCancelled):
                logging.error("SegMoTE: %s failed: %s", call.description, error)
            return
        try:
            callback(value)
        except Exception:  # a failing callback must not stop the delivery of later results
            logging.exception("SegMoTE: error while handling the result of %s", call.description)

    # --- asking the engine ---------------------------------------------------------------------
    def testConnection(self, onDone) -> None:
        """Reach the engine (starting it if needed) and report `onDone(ok: bool, text)`: what it is,
        or why it cannot be reached."""
        def report(_info=None):
            onDone(True, self.describeState())

        if self.state == READY:
            self._runner.start(operations.info(), lambda info: (self._ready(info), report()),
                               lambda error: self._connectionLost(error, onDone))
            return

        def listener(engine):
            if engine.state in (READY, FAILED):
                self.removeListener(listener)
                onDone(engine.state == READY, engine.describeState())

        self.addListener(listener)
        self.start()

    def _connectionLost(self, error, onDone) -> None:
        if isinstance(error, Cancelled):  # the engine was stopped meanwhile
            onDone(False, self.describeState())
            return
        # as a call that finds the engine unreachable: the local process ends, waiting calls hear why
        self._startFailed(error)
        onDone(False, self.describeState())


# --- the engines of a Slicer session --------------------------------------------------------------------
class EnginePool:
    """One engine per settings, the latest few kept: the effect (saved settings) and a Logic with its
    own settings alternate without restarting each other's engine."""

    def __init__(self, qtModule=None, engineFactory=Engine):
        self.qt = qtModule
        self._engines: OrderedDict = OrderedDict()
        self._factory = engineFactory

    def engineFor(self, settings) -> Engine:
        engine = self._engines.get(settings)
        if engine is None:
            engine = self._factory(settings, self.qt)
            self._engines[settings] = engine
            while len(self._engines) > KEPT_ENGINES:
                _settings, old = self._engines.popitem(last=False)
                old.stop()
        else:
            self._engines.move_to_end(settings)
        return engine

    def stopAll(self) -> None:
        """Stop every engine (application exit, or settings saved)."""
        engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            engine.stop()


_POOL: EnginePool | None = None


def enginePool() -> EnginePool:
    global _POOL
    if _POOL is None:
        import slicer

        _POOL = EnginePool()
        # Local engines stop before Qt and Python are torn down (and end with Slicer anyway: stdin).
        slicer.app.connect("aboutToQuit()", _POOL.stopAll)
    return _POOL


def engineFor(settings=None) -> Engine:
    """The engine of `settings` (default: the saved settings), created on first use, not started."""
    from .settings import loadSettings

    return enginePool().engineFor(settings or loadSettings())
