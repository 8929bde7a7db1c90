"""Issue 15, full disks: outputs on a small tmpfs mounted for the test (Linux, as root), filled up.

A full disk must end like any other mistake: exit status 2, one line, and every file that was
there before (a good mask and its overlay, an earlier curation's manifest and training set) left
exactly as it was, with no temporary file behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from faults_support import (
    linked_pool,
    assert_unchanged,
    no_model,  # noqa: F401 - a fixture, used through usefixtures
    refused,
    snapshot,
)
from PIL import Image

from SegMoTELib.cli import main as segmote

MODEL = ["--device", "cpu", "--adapter", "none"]
POOL_DATASETS = ("acdc_cardiac_mri", "bhsd_brain_hemorrhage_ct", "jsrt_scr_chest_xray")


def _mount_small_disk(folder: Path, size: str) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("a small file system for the test needs Linux tmpfs")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")


@pytest.fixture
def small_disk(tmp_path):
    """Factory: small_disk(size) mounts a tmpfs of that size and returns its folder."""
    mounted = []

    def make(size: str = "8m") -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        _mount_small_disk(folder, size)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(disk: Path, leave_bytes: int) -> None:
    """Write a filler file until about `leave_bytes` remain free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler.bin", "ab") as handle:
        handle.write(b"\0" * max(free - leave_bytes, 0))
    assert abs(os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - leave_bytes) <= 64 * 1024


def _leftovers(disk: Path, expected: set[str]) -> set[str]:
    return {str(p.relative_to(disk)) for p in disk.rglob("*")} - expected


@pytest.mark.usefixtures("no_model")
def test_segment_on_a_full_disk_is_refused_before_the_model(small_disk, capsys):
    disk = small_disk("2m")
    _fill(disk, 0)
    before = snapshot(disk)
    refused(["segment", shared_path("dev_eval", "medscribble", "CHAOS", "19_axis0_midslice", "image.png"),
             "--box", "60", "60", "160", "160", "-o", disk / "liver.png", *MODEL], capsys, "--output", "full")
    assert_unchanged(before, disk)
    assert _leftovers(disk, {"filler.bin"}) == set()


def test_a_disk_filling_up_during_the_overlay_keeps_the_previous_mask_and_overlay(tmp_path, small_disk, capsys,
                                                                                  monkeypatch, base_predictor):
    """The mask fits, its overlay does not: neither is published, the good earlier pair stays."""
    import SegMoTELib.commands.segment as segment_command

    monkeypatch.setattr(segment_command, "predictor_from_args", lambda args, cache_size=8: base_predictor)
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 256, (1200, 1200), dtype=np.uint8)  # its RGB overlay: ~4 MB of PNG
    noisy[400:800, 400:800] //= 4
    image = tmp_path / "noisy.png"
    Image.fromarray(noisy).save(image)
    disk = small_disk("8m")
    (disk / "lesion.png").write_bytes(b"the previous good mask")
    (disk / "lesion_overlay.png").write_bytes(b"the previous good overlay")
    _fill(disk, 1536 * 1024)  # above the 1 MiB floor of the early check: the failure comes while writing
    before = snapshot(disk)
    line = refused(["segment", image, "--box", "400", "400", "800", "800", "-o", disk / "lesion.png", *MODEL],
                   capsys, "--output", str(disk / "lesion_overlay.png"))
    assert "No space left on device" in line or "full" in line
    assert ".segmote-tmp" not in line  # the file the user asked for, not a temporary name
    assert_unchanged(before, disk)
    assert _leftovers(disk, {"filler.bin", "lesion.png", "lesion_overlay.png"}) == set()


def test_curate_running_out_of_space_keeps_the_earlier_run_and_says_so_in_one_line(tmp_path, small_disk, capsys):
    pool = linked_pool(tmp_path, POOL_DATASETS)
    disk = small_disk("16m")
    out = disk / "curated"
    first = ["curate", str(pool / "acdc_cardiac_mri"), "--target", "10", "--out", str(out), "--workers", "1",
             "--quiet", "--no-plots"]
    assert segmote(first) == 0
    capsys.readouterr()
    existing = {str(p.relative_to(disk)) for p in disk.rglob("*")}
    _fill(disk, 1536 * 1024)
    before = snapshot(out)
    # the journal is the run's own record of measured units: it grows by design, so it is left out
    before = {path: digest for path, digest in before.items() if not path.endswith("journal.jsonl")}
    line = refused(["curate", str(pool), "--target", "250", "--out", str(out), "--workers", "1", "--quiet",
                    "--no-plots"], capsys, "--out", "No space left on device")
    assert str(out) in line
    assert_unchanged(before, out)
    assert _leftovers(disk, existing | {"filler.bin"}) == set()  # no training_set.partial, no temporary file


@pytest.mark.usefixtures("no_model")
def test_curate_and_evaluate_into_a_full_disk_are_refused_before_any_work(tmp_path, small_disk, capsys):
    disk = small_disk("2m")
    _fill(disk, 0)
    refused(["curate", str(shared_path("train_pool", "aisd_stroke_ncct")), "--target", "5", "--out",
             disk / "curated", "--workers", "1", "--quiet"], capsys, "--out", "full")
    refused(["evaluate", shared_path("dev_eval", "medscribble"), "--out", disk / "evaluation", *MODEL, "--quiet"],
            capsys, "--out", "full")
    assert _leftovers(disk, {"filler.bin"}) == set()
