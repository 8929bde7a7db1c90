"""PySide6 standing in for Slicer's PythonQt `qt` module, where Slicer is absent (tests, benchmarks).

The Qt client (`qt_client.py`) and the glue's engine handle use only calls that PythonQt and
PySide6 spell alike, so the same code runs on both; this gives them PySide6's classes under the
names PythonQt's `qt` module has. PySide6 is not a dependency of SegMoTE: `pip install pyside6`.
"""

from __future__ import annotations

import types

from ..errors import InputError


def namespace() -> types.SimpleNamespace:
    """QtCore and QtNetwork's classes as one namespace (what `import qt` gives inside Slicer), and
    a QCoreApplication, created once."""
    try:
        from PySide6 import QtCore, QtNetwork
    except ImportError:
        raise InputError("PySide6 is needed where Slicer's Qt is absent: pip install pyside6-essentials") from None
    if QtCore.QCoreApplication.instance() is None:
        namespace.application = QtCore.QCoreApplication([])  # kept: Qt needs it for the process's lifetime
    names = {name: getattr(module, name) for module in (QtCore, QtNetwork) for name in dir(module)
             if name.startswith("Q")}
    return types.SimpleNamespace(**names)


def process_events_until(condition, timeout_s: float, poll_ms: int = 5) -> bool:
    """Run a Qt event loop (it releases the GIL while it waits) until `condition()`; whether it held.

    A QEventLoop with a polling timer, not a loop of `processEvents` calls: PySide6 6.12 on
    Python 3.11 drops a reference to None on each `processEvents()` return, and a few thousand
    calls end the interpreter ("deallocating None")."""
    import time

    from PySide6 import QtCore

    if condition():
        return True
    deadline = time.monotonic() + timeout_s
    loop = QtCore.QEventLoop()
    timer = QtCore.QTimer()

    def check():
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start(poll_ms)
    loop.exec()
    timer.stop()
    return bool(condition())
