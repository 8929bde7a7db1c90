"""Ends the processes of an embedded local Ray when the process that started it dies.

`ray.init()` fate-shares Ray's server processes with their driver, but not all of them: when a
driver is killed (`kill -9`, the out-of-memory killer), `ray::DashboardAgent` and
`ray::RuntimeEnvAgent` are left running, ignore SIGTERM and keep their memory and ports (found with
Ray 2.60). `RaySession` therefore starts this watchdog beside a Ray it starts itself (never for a
cluster it joins): a separate small process that

- every half second notes every process descending from the driver, with its start time;
- exits quietly when the driver writes `stop` to it (a normal shutdown, after `ray.shutdown()`);
- when its stdin closes without `stop` (the driver died), sends SIGTERM to the processes it noted
  that still run (the same start time: never a reused process id), then SIGKILL to those left
  after a few seconds.

Run as `python .../ray_watchdog.py DRIVER_PID` (the standard library only, so no import path is
needed). Linux and macOS (`/proc`, else `ps`).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5
GRACE_SECONDS = 3.0
STOP = b"stop"


def processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, start time)} of every process of this machine."""
    table: dict[int, tuple[int, str]] = {}
    if os.path.isdir("/proc/self"):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", encoding="latin-1") as handle:
                    stat = handle.read()
            except OSError:
                continue  # ended meanwhile
            fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and brackets
            table[int(name)] = (int(fields[1]), fields[19])
        return table
    listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "lstart="], capture_output=True,
                             text=True, check=False).stdout
    for line in listing.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            table[int(parts[0])] = (int(parts[1]), parts[2].strip())
    return table


def descendants(root: int, table: dict[int, tuple[int, str]]) -> dict[int, str]:
    """{pid: start time} of every process below `root`."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = {}, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found[pid] = table[pid][1]
            stack.extend(children.get(pid, []))
    return found


def end(noted: dict[int, str]) -> None:
    """SIGTERM, then SIGKILL after GRACE_SECONDS, to the noted processes that still run."""
    for how in (signal.SIGTERM, signal.SIGKILL):
        table = processes()
        alive = [pid for pid, started in noted.items() if pid in table and table[pid][1] == started]
        for pid in alive:
            try:
                os.kill(pid, how)
            except OSError:
                pass
        if not alive or how == signal.SIGKILL:
            return
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(pid in processes() for pid in alive):
            time.sleep(0.1)


def watch(driver: int) -> None:
    me = os.getpid()
    noted: dict[int, str] = {}
    received = b""
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], POLL_SECONDS)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 64)
            received += chunk
            if STOP in received:
                return
            if not chunk:  # the driver is gone: its end of the pipe closed with it
                end(noted)
                return
        found = descendants(driver, processes())
        found.pop(me, None)
        noted.update(found)  # a process that ended stays noted; `end` checks its start time


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the driver handles it
    watch(int(sys.argv[1]))


if __name__ == "__main__":
    main()
