"""Embedding slices in the background, at the lowest priority, while the user looks at a slice.

On a CPU an embedding takes about a second; the user scrolls one slice and clicks. The service (or
any caller) hands the neighbouring slices to `BackgroundEncoder.submit`; one daemon thread, at the
operating system's lowest priority, embeds them one at a time on a one-thread ONNX Runtime session
of its own, so a click meanwhile runs on the main session at nearly full speed (the scheduler gives
the idle-priority thread only what the click leaves). The predictor takes a finished embedding
with `take(key)` when the user reaches that slice; if it is still being computed, `take` waits for
it (less than starting again); if it has not started, it is dropped and embedded in the
foreground. A newer `submit` replaces what has not started yet (the user has moved on).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable


def lower_thread_priority() -> str:
    """Give the calling thread the lowest scheduling priority the OS offers; what was done."""
    try:
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # a Linux thread is a task
            return "nice 19"
        if sys.platform == "win32":
            kernel32 = ctypes.windll.kernel32
            thread_priority_idle = -15
            if kernel32.SetThreadPriority(kernel32.GetCurrentThread(), thread_priority_idle):
                return "THREAD_PRIORITY_IDLE"
            return "unchanged"
        if sys.platform == "darwin":
            qos_class_background = 0x09
            libsystem = ctypes.CDLL("/usr/lib/libSystem.dylib")
            if libsystem.pthread_set_qos_class_self_np(qos_class_background, 0) == 0:
                return "QOS_CLASS_BACKGROUND"
    except (OSError, AttributeError):
        pass
    return "unchanged"


class BackgroundEncoder:
    """`encode(tensor)` → (embedding, extra) run for queued (key, model input, transform) items."""

    def __init__(self, encode: Callable, keep: int = 6):
        self._encode = encode
        self._keep = keep
        self._condition = threading.Condition()
        self._pending: OrderedDict[str, tuple] = OrderedDict()
        self._done: OrderedDict[str, tuple] = OrderedDict()
        self._running: str | None = None
        self._closed = False
        self.priority = "unchanged"
        self.failures = 0
        self._thread = threading.Thread(target=self._serve, name="segmote background embedding", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple]) -> None:
        """Queue (key, model input, transform) items, replacing those not started; keys already
        done or running are skipped."""
        with self._condition:
            self._pending.clear()
            for key, tensor, transform in items:
                if key != self._running and key not in self._done:
                    self._pending[key] = (tensor, transform)
            self._condition.notify_all()

    def knows(self, key: str) -> bool:
        with self._condition:
            return key in self._done or key in self._pending or key == self._running

    def take(self, key: str):
        """(embedding, extra, transform) of `key` if it was embedded here (waiting if it is being
        embedded now), else None; an item not started is dropped."""
        with self._condition:
            self._pending.pop(key, None)
            while self._running == key:
                self._condition.wait()
            return self._done.pop(key, None)

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running (the user's think time, in tests and benchmarks)."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and self._running is None, timeout)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._pending.clear()
            self._condition.notify_all()

    def _serve(self) -> None:
        self.priority = lower_thread_priority()
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                key, (tensor, transform) = self._pending.popitem(last=False)
                self._running = key
            try:
                embedding, extra = self._encode(tensor)
                outcome = (embedding, extra, transform)
            except Exception:  # noqa: BLE001 — a failed background embedding is simply redone in the foreground
                outcome = None
                self.failures += 1
            with self._condition:
                if outcome is not None:
                    self._done[key] = outcome
                    while len(self._done) > self._keep:
                        self._done.popitem(last=False)
                self._running = None
                self._condition.notify_all()
