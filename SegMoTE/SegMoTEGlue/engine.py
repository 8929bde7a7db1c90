"""The one SegMoTE engine of a Slicer session: the worker thread and the predictor it owns.

The effect, the main module's Logic and the curation module share it, so a slice embedded for
the effect is not embedded again by the Logic, and only one model sits in (GPU) memory. The
predictor is built on the worker thread, on first use (never at import or widget construction),
and rebuilt when the settings change.
"""

from __future__ import annotations

import threading

import slicer

from .dependencies import requireDependencies
from .settings import EngineSettings, loadSettings
from .worker import INTERACTIVE, TorchWorker


class EngineSession:
    def __init__(self):
        self._worker: TorchWorker | None = None
        self._predictor = None
        self._predictorSettings: EngineSettings | None = None
        self._segmenters: dict = {}
        self._lock = threading.Lock()

    @property
    def worker(self) -> TorchWorker:
        if self._worker is None:
            self._worker = TorchWorker()
            # The worker thread and its Qt timer must stop before Qt and Python are torn down.
            slicer.app.connect("aboutToQuit()", self.shutdown)
        return self._worker

    def shutdown(self) -> None:
        """Stop the worker (application exit); a later job starts a new one."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown()
        # Not through reset(): its lock may be held by a job still loading the model, and exit must not wait.
        self._predictor, self._predictorSettings, self._segmenters = None, None, {}

    def submit(self, function, description: str, priority: int = INTERACTIVE, onDone=None, onError=None,
               replaceKey=None, settings: EngineSettings | None = None):
        """Queue `function(job, predictor)` on the worker; the predictor follows `settings`."""
        requireDependencies()
        engineSettings = settings or loadSettings()

        def run(job):
            return function(job, self._predictorFor(engineSettings))

        return self.worker.submit(run, description, priority, onDone, onError, replaceKey)

    def submitPlain(self, function, description: str, priority: int, onDone=None, onError=None):
        """Queue `function(job)`, which needs no model (curation metrics)."""
        return self.worker.submit(function, description, priority, onDone, onError)

    # --- worker thread -------------------------------------------------------------------------
    def _predictorFor(self, engineSettings: EngineSettings):
        with self._lock:
            if self._predictor is None or self._predictorSettings != engineSettings:
                from SegMoTELib.predictor import SegMoTEPredictor

                self._predictor = None  # free the old model before loading the new one
                self._segmenters.clear()
                self._predictor = SegMoTEPredictor(**engineSettings.predictorArguments())
                self._predictorSettings = engineSettings
            return self._predictor

    def segmenterFor(self, predictor, key, volume, mapping=None):
        """A `VolumeSegmenter` per volume (key: node id + modification time), reused while unchanged."""
        from SegMoTELib.segment3d import VolumeSegmenter

        with self._lock:
            segmenter = self._segmenters.get(key)
            if segmenter is None or segmenter.predictor is not predictor:
                self._segmenters.clear()  # one volume at a time: embeddings are cached in the predictor
                segmenter = VolumeSegmenter(predictor, volume, mapping=mapping)
                self._segmenters[key] = segmenter
            return segmenter

    def reset(self) -> None:
        """Forget the model (settings changed from the GUI); the next job loads it again."""
        with self._lock:
            self._predictor = None
            self._predictorSettings = None
            self._segmenters.clear()

    def predictorNotice(self) -> str | None:
        predictor = self._predictor
        return getattr(predictor, "notice", None) if predictor is not None else None


_SESSION: EngineSession | None = None


def engineSession() -> EngineSession:
    global _SESSION
    if _SESSION is None:
        _SESSION = EngineSession()
    return _SESSION
