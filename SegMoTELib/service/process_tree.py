"""A child process and everything it starts, stopped as one (standard library only).

Slicer's `PythonSlicer` is a launcher (CTKAppLauncher) that starts `python-real` as its own child,
so stopping the process we started would leave the engine running. POSIX: the child leads a new
process group and the whole group is signalled. Windows: the child is put in a job object that
kills every process of the job when the job's last handle closes (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE),
which also happens when Slicer itself ends or crashes; the console window is hidden, as
`slicer.util.launchConsoleProcess` does (STARTUPINFO with SW_HIDE), and none is created
(CREATE_NO_WINDOW).
"""

from __future__ import annotations

import os
import signal
import subprocess

_CREATE_NO_WINDOW = 0x08000000
_STARTF_USESHOWWINDOW = 0x00000001
_SW_HIDE = 0
_JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
_JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
_PROCESS_SET_QUOTA, _PROCESS_TERMINATE = 0x0100, 0x0001


def popen_options() -> dict:
    """What `subprocess.Popen` needs so that the child and its children can be stopped together
    and show no console window."""
    if os.name == "nt":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= _STARTF_USESHOWWINDOW
        info.wShowWindow = _SW_HIDE
        return {"creationflags": _CREATE_NO_WINDOW, "startupinfo": info}
    return {"start_new_session": True}


class ProcessTree:
    def __init__(self, process: subprocess.Popen):
        self.process = process
        self._job = _windows_job(process) if os.name == "nt" else None

    def terminate(self) -> None:
        """Ask every process of the tree to stop (SIGTERM; on Windows the job ends them)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL if os.name != "nt" else signal.SIGTERM)

    def _signal(self, how) -> None:
        if os.name == "nt":
            if self._job is not None:
                _kernel32().TerminateJobObject(self._job, 1)
            elif self.process.poll() is None:
                self.process.kill()
            return
        try:
            os.killpg(self.process.pid, how)  # the child leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass  # already gone


def _kernel32():
    """kernel32 with the signatures used here, on a library object of our own: setting `restype` or
    `argtypes` on the shared `ctypes.windll.kernel32` would change them for every other user in
    Slicer's process, and without them a HANDLE would go through ctypes as a C int."""
    import ctypes
    from ctypes import wintypes

    if getattr(_kernel32, "library", None) is None:
        library = ctypes.WinDLL("kernel32", use_last_error=True)
        library.CreateJobObjectW.restype = wintypes.HANDLE
        library.CreateJobObjectW.argtypes = (ctypes.c_void_p, wintypes.LPCWSTR)
        library.SetInformationJobObject.restype = wintypes.BOOL
        library.SetInformationJobObject.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD)
        library.OpenProcess.restype = wintypes.HANDLE
        library.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        library.AssignProcessToJobObject.restype = wintypes.BOOL
        library.AssignProcessToJobObject.argtypes = (wintypes.HANDLE, wintypes.HANDLE)
        library.TerminateJobObject.restype = wintypes.BOOL
        library.TerminateJobObject.argtypes = (wintypes.HANDLE, wintypes.UINT)
        library.CloseHandle.restype = wintypes.BOOL
        library.CloseHandle.argtypes = (wintypes.HANDLE,)
        _kernel32.library = library
    return _kernel32.library


def _windows_job(process: subprocess.Popen):
    """A kill-on-close job object holding `process` (None when the system refuses: then only the
    process itself is stopped, and --exit-on-stdin-close still ends the engine)."""
    import ctypes
    from ctypes import wintypes

    class _BasicLimits(ctypes.Structure):
        _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                    ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                    ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                    ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                    ("SchedulingClass", wintypes.DWORD)]

    class _IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in ("ReadOperationCount", "WriteOperationCount",
                                                         "OtherOperationCount", "ReadTransferCount",
                                                         "WriteTransferCount", "OtherTransferCount")]

    class _ExtendedLimits(ctypes.Structure):
        _fields_ = [("BasicLimitInformation", _BasicLimits), ("IoInfo", _IoCounters),
                    ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                    ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

    kernel32 = _kernel32()
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return None
    limits = _ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if not kernel32.SetInformationJobObject(job, _JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits),
                                            ctypes.sizeof(limits)):
        kernel32.CloseHandle(job)
        return None
    handle = kernel32.OpenProcess(_PROCESS_SET_QUOTA | _PROCESS_TERMINATE, False, process.pid)
    # The launcher starts its python-real a moment after it starts: joined now, both are in the job.
    assigned = bool(handle) and kernel32.AssignProcessToJobObject(job, handle)
    if handle:
        kernel32.CloseHandle(handle)
    if not assigned:
        kernel32.CloseHandle(job)
        return None
    return job  # kept open for the life of this process: closing it (or our exit) ends the tree
