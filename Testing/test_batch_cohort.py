"""Issue 23, items 1, 5 and 8 for `segmote batch`: prompts in voxel indices (`ijk-point`, `ijk-box`,
`ijk-negative`), several items in one row, several rows of one study written as the segments of one
`.seg.nrrd` (a failed row loses none of the others), `--check` listing every bad row in seconds
without the model, and a line per structure when stdout is not a terminal.

Real CT from ../shared/data (TotalSegmentator's test case, 3 mm) with its label map.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shared_path

from SegMoTELib.cli import main as segmote

MODEL = ["--device", "cpu", "--adapter", "none"]
ADAPTER = ["--device", "cpu"]  # the shipped adapter: LiteMedSAM's own decoder was trained with boxes only
FOLDER = ("volumes", "totalseg_tests", "tests", "reference_files")
SPLEEN, KIDNEY_RIGHT, LUNG_LOWER_RIGHT = 1, 2, 14


@pytest.fixture(scope="module")
def ct():
    from SegMoTELib.io import read_labelmap, read_volume

    image = shared_path(*FOLDER, "example_ct_sm.nii.gz")
    return image, read_volume(image), read_labelmap(shared_path(*FOLDER, "example_seg.nii.gz")).array


def _ijk_box(labels, value, slices) -> str:
    """i0,j0,k0,i1,j1,k1 of a label's voxels within a k range."""
    kept = np.zeros_like(labels, dtype=bool)
    kept[slices[0]:slices[1] + 1] = labels[slices[0]:slices[1] + 1] == value
    present = np.argwhere(kept)
    (k0, j0, i0), (k1, j1, i1) = present.min(axis=0), present.max(axis=0)
    return f"ijk-box:{i0},{j0},{k0},{i1},{j1},{k1}"


def _deepest(labels, value, k) -> tuple[int, int, int]:
    """The voxel of a label's slice farthest from its border (a click a user would make)."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(labels[k] == value)
    j, i = np.unravel_index(np.argmax(distance), distance.shape)
    return int(i), int(j), k


def _table(path, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "name"])
        writer.writerows(rows)


def _dice(a, b) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture
def no_model(monkeypatch):
    """Building a predictor fails the test: --check must never load the model."""
    from SegMoTELib.model_spec import ModelSpec

    def refuse(self):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ModelSpec, "build_predictor", refuse)


def test_check_lists_every_bad_row_without_the_model(ct, tmp_path, capsys, no_model):
    image, volume, labels = ct
    i, j, k = _deepest(labels, LUNG_LOWER_RIGHT, 25)
    good = [
        (image, _ijk_box(labels, SPLEEN, (10, 14)), "spleen"),
        (image, f"ijk-point:{i},{j},{k}; ijk-negative:{i + 5},{j},{k}", "lung"),
        (image, f"ras-box:{','.join(f'{v:g}' for v in volume.ijk_to_ras_points([[40, 40, 12], [60, 60, 12]]).ravel())}"
                f"; ijk-point:50,50,12", "flat box with a click"),
    ]
    bad = {
        5: (tmp_path / "missing.nii.gz", "ijk-point:1,1,1", "gone"),                       # no such file
        6: (image, "ijk-point:200,10,10", "beyond i"),                                     # i 0..121
        7: (image, "ijk-box:30,30,10,30,60,12", "flat"),                                   # no area on its slices
        8: (image, "ijk-point:50,50,10; ijk-point:52,50,11", "two slices"),                # clicks on two slices
        9: (image, "ijk-box:30,30,10,60,60,14; ijk-point:40,40,12", "box3d with click"),   # 3D box takes no clicks
        10: (image, "ijk-point:1.5,2,3", "half voxel"),                                    # whole indices only
        11: (image, "ijk-box:1,2,3,4,5,6; ras-box:1,2,3,4,5,6", "two boxes"),
        12: (image, "auto", "spleen"),                                                     # name used on line 2
        13: (image, "ijk-negative:5,5,5", "no positive"),
    }
    table = tmp_path / "cohort.csv"
    _table(table, good + list(bad.values()))
    out = tmp_path / "out"
    assert segmote(["batch", str(table), "--check", "-o", str(out), *MODEL]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    listed = [int(line.split()[1]) for line in error[:-1]]
    assert listed == sorted(bad), error
    assert error[-1].startswith("segmote batch: error: 9 of 12 rows") and "run without --check to segment the other 3" \
        in error[-1]
    messages = dict(zip(listed, error[:-1]))
    assert "no such file" in messages[5] and "outside the volume" in messages[6] and "i 0..121" in messages[6]
    assert "has no area" in messages[7] and "lies on axial slice 11" in messages[8]
    assert "a 3D box takes no clicks" in messages[9] and "whole voxel indices" in messages[10]
    assert "2 boxes" in messages[11] and "line 2 already writes the segment 'spleen'" in messages[12]
    assert "negative clicks need a positive click or a box" in messages[13]
    assert not out.exists()  # a check writes nothing
    _table(table, good)
    assert segmote(["batch", str(table), "--check", "-o", str(out), *MODEL]) == 0
    assert "all 3 rows can run: 1 studies, 3 structures" in capsys.readouterr().out


def test_rows_of_one_study_are_segments_of_one_file_and_a_failed_row_loses_none(ct, tmp_path, capsys, monkeypatch):
    import SegMoTELib.cohort.study as study
    from SegMoTELib.errors import DataError
    from SegMoTELib.io.seg_nrrd import read_segment_masks

    segment = study.labelmap_of

    def fails_on_the_auto_row(segmenter, volume, prompt):  # a fault while the model runs (memory, a bug)
        if prompt.auto:
            raise DataError("the model ran out of memory on this structure")
        return segment(segmenter, volume, prompt)

    monkeypatch.setattr(study, "labelmap_of", fails_on_the_auto_row)

    image, volume, labels = ct
    i, j, k = _deepest(labels, LUNG_LOWER_RIGHT, 25)
    ni, nj, nk = volume.shape_ijk
    rows = [
        (image, _ijk_box(labels, SPLEEN, (10, 14)), "spleen"),
        (image, "auto", "fails"),
        (image, f"ijk-point:{i},{j},{k}; ijk-negative:{min(i + 30, ni - 1)},{j},{k}", "lung"),
    ]
    table = tmp_path / "cohort.csv"
    _table(table, rows)
    out = tmp_path / "out"
    assert segmote(["batch", str(table), "-o", str(out), *ADAPTER]) == 1  # captured stdout is not a terminal
    stdout = capsys.readouterr().out.splitlines()
    # item 8: one line per structure while it runs, then the summary
    assert [line.split(":")[0] for line in stdout[:3]] == [
        "[1/3] line 2 (example_ct_sm, spleen)", "[2/3] line 3 (example_ct_sm, fails)", "[3/3] line 4 (example_ct_sm, lung)"]
    assert "written" in stdout[0] and "ran out of memory" in stdout[1]
    assert "2 written, 0 skipped (already written), 1 failed of 3 rows" in stdout[3]
    assert sorted(p.name for p in out.iterdir()) == ["example_ct_sm.seg.nrrd", "failures.csv"]
    geometry, masks = read_segment_masks(out / "example_ct_sm.seg.nrrd")
    assert [info.name for info, _ in masks] == ["spleen", "lung"]
    np.testing.assert_allclose(geometry.ijk_to_ras, volume.ijk_to_ras)
    spleen, lung = (mask for _, mask in masks)
    truth_spleen = np.zeros_like(spleen)
    truth_spleen[10:15] = labels[10:15] == SPLEEN
    assert not spleen[:10].any() and not spleen[15:].any()  # the walk stays inside the box's slices
    assert _dice(spleen, truth_spleen) > 0.7, _dice(spleen, truth_spleen)
    assert _dice(lung, labels == LUNG_LOWER_RIGHT) > 0.5, _dice(lung, labels == LUNG_LOWER_RIGHT)
    assert lung[k, j, i] and not lung[k, j, min(i + 30, ni - 1)]

    # a rerun keeps both segments untouched and retries only the failed row, replaced by a good one
    before = (out / "example_ct_sm.seg.nrrd").read_bytes()
    rows[1] = (image, _ijk_box(labels, KIDNEY_RIGHT, (9, 10)), "kidney")
    _table(table, rows)
    assert segmote(["batch", str(table), "-o", str(out), "--quiet", *ADAPTER]) == 0
    assert "1 written, 2 skipped (already written), 0 failed of 3 rows" in capsys.readouterr().out
    _, after = read_segment_masks(out / "example_ct_sm.seg.nrrd")
    assert [info.name for info, _ in after] == ["spleen", "kidney", "lung"]  # table order
    assert np.array_equal(after[0][1], spleen) and np.array_equal(after[2][1], lung)
    assert after[1][1][9:11].any() and not after[1][1][:9].any() and not after[1][1][11:].any()
    assert (out / "example_ct_sm.seg.nrrd").read_bytes() != before
    assert segmote(["batch", str(table), "-o", str(out), "--quiet", *ADAPTER]) == 0  # nothing left to do
    assert "0 written, 3 skipped" in capsys.readouterr().out


def test_an_ijk_box_follows_the_voxel_axes(ct):
    """On this axis-aligned CT the ijk box is the RAS box of the same voxel centres; both give the
    same box on each of its slices and the same slice range."""
    from SegMoTELib.cohort import parse_prompt
    from SegMoTELib.geometry import SliceRef, ras_box_to_slice_box, slice_extent_of_box

    _, volume, _ = ct
    ijk = parse_prompt("ijk-box:20,30,5,70,80,9").in_volume(volume)
    corners = volume.ijk_to_ras_points([[20, 30, 5], [70, 80, 9]])
    ras = parse_prompt("ras-box:" + ",".join(f"{v:.6f}" for v in corners.ravel())).in_volume(volume)
    assert ijk.box_is_3d and ras.box_is_3d and ijk.box_ras.shape == (8, 3)
    assert slice_extent_of_box(volume, 2, ijk.box_ras) == slice_extent_of_box(volume, 2, ras.box_ras) == (5, 9)
    for index in (5, 7, 9):  # axial slices: along k
        on_slice = ras_box_to_slice_box(volume, SliceRef(2, index), ijk.box_ras).tolist()
        assert on_slice == ras_box_to_slice_box(volume, SliceRef(2, index), ras.box_ras).tolist()
        assert on_slice[2] - on_slice[0] == 50 and on_slice[3] - on_slice[1] == 50  # i 20..70, j 30..80
    point = parse_prompt("ijk-point:12,34,7").in_volume(volume)
    np.testing.assert_allclose(volume.ras_to_ijk_points(point.points_ras), [[12, 34, 7]], atol=1e-9)
