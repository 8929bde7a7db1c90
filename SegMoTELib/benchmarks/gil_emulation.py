"""How a worker thread fares beside a GUI thread that holds the GIL, as in Slicer.

Slicer's main thread idles in Qt's event loop without releasing the GIL; it runs Python (and so
lets other threads in) only at timer polls, every ~25 ms. A worker thread whose work releases the
GIL often (every torch op) then waits up to a poll after each release. The emulation holds the GIL
in the main thread with a C sleep called through `ctypes.PyDLL` (which keeps the GIL, unlike
`time.sleep`) and runs a little Python between the sleeps.
"""

from __future__ import annotations

import ctypes
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
