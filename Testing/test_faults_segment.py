"""Issue 15, `segmote segment`: the fault probe's cases on real files, each refused with exit status 2,
one line naming the problem, no pre-existing file changed, and (where the check can be made
without the model) before the model loads.

Items covered: 1 (overlay failure keeps the previous mask), 3 (-o equal to the input), 4 (truncated
inputs), 5 (names with control characters), 6 (--ras-negative on another slice), 8 (pixdim 0/NaN),
9 (extreme aspect ratios), 13 (--adapter FOLDER, corrupt and malicious adapters), 14 (a tiny file
declaring a huge volume), 15 (checks before the model loads).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from conftest import shared_path
from faults_support import (
    ModelWouldLoad,
    assert_unchanged,
    copy_of,
    nifti_with_pixdim,
    no_model,  # noqa: F401 - a fixture, used through usefixtures
    refused,
    snapshot,
    truncated_copy,
)
from PIL import Image

from SegMoTELib.cli import main as segmote

LIVER_PNG = ("dev_eval", "medscribble", "CHAOS", "19_axis0_midslice", "image.png")
DERMOSCOPY_JPG = ("dev_eval", "ham10000", "images", "ISIC_0027533.jpg")
CT_NIFTI = ("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")
MRI_NRRD = ("volumes", "pyradiomics_testcases", "data", "breast1_image.nrrd")
MODEL = ["--device", "cpu", "--adapter", "none"]
BOX = ["--box", "60", "60", "160", "160"]


def _ras_on_slices(volume_path, first_k: int, second_k: int) -> tuple[list[str], list[str]]:
    """RAS of two voxels on the given axial slices of a volume (as --ras-point arguments)."""
    from SegMoTELib.geometry import slice_axis_for
    from SegMoTELib.io import read_volume

    volume = read_volume(volume_path)
    axis = slice_axis_for(volume, "axial")
    first, second = [50, 50, 15], [55, 50, 15]
    first[axis], second[axis] = first_k, second_k
    points = volume.ijk_to_ras_points([first, second])
    return [f"{v:.3f}" for v in points[0]], [f"{v:.3f}" for v in points[1]]


# --- 3: the output is the input ---------------------------------------------------------------
@pytest.mark.parametrize("parts, prompt", [(LIVER_PNG, BOX), (CT_NIFTI, ["--ras-point", "-28", "161", "139"])],
                         ids=["png", "nifti"])
@pytest.mark.parametrize("how", ["same-name", "symlink", "hardlink"])
@pytest.mark.usefixtures("no_model")
def test_output_equal_to_the_input_is_refused(tmp_path, capsys, parts, prompt, how):
    source = copy_of(shared_path(*parts), tmp_path)
    output = source
    if how == "symlink":
        output = tmp_path / f"link_{source.name}"
        output.symlink_to(source)
    elif how == "hardlink":
        output = tmp_path / f"hard_{source.name}"
        os.link(source, output)
    before = snapshot(tmp_path)
    refused(["segment", source, *prompt, "-o", output, *MODEL], capsys, "--output", "is the input file",
            str(source))
    assert_unchanged(before, tmp_path)


@pytest.mark.usefixtures("no_model")
def test_overlay_that_would_replace_the_input_is_refused(tmp_path, capsys):
    # -o x.png writes x_overlay.png beside it: that must not be the input either
    source = copy_of(shared_path(*LIVER_PNG), tmp_path, "scan_overlay.png")
    before = snapshot(tmp_path)
    refused(["segment", source, *BOX, "-o", tmp_path / "scan.png", *MODEL], capsys, "overlay", "is the input file")
    assert_unchanged(before, tmp_path)


# --- 1 and 15: the overlay is checked first and published with the mask -----------------------------
@pytest.mark.usefixtures("no_model")
def test_overlay_path_that_is_a_folder_is_refused_before_the_model_and_keeps_the_mask(tmp_path, capsys):
    image = shared_path(*LIVER_PNG)
    previous = tmp_path / "liver.png"
    previous.write_bytes(shared_path(*LIVER_PNG).read_bytes())  # a good earlier result
    (tmp_path / "liver_overlay.png").mkdir()
    before = snapshot(tmp_path)
    refused(["segment", image, *BOX, "-o", previous, *MODEL], capsys, "liver_overlay.png is a folder")
    assert_unchanged(before, tmp_path)


def _reuse(monkeypatch, predictor) -> None:
    """The command gets the session's LiteMedSAM predictor instead of loading its own."""
    import SegMoTELib.commands.segment as segment_command

    monkeypatch.setattr(segment_command, "predictor_from_args", lambda args, cache_size=8: predictor)


def test_overlay_failing_after_the_model_ran_keeps_the_previous_mask_and_overlay(tmp_path, capsys, monkeypatch,
                                                                                 base_predictor):
    """The overlay's target turns into a folder while the model runs (another program): publishing
    fails half way and the mask already replaced gets its previous version back."""
    import SegMoTELib.commands.segment as segment_command

    _reuse(monkeypatch, base_predictor)
    image = shared_path(*LIVER_PNG)
    mask, overlay = tmp_path / "liver.png", tmp_path / "liver_overlay.png"
    mask.write_bytes(b"previous good mask")
    real_overlay_image = segment_command.overlay_image

    def overlay_then_block(grey, pixels, **prompts):
        overlay.mkdir()
        (overlay / "keep.txt").write_text("another program's file")
        return real_overlay_image(grey, pixels, **prompts)

    monkeypatch.setattr(segment_command, "overlay_image", overlay_then_block)
    refused(["segment", image, *BOX, "-o", mask, *MODEL], capsys, "--output", "liver_overlay.png")
    assert mask.read_bytes() == b"previous good mask"
    assert (overlay / "keep.txt").read_text() == "another program's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liver.png", "liver_overlay.png"]  # no leftovers


# --- 4 and 14: truncated and impossible files -------------------------------------------------------
@pytest.mark.parametrize("parts, prompt", [
    (LIVER_PNG, BOX),
    (DERMOSCOPY_JPG, ["--box", "100", "100", "400", "300"]),
    (CT_NIFTI, ["--ras-point", "-28", "161", "139"]),
    (MRI_NRRD, ["--ras-point", "0", "0", "0"]),
], ids=["png", "jpeg", "nifti-gz", "nrrd"])
@pytest.mark.parametrize("fraction", [0.5, 0.95])
@pytest.mark.usefixtures("no_model")
def test_truncated_inputs_are_refused_with_the_file_name(tmp_path, capsys, parts, prompt, fraction):
    source = shared_path(*parts)
    damaged = truncated_copy(source, tmp_path / f"cut_{source.name}", fraction)
    before = snapshot(tmp_path)
    line = refused(["segment", damaged, *prompt, "-o", tmp_path / "out.seg.nrrd", *MODEL], capsys, str(damaged))
    assert "truncated" in line or "corrupt" in line
    assert_unchanged(before, tmp_path)
    assert not (tmp_path / "out.seg.nrrd").exists()


@pytest.mark.usefixtures("no_model")
def test_intact_copies_of_the_same_files_pass_the_checks(tmp_path):
    # the control of the test above: the files are refused because they are cut, not for their format
    for parts, prompt in ((LIVER_PNG, BOX), (DERMOSCOPY_JPG, ["--box", "100", "100", "400", "300"]),
                          (CT_NIFTI, ["--ras-point", "-28", "161", "139"])):
        with pytest.raises(ModelWouldLoad):
            segmote(["segment", str(shared_path(*parts)), *prompt, "-o", str(tmp_path / "out.seg.nrrd"), *MODEL])


@pytest.mark.usefixtures("no_model")
def test_a_tiny_file_declaring_a_huge_volume_is_refused_from_its_header(tmp_path, capsys):
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 2000 2000 2000\nencoding: {}\n\n"
    for encoding in ("raw", "gzip"):
        path = tmp_path / f"huge_{encoding}.nrrd"
        path.write_bytes(header.format(encoding).encode() + os.urandom(150))
        assert path.stat().st_size < 260
        refused(["segment", path, "--ras-point", "0", "0", "0", "-o", tmp_path / "o.seg.nrrd", *MODEL], capsys,
                str(path), "2000 x 2000 x 2000")


# --- 8: voxel sizes of 0 or NaN ------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, float("nan"), float("inf")], ids=["zero", "nan", "inf"])
@pytest.mark.parametrize("axis", [1, 3])
@pytest.mark.usefixtures("no_model")
def test_nifti_pixdim_zero_or_nan_is_refused(tmp_path, capsys, value, axis):
    damaged = nifti_with_pixdim(shared_path(*CT_NIFTI), tmp_path / "pixdim.nii.gz", axis, value)
    before = snapshot(tmp_path)
    refused(["segment", damaged, "--ras-point", "-28", "161", "139", "-o", tmp_path / "o.seg.nrrd", *MODEL], capsys,
            str(damaged), f"pixdim[{axis}]")
    assert_unchanged(before, tmp_path)


# --- 5: segment names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["liver\nSegment0_Name:=evil", "tab\there", "nul\x00", "line\u2028sep", "", "   ",
                                  "Läsion"], ids=["newline", "tab", "nul", "u2028", "empty", "blank", "non-ascii"])
@pytest.mark.usefixtures("no_model")
def test_segment_names_with_control_characters_or_empty_are_refused_before_the_model(tmp_path, capsys,
                                                                                     name):
    refused(["segment", shared_path(*CT_NIFTI), "--ras-point", "-28", "161", "139", "--name", name,
             "-o", tmp_path / "o.seg.nrrd", *MODEL], capsys, "--name")
    assert list(tmp_path.iterdir()) == []


def test_the_seg_nrrd_writer_refuses_a_name_that_would_inject_header_lines(tmp_path):
    from SegMoTELib.errors import InputError
    from SegMoTELib.io import SegmentInfo, write_segmentation
    from SegMoTELib.volume import Volume

    labels = Volume(np.ones((2, 4, 4), dtype=np.uint8))
    with pytest.raises(InputError, match="control character"):
        write_segmentation(tmp_path / "s.seg.nrrd", labels, [SegmentInfo("liver\nSegment0_Color:=0 0 0", 1)])
    assert list(tmp_path.iterdir()) == []
    # a name the header cannot hold (pynrrd writes ASCII only) is a clear error, not a UnicodeEncodeError
    with pytest.raises(InputError, match="non-ASCII"):
        write_segmentation(tmp_path / "s.seg.nrrd", labels, [SegmentInfo("Läsion", 1)])
    assert list(tmp_path.iterdir()) == []
    # printable names with spaces and punctuation are written and read back as given
    slicerio = pytest.importorskip("slicerio")
    written = write_segmentation(tmp_path / "ok.seg.nrrd", labels, [SegmentInfo("Left kidney (v2) | a:b=c", 1)])
    assert [s["name"] for s in slicerio.read_segmentation(str(written))["segments"]] == ["Left kidney (v2) | a:b=c"]


def test_the_name_validator_is_one_function_for_every_caller():
    from SegMoTELib.errors import InputError
    from SegMoTELib.names import MAX_NAME_LENGTH, validate_segment_name

    assert validate_segment_name("right ventricle") == "right ventricle"
    for bad in ("a\rb", "a\x1bb", "a\x7fb", "a\u2029b", "x" * (MAX_NAME_LENGTH + 1), 3):
        with pytest.raises(InputError, match="^name:"):
            validate_segment_name(bad, "name")


# --- 6: clicks on another slice -----------------------------------------------------------------
@pytest.mark.usefixtures("no_model")
def test_a_negative_click_on_another_slice_is_refused(tmp_path, capsys):
    volume = shared_path(*CT_NIFTI)
    positive, negative = _ras_on_slices(volume, 15, 18)
    refused(["segment", volume, "--ras-point", *positive, "--ras-negative", *negative, "-o", tmp_path / "o.seg.nrrd",
             *MODEL], capsys, "--ras-negative", "slice 18", "slice 15", "same slice")
    positive, other_positive = _ras_on_slices(volume, 15, 12)
    refused(["segment", volume, "--ras-point", *positive, "--ras-point", *other_positive, "-o",
             tmp_path / "o.seg.nrrd", *MODEL], capsys, "--ras-point", "slice 12")
    # on the same slice, the clicks pass every check (the model would load next)
    positive, negative = _ras_on_slices(volume, 15, 15)
    with pytest.raises(ModelWouldLoad):
        segmote(["segment", str(volume), "--ras-point", *positive, "--ras-negative", *negative,
                 "-o", str(tmp_path / "o.seg.nrrd"), *MODEL])


# --- 15: everything that can be checked without the model is checked first ---------------------------
@pytest.mark.usefixtures("no_model")
def test_output_checks_come_before_the_model(tmp_path, capsys):
    image = shared_path(*LIVER_PNG)
    refused(["segment", image, *BOX, "-o", "/proc/mask.png", *MODEL], capsys, "--output", "/proc")
    plain_file = tmp_path / "file"
    plain_file.write_text("x")
    refused(["segment", image, *BOX, "-o", plain_file / "mask.png", *MODEL], capsys, "--output", "not a folder")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("pixels, message", [
    (np.full((64, 64), 77, dtype=np.uint8), "constant"),
    (np.full((1, 1), 10, dtype=np.uint8), "too small"),
    (np.arange(40, dtype=np.uint8).reshape(1, 40), "too small"),
], ids=["constant", "1x1", "one-row"])
@pytest.mark.usefixtures("no_model")
def test_images_that_cannot_be_segmented_are_refused_before_the_model(tmp_path, capsys, pixels, message):
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    before = snapshot(tmp_path)
    refused(["segment", path, "--point", "0", "0", "-o", tmp_path / "m.png", *MODEL], capsys, str(path), message)
    assert_unchanged(before, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]


@pytest.mark.usefixtures("no_model")
def test_a_constant_volume_is_refused_before_the_model(tmp_path, capsys):
    from SegMoTELib.io import read_volume, write_volume

    volume = read_volume(shared_path(*CT_NIFTI))
    flat = write_volume(volume.with_array(np.full_like(volume.array, -1000)), tmp_path / "air.nii.gz")
    refused(["segment", flat, "--ras-point", "-28", "161", "139", "-o", tmp_path / "o.seg.nrrd", *MODEL], capsys,
            "constant")


@pytest.mark.usefixtures("no_model")
def test_adapter_and_checkpoint_folders_are_named_as_folders_before_the_model(tmp_path, capsys):
    image = shared_path(*LIVER_PNG)
    refused(["segment", image, *BOX, "-o", tmp_path / "m.png", "--device", "cpu", "--adapter", tmp_path], capsys,
            "--adapter", "is a folder")
    refused(["segment", image, *BOX, "-o", tmp_path / "m.png", *MODEL, "--checkpoint", tmp_path], capsys,
            "--checkpoint", "is a folder")
    refused(["segment", image, *BOX, "-o", tmp_path / "m.png", "--device", "cpu", "--adapter",
             tmp_path / "missing.pt"], capsys, "--adapter", "does not exist")
    refused(["segment", image, *BOX, "-o", tmp_path / "m.png", "--adapter", "none", "--device", "tpu"], capsys,
            "--device", "tpu")


# --- 13: corrupt and malicious adapter files --------------------------------------------------------
@pytest.mark.usefixtures("no_model")
def test_corrupt_and_malicious_adapters_give_one_line_that_never_advises_unsafe_loading(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    image = shared_path(*LIVER_PNG)
    marker = tmp_path / "code-was-run"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    malicious = tmp_path / "malicious.pt"
    torch.save({"format": "segmote-adapter", "adapter": Payload()}, malicious)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(3000))
    cut = truncated_copy(malicious, tmp_path / "cut.pt", 0.6)
    for path, reason in ((malicious, "Python objects"), (corrupt, "corrupt"), (cut, "corrupt")):
        line = refused(["segment", image, *BOX, "-o", tmp_path / "m.png", "--device", "cpu", "--adapter", path],
                       capsys, "adapter:", str(path), "not a valid SegMoTE adapter file",
                       reason, "expected an adapter file")
        assert "weights_only" not in line and "unpickl" not in line.lower()
    assert not marker.exists()
    assert not (tmp_path / "m.png").exists()


@pytest.mark.usefixtures("no_model")
def test_an_adapter_of_another_backbone_is_refused_before_the_model(tmp_path, capsys):
    from conftest import REPO

    torch = pytest.importorskip("torch")
    payload = torch.load(REPO / "Resources" / "adapters" / "segmote_litemedsam_v2.pt", weights_only=True)
    foreign = tmp_path / "for_sam.pt"
    torch.save({**payload, "backbone": "sam_vit_b"}, foreign)
    refused(["segment", shared_path(*LIVER_PNG), *BOX, "-o", tmp_path / "m.png", "--device", "cpu", "--adapter",
             foreign], capsys, str(foreign), "trained for backbone 'sam_vit_b', not 'litemedsam'")


# --- 9: extreme aspect ratios ------------------------------------------------------------------------
def test_a_4x3000_strip_is_segmented_at_its_own_size(tmp_path, monkeypatch, base_predictor):
    _reuse(monkeypatch, base_predictor)
    rows = np.linspace(0, 255, 3000)[None, :] * np.ones((4, 1))
    strip = tmp_path / "strip.png"
    Image.fromarray(rows.astype(np.uint8)).save(strip)
    out = tmp_path / "mask.png"
    assert segmote(["segment", str(strip), "--box", "1000", "0", "2000", "3", "-o", str(out), *MODEL]) == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (4, 3000) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(tmp_path / "mask_overlay.png")).shape == (4, 3000, 3)


def test_set_image_of_a_2x5000_array_pads_to_one_model_pixel(base_predictor):
    from SegMoTELib.preprocessing import ImageTransform

    transform = ImageTransform.for_image(2, 5000, 256)
    assert transform.resized_hw == (1, 256)  # would be (0, 256): an empty tensor, then IndexError
    assert ImageTransform.for_image(5000, 2, 1024).resized_hw == (1024, 1)
    strip = (np.arange(2 * 5000).reshape(2, 5000) % 251).astype(np.uint8)
    base_predictor.set_image(strip)
    prediction = base_predictor.predict(box=np.array([100.0, 0.0, 900.0, 1.0]))
    assert prediction.masks.shape == (1, 2, 5000)
    prediction = base_predictor.predict(points=np.array([[2500.0, 1.0]]), labels=np.array([1]))
    assert prediction.masks.shape == (1, 2, 5000)
