"""Every model call of a server runs on one long-lived device thread, waiting clicks first.

Why one thread, not a lock: PyTorch keeps cuDNN's execution plans per thread (pytorch/pytorch
#103939 made the cuDNN v8 plan caches `thread_local`), so the first convolutions of each new
shape on a fresh thread rebuild their plans on the CPU. A server job ran on its own new thread,
and AnyIO retires its idle pool threads after 10 s; under a lock, each propagation paid this again:
on an H200 a 300-slice propagation took 3.4–3.9 s in a job against 0.70 s on a warm thread, with
2.7 s of CPU time in `aten::cudnn_convolution` for 47 ms of GPU work. On one thread the plans are
built once per process.

Why a priority queue: a waiting click (INTERACTIVE) runs before the next propagation slice
(BATCH), so it waits at most for one slice's work; among calls of one priority, first come first
served. A propagation runs on the device thread as one BATCH call (no thread hand-over per slice);
each model call it makes from there first runs the more urgent calls that have queued meanwhile.

A call may carry a deadline (the request's time budget, `--request-budget`): one whose turn comes
after it is answered 503 without running, so a backlog never turns into minutes of work for
clients that have given up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..priorities import BATCH, INTERACTIVE, PREFETCH
from .refusal import Refusal

__all__ = ["BATCH", "INTERACTIVE", "PREFETCH", "DeviceQueue", "DeviceQueueClosed", "DeadlinePassed"]

T = TypeVar("T")
log = logging.getLogger("segmote.service")


class DeviceQueueClosed(Refusal):
    """The server is stopping: no more model calls are taken (HTTP 503 to a client)."""

    def __init__(self, message: str):
        super().__init__(503, message)


class DeadlinePassed(Refusal):
    """A call's turn came after its deadline: it was not run (HTTP 503 to a client)."""

    def __init__(self, message: str):
        super().__init__(503, message)


class _Call:
    __slots__ = ("function", "result", "error", "notify", "deadline")

    def __init__(self, function: Callable, notify: Callable[[], None], deadline: float | None = None):
        self.function, self.notify, self.deadline = function, notify, deadline
        self.result = None
        self.error: BaseException | None = None

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result


class DeviceQueue:
    def __init__(self, name: str = "segmote device", initializer: Callable[[], None] | None = None):
        """`initializer` runs first on the device thread (thread-local device settings)."""
        self._initializer = initializer
        self._condition = threading.Condition()
        self._queue: list[tuple[int, int, _Call]] = []  # heap of (priority, ticket, call)
        self._tickets = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, priority: int, function: Callable[[], T]) -> T:
        """Run `function()` on the device thread when its turn comes; its result, or its exception
        raised here. Called on the device thread itself (a propagation's model calls), it first
        runs the queued calls more urgent than `priority`, then `function` at once."""
        if threading.current_thread() is self._thread:
            self.run_more_urgent(priority)
            return function()
        done = threading.Event()
        call = self._put(priority, function, done.set)
        done.wait()
        return call.outcome()

    async def run_async(self, priority: int, function: Callable[[], T], deadline: float | None = None) -> T:
        """`run` for a coroutine on an event loop: the loop is not blocked while the call waits.
        `deadline` (time.monotonic()): not run, DeadlinePassed raised, if its turn comes later."""
        loop = asyncio.get_running_loop()
        settled = loop.create_future()

        def notify():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

        call = self._put(priority, function, notify, deadline)
        await settled
        return call.outcome()

    def _put(self, priority: int, function: Callable, notify: Callable[[], None],
             deadline: float | None = None) -> _Call:
        call = _Call(function, notify, deadline)
        with self._condition:
            if self._closed:
                raise DeviceQueueClosed("the engine is stopping; no more model calls are taken")
            heapq.heappush(self._queue, (priority, next(self._tickets), call))
            self._condition.notify()
        return call

    def _serve(self) -> None:
        if self._initializer is not None:
            try:
                self._initializer()
            except Exception:  # a setting that fails to apply must not stop the engine
                log.exception("setting up the device thread failed; model calls run without it")
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return  # closed and drained
            self.run_more_urgent(math.inf)  # everything queued, the most urgent first

    def run_more_urgent(self, priority: float) -> int:
        """On the device thread: run the queued calls more urgent than `priority`, each time the most
        urgent one first (calls queued meanwhile included); how many ran."""
        count = 0
        while True:
            with self._condition:
                if not self._queue or self._queue[0][0] >= priority:
                    return count
                _, _, call = heapq.heappop(self._queue)
            _execute(call)
            count += 1

    @property
    def waiting(self) -> int:
        """Calls queued, not counting the one running."""
        with self._condition:
            return len(self._queue)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def close(self, timeout: float = 10.0) -> None:
        """Take no more calls; the queued ones still run, then the thread ends."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


def _execute(call: _Call) -> None:
    try:
        if call.deadline is not None and time.monotonic() > call.deadline:
            raise DeadlinePassed("the engine was busy for longer than this server's --request-budget allows "
                                 "this request to wait; try again")
        call.result = call.function()
    except BaseException as error:  # noqa: BLE001 — handed to the caller, who raises it
        call.error = error
    finally:
        call.function = None
        call.notify()


def _settle(future: asyncio.Future) -> None:
    if not future.done():  # the waiting request may have been cancelled (client gone)
        future.set_result(None)
