"""How work fares beside a GUI thread that holds the GIL, as Slicer's does.

Slicer's main thread idles in Qt's event loop without releasing the GIL (PythonQt's thread
support is off in Slicer 5.10); it runs Python (and so lets other threads in) only when a Qt
signal calls Python, e.g. a timer every ~25 ms. A worker thread whose work releases the GIL often
(every torch op, every socket read) then waits up to a poll after each release.

Two emulations:
- `timed_in_worker`: the main thread holds the GIL with a C sleep called through `ctypes.PyDLL`
  (which keeps the GIL, unlike `time.sleep`) and runs a little Python between the sleeps.
- `timed_on_qt_main_thread` (the glue's real path, PySide6 standing in for PythonQt): the main
  thread runs a real Qt event loop, `QEventLoop::exec` called through `ctypes.PyDLL`, so it holds
  the GIL while it waits in the event loop, as Slicer's does; Qt signals call Python on it (the
  network replies, a 25 ms timer like Slicer's own Python timers). Work done by Qt's asynchronous
  HTTP and handled in those signals needs no other thread; work on a worker thread starves.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

POLL_MS = 25.0


def available() -> bool:
    return sys.platform.startswith("linux") or sys.platform == "darwin"


def _sleep_holding_gil():
    libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL
    usleep = libc.usleep
    usleep.argtypes = [ctypes.c_uint]
    return usleep


def timed_in_worker(work, gil_held: bool, poll_ms: float = POLL_MS) -> float:
    """Seconds `work()` takes in a worker thread, with the main thread idle (releasing the GIL)
    or hogging it between polls. Call from the main thread."""
    outcome: dict = {}

    def worker():
        started = time.perf_counter()
        try:
            work()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error
        outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=worker, name="emulated effect worker")
    thread.start()
    if gil_held:
        usleep = _sleep_holding_gil()
        interval = int(poll_ms * 1000)
        while thread.is_alive():
            usleep(interval)  # the event loop, GIL held
            sum(range(50))     # the poll: a little Python, where the worker can take the GIL
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["seconds"]


def _event_loop_exec_holding_gil():
    """`QEventLoop::exec` of PySide6's QtCore library, called with the GIL held (ctypes.PyDLL)."""
    import PySide6

    folder = os.path.join(os.path.dirname(PySide6.__file__), "Qt", "lib")
    library = ctypes.PyDLL(os.path.join(folder, "libQt6Core.so.6"))
    run = library["_ZN10QEventLoop4execE6QFlagsINS_17ProcessEventsFlagEE"]  # int QEventLoop::exec(ProcessEventsFlags)
    run.argtypes, run.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
    return run


def qt_available() -> bool:
    try:
        import PySide6  # noqa: F401
    except ImportError:
        return False
    return sys.platform.startswith("linux")


def timed_on_qt_main_thread(start, gil_held: bool, timeout_s: float = 120.0, poll_ms: float = POLL_MS) -> float:
    """Seconds from `start(done)` until `done()` is called, with this (main) thread in a Qt event
    loop that holds the GIL while it waits (`gil_held`, Slicer) or releases it (a PySide6 loop).
    A timer calls a little Python every `poll_ms`, as Slicer's Python timers do. Call from the
    main thread of a process with a QCoreApplication (`service.pyside_qt.namespace()`)."""
    import shiboken6
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    ended = {}

    def done(*_unused):
        if "at" not in ended:
            ended["at"] = time.perf_counter()
            loop.quit()

    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: sum(range(50)))  # Slicer's own Python timers: where others get the GIL
    tick.start(int(poll_ms))
    guard = QtCore.QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(timeout_s * 1000))
    started = time.perf_counter()
    start(done)
    if "at" not in ended:
        if gil_held:
            _event_loop_exec_holding_gil()(shiboken6.getCppPointer(loop)[0], 0)
        else:
            loop.exec()
    tick.stop()
    guard.stop()
    if "at" not in ended:
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    return ended["at"] - started


def worker_thread_delivery(work):
    """`start(done)` for `timed_on_qt_main_thread` that runs `work()` on a Python worker thread and
    hands its result to the main thread by a 25 ms Qt timer, as the glue did before issue 19."""
    from PySide6 import QtCore

    def start(done):
        finished = threading.Event()
        poll = QtCore.QTimer()
        start.poll = poll  # kept alive until delivered

        def deliver():
            if finished.is_set():
                poll.stop()
                done()

        poll.timeout.connect(deliver)
        poll.start(int(POLL_MS))
        threading.Thread(target=lambda: (work(), finished.set()), name="emulated glue worker", daemon=True).start()

    return start
