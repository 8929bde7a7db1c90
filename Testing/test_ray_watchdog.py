"""Issue 23, item 11: the processes of the local Ray a run starts end with it, even when it is killed.

Before, `segmote curate --engine ray` killed with SIGKILL left `ray::DashboardAgent` and
`ray::RuntimeEnvAgent` running, and they ignored SIGTERM (Ray 2.60).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from faults_support import linked_pool

pytest.importorskip("ray", reason="needs Ray (pip install segmote[ray]; scripts/setup.sh installs it)")


def _session(leader: int) -> list[tuple[int, str]]:
    """(pid, command) of the processes of the session `leader` started (start_new_session=True)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[3]) == leader:
            found.append((int(entry.name), command))
    return found


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads the process table from /proc")
def test_killing_the_driver_ends_every_process_of_its_ray(tmp_path):
    pool = linked_pool(tmp_path, ("jsrt_scr_chest_xray", "busi_breast_us"))
    out = tmp_path / "curated"
    command = [sys.executable, "-m", "SegMoTELib.cli", "curate", str(pool), "--target", "20", "--out", str(out),
               "--engine", "ray", "--num-cpus", "2", "--quiet", "--no-plots", "--no-export"]
    driver = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
    journal = out / "work" / "journal.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:
            if journal.is_file() and journal.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "curate ended before its driver could be killed"
        assert any("ray::" in name for _, name in _session(driver.pid)), "no Ray process to watch"
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as the out-of-memory killer does
        driver.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _session(driver.pid):
            time.sleep(0.2)
        assert _session(driver.pid) == []
    finally:
        for pid, _ in _session(driver.pid):  # what the run started and left behind
            os.kill(pid, signal.SIGKILL)


def test_a_normal_exit_stops_the_watchdog_without_touching_anything():
    from SegMoTELib.ray_session import RaySession

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a child of ours, not Ray's
    try:
        with RaySession(num_cpus=1) as session:
            watchdog = session._watchdog
            assert watchdog is not None and watchdog.poll() is None
        assert watchdog.returncode == 0
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
