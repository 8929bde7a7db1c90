"""`segmote batch` on three real volumes: same masks as `segmote segment` one by one, locally and
on Ray; bad rows land in failures.csv with the engine's message; a rerun skips written studies."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shared_path

from SegMoTELib.cli import main as segmote

MODEL = ["--device", "cpu", "--adapter", "none"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Every run here on one torch thread, as each Ray CPU actor (1 CPU) runs: the encoder's float
    rounding depends on the thread count, and a propagated mask can move a boundary voxel with it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corners_of_label(image_path, label_path, slices=None):
    """RAS corners (2, 3) of the label's bounding box, optionally limited to a k range."""
    from SegMoTELib.io import read_labelmap, read_volume

    volume = read_volume(image_path)
    truth = read_labelmap(label_path).array > 0
    if slices is not None:
        kept = np.zeros_like(truth)
        kept[slices[0]:slices[1] + 1] = truth[slices[0]:slices[1] + 1]
        truth = kept
    present = np.argwhere(truth)
    low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # i, j, k
    return volume.ijk_to_ras_points([low, high])


def _centre_of_label(npz_path):
    from SegMoTELib.io import read_npz_case

    volume, labels = read_npz_case(npz_path)
    present = np.argwhere(labels.array > 0)
    k = int(np.median(present[:, 0]))
    in_slice = present[present[:, 0] == k]
    j, i = np.round(in_slice[:, 1:].mean(axis=0)).astype(int)
    return volume.ijk_to_ras_points([[i, j, k]])[0]


def _numbers(values) -> str:
    return ",".join(f"{v:.4f}" for v in np.ravel(values))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three small real studies (MR NRRD box, CT NIfTI box, CT npz click + propagation) and two bad rows."""
    volumes = shared_path("volumes")
    breast = volumes / "pyradiomics_testcases" / "data"
    totalseg = volumes / "totalseg_tests" / "tests" / "reference_files"
    lesion = sorted((volumes / "medsam2_deeplesion_npz" / "data" / "RECIST_train_npz").glob("*.npz"))[0]
    breast_box = _corners_of_label(breast / "breast1_image.nrrd", breast / "breast1_label.nrrd")
    ct_box = _corners_of_label(totalseg / "example_ct_sm.nii.gz", totalseg / "example_seg.nii.gz", slices=(9, 10))
    ct_box[:, :2] = np.mean(ct_box[:, :2], axis=0) + np.array([[-25.0, -25.0], [25.0, 25.0]])  # a 50 mm box
    point = _centre_of_label(lesion)
    good = [
        (str(breast / "breast1_image.nrrd"), f"ras-box:{_numbers(breast_box)}", "tumour"),
        (str(totalseg / "example_ct_sm.nii.gz"), f"ras-box:{_numbers(ct_box)}", "organ"),
        (str(lesion), f"ras-point:{_numbers(point)}", "lesion"),
    ]
    bad = [
        (str(volumes / "no_such_study.nii.gz"), "ras-point:0,0,0", "missing"),
        (str(breast / "brain1_image.nrrd"), "ras-box:5000,5000,5000,5010,5010,5010", "outside"),
    ]
    folder = tmp_path_factory.mktemp("cohort")
    table = folder / "cohort.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "name"])
        writer.writerows(good[:2] + bad[:1] + good[2:] + bad[1:])
    return table, good, bad


def _study(image: str) -> str:
    from SegMoTELib.cohort.table import study_name_of

    return study_name_of(image)


def _mask(path):
    import slicerio

    segmentation = slicerio.read_segmentation(str(path))
    return np.asarray(segmentation["voxels"]), segmentation["ijkToLPS"], [s["name"] for s in segmentation["segments"]]


@pytest.fixture(scope="module")
def one_by_one(cohort, tmp_path_factory):
    """`segmote segment` on each good row: the reference masks."""
    _, good, _ = cohort
    folder = tmp_path_factory.mktemp("one_by_one")
    for image, prompt, name in good:
        kind, numbers = prompt.split(":")
        values = numbers.split(",")
        option = ["--ras-box", *values] if kind == "ras-box" else ["--ras-point", *values, "--propagate"]
        assert segmote(["segment", image, *option, "--name", name, "-o", str(folder / f"{_study(image)}.seg.nrrd"),
                        *MODEL]) == 0
    return folder


def _failures(folder) -> dict:
    with (folder / "failures.csv").open(newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def _check_batch_output(folder, cohort, one_by_one):
    _, good, bad = cohort
    for image, _, name in good:
        written, ijk_to_lps, names = _mask(folder / f"{_study(image)}.seg.nrrd")
        reference, reference_ijk, _ = _mask(one_by_one / f"{_study(image)}.seg.nrrd")
        assert names == [name]
        np.testing.assert_allclose(ijk_to_lps, reference_ijk)
        assert written.any() and np.array_equal(written, reference), image
    failures = _failures(folder)
    assert set(failures) == {"missing", "outside"}
    assert "no such file" in failures["missing"]["error"] and "no_such_study" in failures["missing"]["error"]
    assert "outside the volume" in failures["outside"]["error"]
    assert failures["outside"]["prompt"] == bad[1][1] and failures["outside"]["line"] == "6"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["failures.csv"] + [f"{_study(image)}.seg.nrrd" for image, _, _ in good])


def test_local_batch_equals_segment_one_by_one_and_logs_bad_rows(cohort, one_by_one, tmp_path, capsys):
    table, good, _ = cohort
    assert segmote(["batch", str(table), "--out", str(tmp_path), "--quiet", *MODEL]) == 1  # 1: some rows failed
    assert "3 written, 0 skipped (already written), 2 failed of 5" in capsys.readouterr().out
    _check_batch_output(tmp_path, cohort, one_by_one)
    # a rerun skips the written studies and retries only the failed rows
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.seg.nrrd")}
    assert segmote(["batch", str(table), "--out", str(tmp_path), "--quiet", *MODEL]) == 1
    assert "0 written, 3 skipped (already written), 2 failed of 5" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.seg.nrrd")} == before
    _check_batch_output(tmp_path, cohort, one_by_one)


def test_ray_batch_equals_segment_one_by_one_and_logs_bad_rows(cohort, one_by_one, local_ray, tmp_path, capsys):
    table, _, _ = cohort
    assert segmote(["batch", str(table), "--out", str(tmp_path), "--engine", "ray", "--quiet", *MODEL]) == 1
    assert "3 written, 0 skipped (already written), 2 failed of 5 rows" in capsys.readouterr().out
    _check_batch_output(tmp_path, cohort, one_by_one)


@pytest.mark.parametrize("content, message", [
    ("image,name\nx.nii.gz,liver\n", "missing column(s) prompt"),
    ("image,prompt,name\nx.nii.gz,ras-box:1,2,3,4,5,6,liver\n", "line 2 (x, 2): more fields than columns; quote"),
    ("image,prompt,name\nx.nii.gz,\"ras-box:1,2,3\",liver\n", "ras-box takes 6 numbers, got 3"),
    ("image,prompt,name\nx.nii.gz,\"box:1,2,3,4,5,6\",liver\n", "expected auto, or items separated by ';'"),
    ("image,prompt,name\na/x.nii.gz,auto,liver\nb/x.nii.gz,auto,kidney\n", "lines 2 and 3 both write x.seg.nrrd"),
    ("image,prompt,name\nx.nii.gz,auto,\"liv\ner\"\n", "name: 'liv\\ner' contains the control character"),
])
def test_table_mistakes_stop_before_any_work_and_name_every_bad_row(tmp_path, capsys, content, message):
    """A table where no row can run: every bad row one line, then the error; nothing written."""
    table = tmp_path / "cohort.csv"
    table.write_text(content)
    assert segmote(["batch", str(table), "--out", str(tmp_path / "out"), *MODEL]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("segmote batch: error:"), error
    assert all(line.startswith("line ") for line in error[:-1]) and message in "\n".join(error), error
    if len(error) > 1:  # rows, listed; a table-level mistake (a missing column) is the one line
        assert "cannot run (listed above)" in error[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, message", [
    (["--num-cpus", "2"], "--address/--num-cpus: only with --engine ray"),
    (["--engine", "ray", "--address", "auto", "--num-cpus", "2"], "a joined cluster (--address) brings its own CPUs"),
])
def test_ray_options_are_checked_before_the_table_is_read(tmp_path, capsys, options, message):
    """The same checks as curate's (commands/ray_options.py); the table does not even exist."""
    assert segmote(["batch", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out"), *options, *MODEL]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error


def test_the_local_engine_runs_without_ray(cohort, tmp_path, monkeypatch, capsys):
    import sys

    _, good, bad = cohort
    table = tmp_path / "bad.csv"
    with table.open("w", newline="") as handle:
        csv.writer(handle).writerows([("image", "prompt", "name"), good[1], *bad])  # the CT box: two slices
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert segmote(["batch", str(table), "--out", str(tmp_path / "out"), "--quiet", *MODEL]) == 1
    assert set(_failures(tmp_path / "out")) == {"missing", "outside"}
    assert (tmp_path / "out" / f"{_study(good[1][0])}.seg.nrrd").is_file()
    capsys.readouterr()
    assert segmote(["batch", str(table), "--out", str(tmp_path / "out"), "--engine", "ray", *MODEL]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "pip install segmote[ray]" in error[0], error
