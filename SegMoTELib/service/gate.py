"""One model call at a time per device, the waiting interactive calls first.

Why a gate rather than a lock: a propagation asks for the device once per slice, and a plain lock
may hand it straight back to the propagation's thread. Here a waiting click (INTERACTIVE) always
gets the device before the next propagation slice (BATCH), so it waits at most for one slice's
work; among calls of one priority, first come first served.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

INTERACTIVE = 0  # a prompt a user is waiting for
PREFETCH = 1     # embedding a slice ahead of a prompt
BATCH = 2        # a propagation slice, a 3D box slice


class DeviceGate:
    def __init__(self):
        self._condition = threading.Condition()
        self._busy = False
        self._waiting: list[tuple[int, int]] = []  # (priority, ticket) of the callers waiting
        self._tickets = itertools.count()

    @contextmanager
    def use(self, priority: int = INTERACTIVE):
        """Hold the device for the `with` block."""
        with self._condition:
            entry = (priority, next(self._tickets))
            self._waiting.append(entry)
            while self._busy or min(self._waiting) != entry:
                self._condition.wait()
            self._waiting.remove(entry)
            self._busy = True
        try:
            yield
        finally:
            with self._condition:
                self._busy = False
                self._condition.notify_all()

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)
