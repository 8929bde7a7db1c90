"""Waiting feedback for a worker job: a busy cursor at once, a progress dialog after ~2 s.

Short jobs (a prompt on a cached slice) only flash the cursor; long ones (propagation, curation,
the first model load) get a cancellable progress dialog fed from `Job.progress`.
"""

from __future__ import annotations

import logging

import qt
import slicer
from SegMoTELib.service.qt_client import release_later

DIALOG_DELAY_MSEC = 2000
_REFRESH_MSEC = 100


class BusyFeedback:
    def __init__(self, job, title: str, cancellable: bool = True):
        self.job = job
        self.title = title
        self.cancellable = cancellable
        self.dialog = None
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        self._timer = qt.QTimer()
        self._timer.setInterval(_REFRESH_MSEC)
        self._timer.connect("timeout()", self._refresh)
        self._timer.start()
        self._elapsedMsec = 0

    def _refresh(self) -> None:
        if self.job.finished:
            self.close()
            return
        self._elapsedMsec += _REFRESH_MSEC
        if self.dialog is None and self._elapsedMsec >= DIALOG_DELAY_MSEC:
            self._openDialog()
        if self.dialog is not None:
            self.dialog.setValue(int(100 * min(max(self.job.progress, 0.0), 1.0)))

    def _openDialog(self) -> None:
        self.dialog = slicer.util.createProgressDialog(
            value=0, maximum=100, labelText=self.title, windowTitle="SegMoTE")
        if self.cancellable:
            self.dialog.connect("canceled()", self.job.cancel)
        else:
            self.dialog.setCancelButton(None)
        qt.QApplication.restoreOverrideCursor()  # the dialog now shows that work is going on

    def close(self) -> None:
        if self._timer is None:
            return
        # Usually called from the timer's own timeout(): PythonQt deletes a parentless object made from
        # Python when its last reference goes, so dropping the timer here would delete it while it
        # emits. Qt deletes it from the event loop instead; deleteLater() also frees the dialog there
        # (one only closed stays allocated, with its connection to the job, for the session).
        self._timer.stop()
        self._timer.disconnect("timeout()", self._refresh)
        release_later(qt, self._timer)
        self._timer = None
        if self.dialog is not None:
            if self.cancellable:
                self.dialog.disconnect("canceled()", self.job.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        else:
            qt.QApplication.restoreOverrideCursor()


def describeError(error: BaseException) -> str:
    """User mistakes (SegMoTE errors, missing dependencies) as they are; anything else with its type."""
    from SegMoTELib.errors import SegMoTEError

    from .dependencies import DependenciesMissingError
    from .worker import JobCancelled

    if isinstance(error, JobCancelled):
        return f"Cancelled: {error}."
    if isinstance(error, (SegMoTEError, DependenciesMissingError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def showError(error: BaseException, windowTitle: str = "SegMoTE") -> None:
    logging.error("SegMoTE: %s", describeError(error), exc_info=not isinstance(error, ValueError))
    slicer.util.errorDisplay(describeError(error), windowTitle=windowTitle)
