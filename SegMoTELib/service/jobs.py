"""Long engine work (propagation, 3D boxes) as jobs: a thread each, with progress and cancel.

The client polls `GET .../jobs/{id}?wait=s`, which returns as soon as the job ends (or after `wait`
seconds with the progress so far), so a finished propagation is seen without a polling delay.
"""

from __future__ import annotations

import logging
import secrets
import threading

from ..errors import SegMoTEError, first_line
from .codec import encode_mask

log = logging.getLogger("segmote.service")


class JobCancelled(Exception):
    """Raised from the progress callback once the client asked to cancel."""


class Job:
    def __init__(self, work, description: str):
        """`work(progress)` returns a bool labelmap [k, j, i], or (labelmap, stops, changed slices[,
        corrected SliceRef]); progress(done, total) may raise JobCancelled."""
        self.id = secrets.token_urlsafe(12)
        self.description = description
        self.state = "running"
        self.done = 0
        self.total = 0
        self.error: str | None = None
        self.mask: dict | None = None
        self.stops: list[dict] = []
        self.changed: list[int] | None = None
        self.corrected_slice: list[int] | None = None
        self._work = work
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"segmote job {self.id}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)
        if self._cancel.is_set():
            raise JobCancelled(self.description)

    def _run(self) -> None:
        try:
            outcome = self._work(self._progress)
            labelmap, stops, changed, corrected = (*outcome, None)[:4] if isinstance(outcome, tuple) \
                else (outcome, [], None, None)
            self.corrected_slice = None if corrected is None else [corrected.axis, corrected.index]
            self.stops = [{"direction": stop.direction, "last_index": stop.last_index, "reason": stop.reason,
                           "detail": stop.detail} for stop in stops]
            self.changed = None if changed is None else [int(index) for index in changed]
            self.mask = encode_mask(labelmap)
            self.state = "done"
        except JobCancelled:
            self.state = "cancelled"
        except SegMoTEError as error:
            self.error, self.state = str(error), "failed"
        except Exception as error:  # reported to the client; the server keeps serving
            log.exception("%s failed", self.description)
            self.error, self.state = f"internal error in {self.description}: {first_line(error)}", "failed"
        finally:
            self._work = None
            self._finished.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def wait(self, timeout: float) -> None:
        self._finished.wait(max(0.0, timeout))

    def describe(self) -> dict:
        finished = self._finished.is_set()
        return {"job_id": self.id, "state": self.state if finished else "running", "done": self.done,
                "total": self.total, "error": self.error, "mask": self.mask if finished else None,
                "stops": self.stops if finished else [], "changed": self.changed if finished else None,
                "corrected_slice": self.corrected_slice if finished else None}
