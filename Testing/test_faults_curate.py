"""Issue 15, `segmote curate` and `segmote evaluate`: output folders, concurrent runs, reruns, the
journal, truncated studies. Real pairs and studies from ../shared/data.

Items covered: 2 (two runs into one --out: lock with the holder's pid, stale lock taken over),
4 (a truncated study is an error, not a good study), 7 (a --no-export rerun removes the stale
training set), 10 (--out under a file or in /proc), 12 (journal lines without their key),
15 (evaluate --out checked before the model loads).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, shared_path
from faults_support import (
    linked_pool,
    assert_unchanged,
    no_model,  # noqa: F401 - a fixture, used through usefixtures
    refused,
    snapshot,
    truncated_copy,
)

from SegMoTELib.cli import main as segmote

CONCURRENT_DATASETS = ("acdc_cardiac_mri", "bhsd_brain_hemorrhage_ct", "jsrt_scr_chest_xray")  # 314 pairs
CT = ("volumes", "totalseg_tests", "tests", "reference_files")


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _small_set(root: Path, count: int = 12, name: str = "stroke") -> Path:
    """`count` real CT pairs copied into a train_pool-style folder (so they can be damaged)."""
    real = shared_path("train_pool", "aisd_stroke_ncct")
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    names = sorted(p.name for p in (real / "images").glob("*.png"))[:count]
    for file in names:
        shutil.copy(real / "images" / file, folder / "images" / file)
        shutil.copy(real / "masks" / file, folder / "masks" / file)
    (folder / "manifest.csv").write_text("file,source_case,slice_index,modality,target_names\n"
                                         + "".join(f"{file},{file[:-4]},,CT,infarct\n" for file in names))
    return folder


def _curate(source, out, *extra) -> list[str]:
    return ["curate", str(source), "--target", "6", "--out", str(out), "--workers", "1", "--quiet", "--no-plots",
            *map(str, extra)]


def _consistent(out: Path, target: int) -> None:
    """The manifest's selection and the training set agree, and every listed file exists."""
    selected = [row for row in _rows(out / "manifest.csv") if row["selected"] == "True"]
    exported = _rows(out / "training_set" / "manifest.csv")
    assert len(selected) == len(exported) == target
    for row in exported:
        assert (out / "training_set" / "images" / row["file"]).is_file()
        assert (out / "training_set" / "masks" / row["file"]).is_file()
    assert sorted(p.name for p in (out / "training_set" / "images").iterdir()) == sorted(r["file"] for r in exported)
    assert not (out / "training_set.partial").exists()
    assert not (out / ".segmote.lock").exists()


# --- 10: unusable output folders ------------------------------------------------------------------------
def test_curate_out_under_a_file_or_in_proc_is_refused_before_measuring(tmp_path, capsys):
    source = _small_set(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    before = snapshot(tmp_path)
    refused(_curate(source, plain), capsys, "plain.txt")
    refused(_curate(source, plain / "curated"), capsys, "--out", "is a file, so the folder")
    if os.path.isdir("/proc/self"):
        refused(_curate(source, "/proc/curated"), capsys, "--out", "cannot write in the folder /proc")
    assert_unchanged(before, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "stroke"]


@pytest.mark.usefixtures("no_model")
def test_evaluate_out_that_cannot_be_written_is_refused_before_the_model(tmp_path, capsys):
    data = shared_path("dev_eval", "medscribble")
    plain = tmp_path / "report.md"
    plain.write_text("an earlier report")
    before = snapshot(tmp_path)
    base = ["evaluate", data, "--prompt", "box", "--device", "cpu", "--adapter", "none", "--quiet"]
    refused([*base, "--out", plain], capsys, "--out", "is a file, not a folder")
    refused([*base, "--out", plain / "sub"], capsys, "--out", "is a file, so the folder")
    if os.path.isdir("/proc/self"):
        refused([*base, "--out", "/proc/evaluation"], capsys, "--out", "/proc")
    refused([*base, "--adapter", tmp_path], capsys, "--adapter", "is a folder")
    assert_unchanged(before, tmp_path)


# --- 2: one run at a time per output folder --------------------------------------------------------
def _start(pool: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "SegMoTELib.cli", "curate", str(pool), "--target", "60", "--out", str(out),
               "--workers", "1", "--quiet", "--no-plots"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _holder_pid(lock: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(json.loads(lock.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    raise AssertionError(f"no lock appeared at {lock}")


def test_a_second_curate_run_into_a_busy_folder_exits_2_naming_the_first(tmp_path):
    pool, out = linked_pool(tmp_path, CONCURRENT_DATASETS), tmp_path / "curated"
    first = _start(pool, out)
    assert _holder_pid(out / ".segmote.lock") == first.pid
    second = _start(pool, out)
    second_out, second_err = second.communicate(timeout=300)
    first_out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2, second_err
    lines = second_err.strip().splitlines()
    assert len(lines) == 1 and f"in use by another run (pid {first.pid}, segmote curate, since" in lines[0]
    _consistent(out, 60)


def test_two_curate_runs_started_together_leave_one_consistent_training_set(tmp_path):
    pool, out = linked_pool(tmp_path, CONCURRENT_DATASETS), tmp_path / "curated"
    runs = [_start(pool, out), _start(pool, out)]
    results = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes in ([0, 0], [0, 2]), results  # [0, 0]: the second started after the first had finished
    for run, (_, err) in zip(runs, results):
        if run.returncode == 2:
            winner = next(other for other in runs if other is not run)
            assert f"pid {winner.pid}" in err and len(err.strip().splitlines()) == 1
    _consistent(out, 60)


_HOLD = textwrap.dedent("""
    import sys, time
    from SegMoTELib.io import FolderLock
    with FolderLock(sys.argv[1], "segmote curate"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_curate_refuses_a_live_holder_and_takes_over_a_dead_ones_lock(tmp_path, capsys):
    source = _small_set(tmp_path)
    out = tmp_path / "curated"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(_curate(source, out), capsys, f"pid {holder.pid}", "wait for it to finish or choose another folder")
        assert sorted(p.name for p in out.iterdir()) == [".segmote.lock"]
    finally:
        holder.kill()
        holder.wait()
    # the killed holder's lock file is still there: it is stale and the next run takes it over
    assert (out / ".segmote.lock").exists()
    assert segmote(_curate(source, out)) == 0
    err = capsys.readouterr().err
    assert f"took over the lock of a run that no longer runs (pid {holder.pid}" in err
    _consistent(out, 6)


# --- 7: a --no-export rerun ------------------------------------------------------------------------
def test_a_no_export_rerun_removes_the_training_set_of_the_earlier_run(tmp_path, capsys):
    source = _small_set(tmp_path)
    out = tmp_path / "curated"
    assert segmote(_curate(source, out)) == 0
    _consistent(out, 6)
    capsys.readouterr()
    assert segmote(["curate", str(source), "--target", "4", "--out", str(out), "--workers", "1", "--quiet",
                    "--no-plots", "--no-export"]) == 0
    assert "removed" in capsys.readouterr().err
    assert not (out / "training_set").exists()
    assert sum(row["selected"] == "True" for row in _rows(out / "manifest.csv")) == 4


# --- 12: a journal line without its key --------------------------------------------------------------
@pytest.mark.parametrize("bad_line, fault", [
    ({"records": [], "errors": [], "slices": 0}, "no 'key' field"),
    ([1, 2, 3], "expected a JSON object"),
    ("edited", "expected a JSON object"),
    (None, "a record lacks"),
], ids=["no-key", "list", "string", "record-fields"])
def test_a_journal_line_that_is_not_a_finished_unit_is_skipped_and_named(tmp_path, capsys, bad_line, fault):
    sources = [_small_set(tmp_path, 12, "first"), _small_set(tmp_path, 12, "second")]  # two work units
    out = tmp_path / "curated"
    arguments = ["curate", *map(str, sources), "--target", "6", "--out", str(out), "--workers", "1", "--quiet",
                 "--no-plots", "--no-export"]
    assert segmote(arguments) == 0
    reference = (out / "manifest.csv").read_bytes()
    journal = out / "work" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    if bad_line is None:  # a unit whose records lost a field (another version, an edit)
        entry = json.loads(lines[0])
        del entry["records"][0]["record_id"]
        bad_line = entry
    lines[0] = json.dumps(bad_line)
    journal.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert segmote(arguments) == 0
    captured = capsys.readouterr()
    assert f"{journal} line 1: {fault}" in captured.err and "moved to journal.jsonl.rejected" in captured.err
    assert "1 of 2 units resumed" in captured.out  # the skipped unit was measured again, the other resumed
    assert (out / "manifest.csv").read_bytes() == reference
    assert (out / "work" / "journal.jsonl.rejected").read_text() == lines[0] + "\n"  # kept, out of the way
    assert segmote(arguments) == 0  # the next resume meets the line no more, and says nothing of it
    captured = capsys.readouterr()
    assert "journal.jsonl line" not in captured.err and "2 of 2 units resumed" in captured.out
    assert (out / "manifest.csv").read_bytes() == reference


# --- 4: truncated inputs in curation --------------------------------------------------------------------
def test_a_truncated_study_is_an_error_and_not_a_good_study(tmp_path):
    from SegMoTELib.curation import run_curation

    reference = shared_path(*CT)
    cut = truncated_copy(reference / "example_ct_sm.nii.gz", tmp_path / "cut_ct.nii.gz", 0.6)
    table = tmp_path / "studies.csv"
    table.write_text("image,label,modality,case\n"
                     f"{reference / 'example_ct_sm.nii.gz'},{reference / 'example_seg.nii.gz'},CT,whole\n"
                     f"{cut},{reference / 'example_seg.nii.gz'},CT,cut\n")
    run_curation([table], 20, tmp_path / "out", workers=1, progress=False, export=False, plots=False)
    errors = _rows(tmp_path / "out" / "errors.csv")
    assert [row["file"] for row in errors] == [str(cut)]
    assert "truncated" in errors[0]["error"] or "corrupt" in errors[0]["error"]
    cases = {row["case"] for row in _rows(tmp_path / "out" / "manifest.csv")}
    assert cases == {"whole"}


def test_a_truncated_png_pair_is_logged_by_name(tmp_path):
    from SegMoTELib.curation import run_curation

    source = _small_set(tmp_path, count=5)
    victim = sorted((source / "images").iterdir())[2]
    truncated_copy(victim, victim, 0.7)
    run_curation([source], 2, tmp_path / "out", workers=1, progress=False, export=False, plots=False)
    errors = _rows(tmp_path / "out" / "errors.csv")
    assert [Path(row["file"]).name for row in errors] == [victim.name]
    assert len({row["image_file"] for row in _rows(tmp_path / "out" / "manifest.csv")}) == 4
