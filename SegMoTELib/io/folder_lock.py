"""One run at a time per output folder: a lock file that names the run holding it.

Two runs writing one folder destroy each other's work (one removes the other's temporary training
set under its workers). A run takes `<folder>/.segmote.lock` before it writes anything; a second
run is refused with the holder's pid, host, command and start time.

The lock is the operating system's (`flock` on POSIX, `msvcrt.locking` on Windows) on that file,
not the file's existence: it is released by the kernel when the holder exits, however it exits,
so a lock file left by a killed run is stale by construction and the next run takes it over (and
says so). The pid written inside is for people; it decides nothing. (A lock is shared with the
processes a run forks: if the run is killed alone and its workers linger, the refusal says so.)
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from ..errors import InputError

LOCK_NAME = ".segmote.lock"


class FolderLock:
    """`with FolderLock(folder, "segmote curate"):` — the folder must exist."""

    def __init__(self, folder, command: str = "segmote", argument: str = "--out"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.argument = argument
        self.took_over: str | None = None  # "pid 123 on host (segmote curate, since ...)" of a stale lock
        self._descriptor: int | None = None

    def acquire(self) -> FolderLock:
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _lock(descriptor)
            except OSError:
                record = _read(self.path)
                os.close(descriptor)
                if _has_ended(record):  # its lock lives on in processes it started (pool workers)
                    raise InputError(f"{self.argument}: {self.folder} is still held by processes started by a run "
                                     f"that has ended ({_describe(record)}); end those processes or choose another "
                                     f"folder") from None
                raise InputError(f"{self.argument}: {self.folder} is in use by another run ({_describe(record)}); "
                                 f"wait for it to finish or choose another folder") from None
            if _same_file(descriptor, self.path):
                break
            os.close(descriptor)  # the holder removed the file between our open and our lock: retry
        previous = _read(self.path)
        if previous.get("pid") not in (None, os.getpid()):
            self.took_over = _describe(previous)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, (json.dumps(record) + "\n").encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is None:
            return
        try:
            self.path.unlink()  # while still locked: a waiting run then sees a new file and retries
        except OSError:
            pass  # Windows cannot remove an open file; the next run takes the unlocked file over
        _unlock(self._descriptor)
        os.close(self._descriptor)
        self._descriptor = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "pid unknown: it is just starting"
    where = f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
    return (f"pid {holder['pid']}{where}, {holder.get('command', 'segmote')}, "
            f"since {holder.get('started', 'an unknown time')}")


def _has_ended(holder: dict) -> bool:
    """True if the recorded holder ran on this host and its process no longer exists."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(descriptor)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


try:
    import fcntl

    def _lock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock(descriptor: int) -> None:
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)

    def _unlock(descriptor: int) -> None:
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
