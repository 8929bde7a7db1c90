"""Curation on a real local Ray (2 CPUs) against the local engine: byte-identical outputs, a killed
worker retried with the same result, a killed driver resumed, and a clear message without Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from conftest import shared_path, signal_once_journalled

from SegMoTELib.cli import main as segmote
from SegMoTELib.curation import run_curation
from SegMoTELib.curation.engine import LocalCurationEngine
from SegMoTELib.curation.ray_engine import RayCurationEngine

PAIRS_PER_SET = 12
SETS = ("jsrt_scr_chest_xray", "ham10000_skin_lesion", "aisd_stroke_ncct", "drive_fundus_vessels")
# multi-label grey X-ray, RGB dermoscopy, CT, RGB fundus: with the npz study, 5 work units
RUN = {"class_by": ("dataset", "label"), "seed": 3, "progress": False}
TARGET = 20
# Outputs that must be byte-identical; the report's summary.json/report.md hold timings, the journal
# holds units in completion order.
VOLATILE = {"report/summary.json", "report/report.md", "work/journal.jsonl"}


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> list[Path]:
    """Four 12-pair slices of train_pool (linked, with their manifests and labels) and one npz CT study."""
    root = tmp_path_factory.mktemp("subset")
    for name in SETS:
        real = shared_path("train_pool", name)
        folder = root / name
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        with (real / "manifest.csv").open(newline="") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda row: row["file"])[:PAIRS_PER_SET]
        for row in rows:
            (folder / "images" / row["file"]).symlink_to(real / "images" / row["file"])
            (folder / "masks" / row["file"]).symlink_to(real / "masks" / row["file"])
        with (folder / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        if (real / "labels.json").is_file():
            shutil.copy(real / "labels.json", folder / "labels.json")
    study = sorted(shared_path("volumes", "medsam2_deeplesion_npz").rglob("*.npz"))[0]
    return [root, study]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and str(p.relative_to(folder)) not in VOLATILE}


def _assert_same_outputs(out: Path, reference: Path) -> None:
    files, expected = _files(out), _files(reference)
    assert sorted(files) == sorted(expected)
    assert {"manifest.csv", "rejects.csv", "training_set/manifest.csv", "report/histograms_by_class.png"} <= set(files)
    different = [name for name in files if files[name] != expected[name]]
    assert not different, different
    summary, reference_summary = (json.loads((folder / "report" / "summary.json").read_text())
                                  for folder in (out, reference))
    for value in (summary, reference_summary):
        value.pop("timing")
        value.pop("out_dir")
        value["plots"] = [Path(path).name for path in value["plots"]]
        # a run after a killed one notes that it took over the dead run's lock (io.folder_lock)
        value["warnings"] = [w for w in value["warnings"] if not w.startswith("took over the lock")]
    assert summary == reference_summary


@pytest.fixture(scope="module")
def local_run(subset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("local")
    summary = run_curation(subset, TARGET, out, workers=2, engine=LocalCurationEngine(2), **RUN)
    assert summary["timing"]["engine"] == "local"
    assert summary["selected"] == TARGET and 30 <= summary["records"] <= 120  # a few dozen slices
    return out, summary


def test_ray_curation_equals_the_local_engine_byte_for_byte(subset, local_run, local_ray, tmp_path, capsys):
    code = segmote(["curate", *map(str, subset), "--target", str(TARGET), "--out", str(tmp_path), "--class-by",
                    "dataset,label", "--seed", "3", "--engine", "ray", "--quiet"])
    assert code == 0
    assert "ray engine, 2 workers, 0 of 5 units resumed" in capsys.readouterr().out
    _assert_same_outputs(tmp_path, local_run[0])


class KillOnceEngine(RayCurationEngine):
    """The first task to run kills its own worker process (as the OOM killer or a lost node would)."""

    def __init__(self, marker: Path):
        super().__init__()
        self.marker = marker

    def map_unordered(self, function, tasks):
        marker = self.marker

        def dies_once(task):
            import signal

            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return function(task)

        return super().map_unordered(dies_once, tasks)


def test_a_killed_worker_is_retried_and_the_result_is_unchanged(subset, local_run, local_ray, tmp_path):
    marker = tmp_path / "killed-once"
    out = tmp_path / "out"
    summary = run_curation(subset, TARGET, out, engine=KillOnceEngine(marker), **RUN)
    assert marker.exists()  # a worker did die
    assert summary["timing"]["units_resumed"] == 0 and summary["timing"]["engine"] == "ray"
    _assert_same_outputs(out, local_run[0])


def test_ray_resumes_from_the_journal_without_recomputing_finished_units(subset, local_run, local_ray, tmp_path):
    journal = (local_run[0] / "work" / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "journal.jsonl").write_bytes(b"".join(journal[:2]) + journal[2][:40])  # torn last line
    summary = run_curation(subset, TARGET, tmp_path, engine=RayCurationEngine(), **RUN)
    assert summary["timing"]["units_resumed"] == 2 and summary["timing"]["units"] == 5
    _assert_same_outputs(tmp_path, local_run[0])


def test_a_killed_driver_resumes_on_ray_without_recomputing_finished_units(subset, local_run, local_ray, tmp_path):
    """`segmote curate --engine ray` killed (with its own local Ray) once a unit is journalled, then rerun."""
    command = [sys.executable, "-m", "SegMoTELib.cli", "curate", *map(str, subset), "--target", str(TARGET),
               "--out", str(tmp_path), "--class-by", "dataset,label", "--seed", "3", "--engine", "ray",
               "--num-cpus", "1", "--quiet"]
    journal = tmp_path / "work" / "journal.jsonl"
    returncode = signal_once_journalled(command, journal, signal.SIGKILL)  # the driver and the Ray it started
    assert returncode == -signal.SIGKILL and not (tmp_path / "manifest.csv").exists()
    journalled = journal.read_bytes().count(b"\n")
    summary = run_curation(subset, TARGET, tmp_path, engine=RayCurationEngine(), **RUN)
    assert 1 <= summary["timing"]["units_resumed"] == journalled < summary["timing"]["units"]
    _assert_same_outputs(tmp_path, local_run[0])


def test_engine_ray_without_ray_installed_says_how_to_install(subset, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = segmote(["curate", *map(str, subset), "--target", "5", "--out", str(tmp_path), "--engine", "ray"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "pip install segmote[ray]" in error[0], error
    assert segmote(["curate", str(subset[0]), "--target", "5", "--out", str(tmp_path / "o"), "--num-cpus", "2"]) == 2
    assert "only with --engine ray" in capsys.readouterr().err


def test_an_address_where_no_cluster_answers_fails_in_seconds():
    from SegMoTELib.errors import InputError
    from SegMoTELib.ray_session import _check_reachable

    with pytest.raises(InputError, match="no Ray cluster answers at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")  # loopback, a port nothing listens on: refused at once
    _check_reachable("auto")  # left to Ray
