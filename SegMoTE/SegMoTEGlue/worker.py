"""One persistent worker thread for SegMoTE's work that runs in Slicer's process (curation metrics).

The engine's calls do not come here: they go out through Qt's asynchronous HTTP on the main
thread (`engine.py`), because a Python thread waits for the GIL that Slicer's idle main thread
holds. Jobs run in priority order (`SegMoTELib.priorities`, the engine server's too);
a job submitted with a `replaceKey` cancels the pending jobs with that key (only the latest
prefetch of the current slice matters). Jobs never touch Qt or MRML: their results are handed back
to the main thread by a Qt timer, which calls `onDone` / `onError` there.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable

import qt
from SegMoTELib.priorities import BATCH, INTERACTIVE, PREFETCH  # the order the engine server uses too

__all__ = ["BATCH", "INTERACTIVE", "PREFETCH", "Job", "JobCancelled", "TorchWorker"]

_POLL_MSEC = 25


class JobCancelled(Exception):
    """Raised inside a job (from `Job.reportProgress`) once the user asked to cancel it."""


class Job:
    def __init__(self, function: Callable, description: str, onDone=None, onError=None, replaceKey=None):
        self.function = function
        self.description = description
        self.onDone = onDone
        self.onError = onError
        self.replaceKey = replaceKey
        self.result = None
        self.error: BaseException | None = None
        self.progress = 0.0
        self._cancel = threading.Event()
        self._finished = threading.Event()

    # --- worker side ---------------------------------------------------------------------------
    def reportProgress(self, done: float, total: float | None = None) -> None:
        """Progress callback for SegMoTELib: (done, total) steps, or one fraction in [0, 1].

        Raises `JobCancelled` once the user asked to cancel, which stops SegMoTELib's loop.
        """
        self.progress = float(done) / float(total) if total else float(done)
        if self._cancel.is_set():
            raise JobCancelled(self.description)

    def run(self) -> None:
        try:
            if self._cancel.is_set():
                raise JobCancelled(self.description)
            self.result = self.function(self)
        except BaseException as error:  # handed to the main thread, never lost in the worker
            self.error = error
        finally:
            self._finished.set()

    # --- any thread ----------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def waitFinished(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True once the job has finished (any outcome)."""
        return self._finished.wait(timeout)

    def wait(self, timeout: float | None = None):
        """Block until done; returns the result or raises the job's error (console use)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self.description}: still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class TorchWorker:
    def __init__(self):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._counter = itertools.count()
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._finishedJobs: deque[Job] = deque()
        self._thread = threading.Thread(target=self._loop, name="SegMoTE worker", daemon=True)
        self._thread.start()
        self._timer = qt.QTimer()
        self._timer.setInterval(_POLL_MSEC)
        self._timer.connect("timeout()", self._deliverFinished)
        self._timer.start()

    def submit(self, function: Callable, description: str, priority: int = INTERACTIVE,
               onDone=None, onError=None, replaceKey=None) -> Job:
        """Queue `function(job)`; `onDone(result)` / `onError(error)` run later on the main thread."""
        job = Job(function, description, onDone, onError, replaceKey)
        with self._lock:
            if replaceKey is not None:
                for pending in self._pending:
                    if pending.replaceKey == replaceKey:
                        pending.cancel()
            self._pending.append(job)
        self._queue.put((priority, next(self._counter), job))
        return job

    def cancelAll(self) -> None:
        with self._lock:
            for job in self._pending:
                job.cancel()

    def shutdown(self, joinSeconds: float = 5.0) -> None:
        """Cancel pending jobs, stop the delivery timer and the thread (application exit)."""
        self.cancelAll()
        if self._timer is not None:
            self._timer.stop()
            self._timer.disconnect("timeout()", self._deliverFinished)
            self._timer.deleteLater()
            self._timer = None
        self._queue.put((-1, next(self._counter), None))
        self._thread.join(joinSeconds)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # --- worker thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            _priority, _order, job = self._queue.get()
            if job is None:
                return
            job.run()
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
                self._finishedJobs.append(job)

    # --- main thread ---------------------------------------------------------------------------
    def _deliverFinished(self) -> None:
        while True:
            with self._lock:
                if not self._finishedJobs:
                    return
                job = self._finishedJobs.popleft()
            try:
                if job.error is None:
                    if job.onDone is not None:
                        job.onDone(job.result)
                elif job.onError is not None:  # cancellations too: the caller closes its dialog
                    job.onError(job.error)
                elif not isinstance(job.error, JobCancelled):
                    logging.error("SegMoTE: %s failed: %s", job.description, job.error)
            except Exception:  # a failing callback must not stop the delivery of later results
                logging.exception("SegMoTE: error while handling the result of %s", job.description)


_WORKER: TorchWorker | None = None


def backgroundWorker() -> TorchWorker:
    """The one worker thread of a Slicer session (curation metrics: numpy work, no engine call),
    stopped when the application quits."""
    global _WORKER
    if _WORKER is None or not _WORKER.running:
        import slicer

        _WORKER = TorchWorker()
        slicer.app.connect("aboutToQuit()", _stopBackgroundWorker)
    return _WORKER


def _stopBackgroundWorker() -> None:
    global _WORKER
    worker, _WORKER = _WORKER, None
    if worker is not None:
        worker.shutdown()
