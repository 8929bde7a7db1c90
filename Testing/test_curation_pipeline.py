"""The curation pipeline and `segmote curate` on real data: outputs, resumability, bad input."""

from __future__ import annotations

import csv
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path, signal_once_journalled
from PIL import Image

from SegMoTELib.cli import main as segmote
from SegMoTELib.curation import run_curation
from SegMoTELib.curation.gates import GATE_NAMES
from SegMoTELib.curation.metrics import METRIC_NAMES
from SegMoTELib.errors import InputError

DATASETS = ("acdc_cardiac_mri", "aisd_stroke_ncct", "bhsd_brain_hemorrhage_ct", "drive_fundus_vessels",
            "ham10000_skin_lesion", "jsrt_scr_chest_xray")


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """A train_pool-style root linking six real datasets (grey, RGB, multi-label; 414 pairs)."""
    real = shared_path("train_pool")
    root = tmp_path_factory.mktemp("pool")
    for name in DATASETS:
        (root / name).symlink_to(real / name, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def uninterrupted(pool, tmp_path_factory) -> tuple[Path, dict, dict]:
    before = _snapshot(shared_path("train_pool"))
    out = tmp_path_factory.mktemp("uninterrupted")
    summary = run_curation([pool], 150, out, class_by=("dataset", "label"), workers=2, seed=7, progress=False)
    return out, summary, before


def test_run_writes_manifest_rejects_training_set_and_report(uninterrupted):
    out, summary, _ = uninterrupted
    manifest = _rows(out / "manifest.csv")
    assert len(manifest) == summary["records"] > 414  # multi-label pairs give one record per label
    for column in METRIC_NAMES + GATE_NAMES + ("source", "case", "slice_index", "label", "score", "selected"):
        assert column in manifest[0]
    selected = [row for row in manifest if row["selected"] == "True"]
    assert len(selected) == 150 == summary["selected"]
    assert all(row["passed"] == "True" for row in selected)
    rejects = _rows(out / "rejects.csv")
    failing = {(row["record_id"], gate) for row in manifest for gate in GATE_NAMES if row[gate] == "False"}
    assert {(row["record_id"], row["gate"]) for row in rejects} == failing
    assert summary["gate_rejections"] == {gate: sum(1 for _, g in failing if g == gate) for gate in GATE_NAMES}
    for row in rejects[:50]:
        value, low, high = float(row["value"]), row["min"], row["max"]
        assert (low and value < float(low)) or (high and value > float(high))
    assert sorted(p.name for p in (out / "report").glob("*.png")) == [
        "classes.png", "histograms_by_class.png", "histograms_by_class_selected.png", "score_by_modality.png"]
    assert (out / "report" / "summary.json").is_file() and (out / "report" / "report.md").is_file()


def test_training_set_is_in_the_train_pool_layout(uninterrupted):
    out, _, _ = uninterrupted
    exported = _rows(out / "training_set" / "manifest.csv")
    assert len(exported) == 150
    assert set(exported[0]) == {"file", "source_case", "slice_index", "modality", "target_names", "dataset",
                                "label", "score"}
    manifest = {row["record_id"]: row for row in _rows(out / "manifest.csv") if row["selected"] == "True"}
    modes = set()
    for row in exported:
        image = Image.open(out / "training_set" / "images" / row["file"])
        mask = np.asarray(Image.open(out / "training_set" / "masks" / row["file"]))
        modes.add(image.mode)
        assert max(image.size) == 256 and image.size == mask.shape[::-1]
        assert set(np.unique(mask)) <= {0, 1} and mask.any()
    assert modes == {"L", "RGB"}  # RGB sources stay RGB
    assert {(r["dataset"], r["source_case"], r["target_names"]) for r in exported} == \
        {(r["dataset"], r["case"], r["label_name"]) for r in manifest.values()}


def test_exported_mask_is_the_selected_label_of_the_source(uninterrupted):
    out, _, _ = uninterrupted
    row = next(r for r in _rows(out / "manifest.csv") if r["selected"] == "True" and r["dataset"] == "jsrt_scr_chest_xray")
    exported = next(r for r in _rows(out / "training_set" / "manifest.csv")
                    if r["source_case"] == row["case"] and r["target_names"] == row["label_name"])
    source = np.asarray(Image.open(row["mask_file"])) == int(row["mask_value"])
    assert np.array_equal(np.asarray(Image.open(out / "training_set" / "masks" / exported["file"])) == 1, source)


def test_sources_are_never_modified(uninterrupted):
    _, _, before = uninterrupted
    assert _snapshot(shared_path("train_pool")) == before


def _interrupted_run(pool: Path, out: Path, how: signal.Signals) -> int:
    """Start `segmote curate` on one worker, wait until it journalled a unit, then signal it."""
    command = [sys.executable, "-m", "SegMoTELib.cli", "curate", str(pool), "--target", "150", "--out", str(out),
               "--class-by", "dataset,label", "--workers", "1", "--seed", "7", "--quiet"]
    return signal_once_journalled(command, out / "work" / "journal.jsonl", how)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["crash", "ctrl-c"])
def test_an_interrupted_run_resumes_to_the_same_manifest(pool, uninterrupted, tmp_path, how):
    returncode = _interrupted_run(pool, tmp_path, how)
    assert returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130)
    assert not (tmp_path / "manifest.csv").exists()
    journalled = (tmp_path / "work" / "journal.jsonl").read_bytes().count(b"\n")
    summary = run_curation([pool], 150, tmp_path, class_by=("dataset", "label"), workers=2, seed=7, progress=False)
    assert 1 <= summary["timing"]["units_resumed"] == journalled < summary["timing"]["units"]
    reference = uninterrupted[0]
    assert (tmp_path / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()
    assert (tmp_path / "training_set" / "manifest.csv").read_bytes() == \
        (reference / "training_set" / "manifest.csv").read_bytes()


def _bad_dataset(root: Path) -> Path:
    """A 2D set with three good pairs and four bad ones (copied into a temporary folder)."""
    real = shared_path("train_pool", "aisd_stroke_ncct")
    folder = root / "bad_set"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    names = sorted(p.name for p in (real / "images").glob("*.png"))[:7]
    for name in names:
        shutil.copy(real / "images" / name, folder / "images" / name)
        shutil.copy(real / "masks" / name, folder / "masks" / name)
    mask = Image.open(folder / "masks" / names[3])
    mask.resize((mask.width // 2, mask.height // 2)).save(folder / "masks" / names[3])     # shape mismatch
    labels = np.asarray(Image.open(folder / "masks" / names[4])).copy()
    labels[:5, :5] = 2
    Image.fromarray(labels).save(folder / "masks" / names[4])                               # non-binary
    (folder / "images" / names[5]).write_bytes(b"not a png at all")                        # unreadable
    (folder / "masks" / names[6]).unlink()                                                   # missing mask
    with (folder / "manifest.csv").open("w") as handle:
        handle.write("file,source_case,slice_index,modality,target_names\n")
        handle.writelines(f"{name},{name[:-4]},,CT,infarct\n" for name in names)
    return folder


def test_bad_files_are_logged_by_name_and_the_run_continues(tmp_path, capsys):
    folder = _bad_dataset(tmp_path)
    names = sorted(p.name for p in (folder / "images").iterdir())
    code = segmote(["curate", str(folder), "--target", "2", "--out", str(tmp_path / "out"), "--workers", "1",
                    "--quiet", "--no-plots"])
    assert code == 0
    errors = {Path(row["file"]).name: row["error"] for row in _rows(tmp_path / "out" / "errors.csv")}
    assert set(errors) == set(names[3:])
    assert "differs from the image" in errors[names[3]] and names[3] in errors[names[3]]
    assert "expected a binary mask" in errors[names[4]] and f"masks/{names[4]}" in errors[names[4]]
    assert "cannot read" in errors[names[5]] and f"images/{names[5]}" in errors[names[5]]
    assert "cannot read" in errors[names[6]] and f"masks/{names[6]}" in errors[names[6]]
    manifest = _rows(tmp_path / "out" / "manifest.csv")
    assert sorted(Path(row["image_file"]).name for row in manifest) == names[:3]
    assert "files with errors 4" in capsys.readouterr().out


def test_labels_json_values_must_name_every_mask_value(tmp_path):
    folder = _bad_dataset(tmp_path)
    (folder / "labels.json").write_text('{"1": "infarct"}')
    run_curation([folder], 1, tmp_path / "out", workers=1, progress=False, export=False, plots=False)
    errors = _rows(tmp_path / "out" / "errors.csv")
    assert any("value(s) 2 are not named in labels.json" in row["error"] for row in errors)


def test_user_mistakes_exit_with_a_clear_message(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["curate", str(empty), "--target", "5", "--out", str(tmp_path / "o1")], f"source {empty}: nothing to curate"),
        (["curate", str(tmp_path / "missing"), "--target", "5", "--out", str(tmp_path / "o2")], "no such file or folder"),
        (["curate", str(empty), "--target", "0", "--out", str(tmp_path / "o3")], "--target"),
        (["curate", str(empty), "--target", "-4", "--out", str(tmp_path / "o4")], "--target"),
        (["curate", str(empty), "--target", "5", "--out", str(tmp_path / "o5"), "--class-by", "organ"], "class_by"),
    ]
    for argv, message in cases:
        assert segmote(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_output_inside_a_source_is_refused(tmp_path):
    folder = _bad_dataset(tmp_path)
    with pytest.raises(InputError, match="inside the source"):
        run_curation([folder], 5, folder / "curated", progress=False)


def test_3d_studies_from_a_table_and_npz_are_sliced_mapped_and_exported(tmp_path):
    volumes = shared_path("volumes")
    table = tmp_path / "studies.csv"
    reference = volumes / "totalseg_tests" / "tests" / "reference_files"
    table.write_text("image,label,modality,case\n"
                     f"{reference / 'example_ct_sm.nii.gz'},{reference / 'example_seg.nii.gz'},CT,ct_small\n")
    npz_folder = volumes / "medsam2_deeplesion_npz"
    summary = run_curation([table, npz_folder], 60, tmp_path / "out", class_by=("dataset",), workers=2,
                           progress=False, axis=0, config=None)
    manifest = _rows(tmp_path / "out" / "manifest.csv")
    assert {row["modality"] for row in manifest} == {"CT"}
    assert {row["axis"] for row in manifest} == {"0"}
    assert {row["dataset"] for row in manifest} == {"studies", "RECIST_train_npz"}
    assert summary["selected"] == min(60, summary["passed"])
    for row in _rows(tmp_path / "out" / "training_set" / "manifest.csv"):
        image = Image.open(tmp_path / "out" / "training_set" / "images" / row["file"])
        assert image.mode == "L" and max(image.size) == 256  # 512² npz slices and 101×122 CT slices resized


def test_write_training_set_resizes_to_256_and_keeps_rgb(tmp_path):
    from SegMoTELib.curation import write_training_set

    folder = shared_path("dev_eval", "ham10000")
    image_path = sorted(p for p in folder.rglob("*.jpg"))[0]
    mask_path = next(p for p in folder.rglob("*.png") if image_path.stem in p.stem)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    record = {"record_id": "ham/ISIC 1#label1", "dataset": "ham", "case": "ISIC1", "slice_index": None,
              "modality": "dermoscopy", "label_name": "lesion", "label": 1, "score": 0.8}
    summary = write_training_set(tmp_path / "set", [(record, image, mask)])
    assert summary["pairs"] == 1
    row = _rows(tmp_path / "set" / "manifest.csv")[0]
    assert row["file"] == "ham__ISIC_1__label1.png" and row["target_names"] == "lesion" and row["slice_index"] == ""
    written = Image.open(tmp_path / "set" / "images" / row["file"])
    written_mask = np.asarray(Image.open(tmp_path / "set" / "masks" / row["file"]))
    assert written.mode == "RGB" and max(written.size) == 256 and written.size == written_mask.shape[::-1]
    assert written.size[0] / written.size[1] == pytest.approx(image.shape[1] / image.shape[0], rel=0.01)
    assert set(np.unique(written_mask)) == {0, 1}
    assert abs(written_mask.mean() - mask.mean()) < 0.01
    with pytest.raises(InputError, match="mask shape"):
        write_training_set(tmp_path / "bad", [(record, image, mask[:-1])])
