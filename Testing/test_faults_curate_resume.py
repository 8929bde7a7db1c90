"""Issue 23, item 11: resuming `segmote curate` on sources that changed, a journal damaged in its
middle, and a measuring worker killed (as the out-of-memory killer does). Real pairs and studies
from ../shared/data, copied so they can be changed.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import REPO, shared_path
from faults_support import linked_pool
from PIL import Image

from SegMoTELib.cli import main as segmote

HIPPOCAMPUS = ("volumes3d", "msd_hippocampus_mri", "data", "TrainingSet")


def _manifest(out: Path) -> list[dict]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _pair_set(root: Path, name: str, count: int = 12) -> Path:
    """`count` real CT pairs copied into a train_pool-style folder."""
    real = shared_path("train_pool", "aisd_stroke_ncct")
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for file in sorted(p.name for p in (real / "images").glob("*.png"))[:count]:
        shutil.copy(real / "images" / file, folder / "images" / file)
        shutil.copy(real / "masks" / file, folder / "masks" / file)
    return folder


def _curate(*sources, out: Path, extra=()) -> list[str]:
    return ["curate", *map(str, sources), "--target", "4", "--out", str(out), "--workers", "1", "--quiet",
            "--no-plots", "--no-export", *extra]


def test_a_resume_measures_again_the_units_whose_masks_changed(tmp_path, capsys):
    """The probe's case: masks blanked between an interrupted run and its resume. Before, the
    journal (keyed by path) gave the blanked masks their old records: empty masks in the set."""
    kept, blanked = _pair_set(tmp_path, "kept"), _pair_set(tmp_path, "blanked")
    out = tmp_path / "curated"
    assert segmote(_curate(kept, blanked, out=out)) == 0
    assert sum(row["dataset"] == "blanked" and float(row["fg_ratio"]) > 0 for row in _manifest(out)) == 12
    for mask in (blanked / "masks").iterdir():
        shape = np.array(Image.open(mask)).shape
        Image.fromarray(np.zeros(shape, np.uint8)).save(mask)
    capsys.readouterr()
    assert segmote(_curate(kept, blanked, out=out)) == 0
    captured = capsys.readouterr()
    assert "1 of 2 units resumed" in captured.out  # `kept` resumed, `blanked` measured again
    assert "1 work unit(s) measured again: their files changed since they were measured" in captured.err
    blanked_rows = [row for row in _manifest(out) if row["dataset"] == "blanked"]
    assert len(blanked_rows) == 12  # an empty mask keeps its record, measured as empty and rejected
    assert all(float(row["fg_ratio"]) == 0 and row["passed"] == "False" and row["selected"] == "False"
               for row in blanked_rows)


def test_a_label_changed_in_place_with_its_size_and_time_kept_is_measured_again(tmp_path, capsys):
    """A copy that keeps size and modification time (cp -p, rsync -t): only the content differs."""
    real = shared_path(*HIPPOCAMPUS)
    case = sorted(p.name for p in (real / "images").glob("*.nii.gz"))[0]
    study = tmp_path / "studies"
    study.mkdir()
    image, label = study / "hippo_image.nii", study / "hippo_label.nii"
    image.write_bytes(gzip.decompress((real / "images" / case).read_bytes()))
    label.write_bytes(gzip.decompress((real / "labels" / case).read_bytes()))
    out = tmp_path / "curated"
    assert segmote(_curate(study, out=out)) == 0
    assert _manifest(out), "the hippocampus study gives records"
    before = label.stat()
    data = bytearray(label.read_bytes())
    offset = 352  # NIfTI-1 single-file data start (vox_offset of these files)
    data[offset:] = bytes(len(data) - offset)
    label.write_bytes(bytes(data))
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert label.stat().st_size == before.st_size and label.stat().st_mtime_ns == before.st_mtime_ns
    capsys.readouterr()
    assert segmote(_curate(study, out=out)) == 0
    assert "0 of 1 units resumed" in capsys.readouterr().out
    assert _manifest(out) == []  # the label is empty now: nothing to curate


def test_a_corrupt_line_in_the_middle_of_the_journal_keeps_the_lines_after_it(tmp_path, capsys):
    sources = [_pair_set(tmp_path, name) for name in ("first", "second", "third")]  # three units
    out = tmp_path / "curated"
    assert segmote(_curate(*sources, out=out)) == 0
    reference = (out / "manifest.csv").read_bytes()
    journal = out / "work" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 3
    torn = lines[1][: len(lines[1]) // 2]  # an edit or a disk error: not JSON, but a complete line
    journal.write_text("\n".join([lines[0], torn, lines[2]]) + "\n")
    capsys.readouterr()
    assert segmote(_curate(*sources, out=out)) == 0
    captured = capsys.readouterr()
    assert f"{journal} line 2: not a JSON line" in captured.err
    assert "2 of 3 units resumed" in captured.out  # before: 1 (the good line after it was dropped)
    assert (out / "manifest.csv").read_bytes() == reference
    assert (out / "work" / "journal.jsonl.rejected").read_text() == torn + "\n"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def test_a_killed_measuring_worker_ends_curate_with_one_line_and_frees_the_folder(tmp_path):
    """Before, `multiprocessing.Pool` replaced the killed worker and waited for its task forever,
    printing nothing and keeping the output folder locked."""
    pool = linked_pool(tmp_path, ("jsrt_scr_chest_xray", "busi_breast_us", "camus_echo"))  # ~30 units
    out = tmp_path / "curated"
    command = [sys.executable, "-m", "SegMoTELib.cli", "curate", str(pool), "--target", "50", "--out", str(out),
               "--workers", "2", "--quiet", "--no-plots", "--no-export"]
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment)
    journal = out / "work" / "journal.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if journal.is_file() and journal.read_bytes().count(b"\n") >= 1 and _children(process.pid):
                break
            time.sleep(0.02)
        assert process.poll() is None, "curate finished before a worker could be killed"
        os.kill(_children(process.pid)[0], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2, (process.returncode, lines)
    assert len(lines) == 1 and lines[0].startswith("segmote curate: error: a curation worker process died"), lines
    assert "rerun the same command to resume" in lines[0]
    assert not (out / ".segmote.lock").exists()
    finished = journal.read_bytes().count(b"\n")
    assert all(json.loads(line)["key"] for line in journal.read_text().splitlines())
    assert finished >= 1
