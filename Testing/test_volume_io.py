"""Volume, image, npz and segmentation I/O on the real volumes of ../shared/data, plus bad input.

Round trips must keep voxels, dtype and geometry exactly; Slicer segmentation files are checked
with slicerio itself (the library Slicer's own tooling uses), not with our reader.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path
from PIL import Image

from SegMoTELib.errors import DataError, InputError
from SegMoTELib.io import (
    DEFAULT_COLORS,
    SegmentInfo,
    read_labelmap,
    read_npz_case,
    read_segmentation,
    read_volume,
    write_npz_case,
    write_segmentation,
    write_volume,
)
from SegMoTELib.io.atomic import TEMP_PREFIX
from SegMoTELib.volume import Volume

TOTALSEG = ("volumes", "totalseg_tests", "tests", "reference_files")
REAL_VOLUMES = {
    "ct_nifti": (*TOTALSEG, "example_ct_sm.nii.gz"),
    "mr_nifti": (*TOTALSEG, "example_mr_sm.nii.gz"),
    "mri_nrrd_anisotropic": ("volumes", "pyradiomics_testcases", "data", "brain1_image.nrrd"),
    "breast_nrrd": ("volumes", "pyradiomics_testcases", "data", "breast1_image.nrrd"),
}
NPZ_FOLDER = ("volumes", "medsam2_deeplesion_npz", "data", "RECIST_train_npz")


def assert_same_volume(actual: Volume, expected: Volume, geometry_atol: float = 0.0) -> None:
    assert actual.array.dtype == expected.array.dtype
    np.testing.assert_array_equal(actual.array, expected.array)
    np.testing.assert_allclose(actual.spacing, expected.spacing, rtol=0, atol=geometry_atol)
    np.testing.assert_allclose(actual.origin_lps, expected.origin_lps, rtol=0, atol=geometry_atol)
    np.testing.assert_allclose(actual.direction_lps, expected.direction_lps, rtol=0, atol=geometry_atol)
    assert actual.rgb == expected.rgb


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


# --- real volumes: read -> write -> read ------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REAL_VOLUMES))
@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha", ".mhd", ".npz"])
def test_real_volume_round_trip_is_exact(name, extension, tmp_path):
    source = shared_path(*REAL_VOLUMES[name])
    volume = read_volume(source)
    assert volume.array.ndim == 3 and volume.array.size > 0
    # The geometry matches what SimpleITK itself reads.
    reference = sitk.ReadImage(str(source))
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(volume.ijk_to_lps[:3, 3], reference.GetOrigin(), atol=0)
    np.testing.assert_allclose(volume.spacing, reference.GetSpacing(), atol=0)
    np.testing.assert_allclose(volume.direction_lps.ravel(), reference.GetDirection(), atol=0)
    target = tmp_path / f"copy{extension}"
    assert write_volume(volume, target) == target
    same_format = source.name.endswith(extension) or extension in (".mha", ".mhd", ".npz", ".nrrd")
    # NIfTI stores geometry in float32: a float64 NRRD geometry survives to ~1e-7 relative there.
    assert_same_volume(read_volume(target), volume, geometry_atol=0.0 if same_format else 1e-4)
    assert leftovers(tmp_path) == []


def test_anisotropic_nrrd_spacing_and_orientation():
    volume = read_volume(shared_path(*REAL_VOLUMES["mri_nrrd_anisotropic"]))
    assert volume.array.shape == (25, 256, 256)
    np.testing.assert_allclose(volume.spacing, [0.78125, 0.78125, 6.5], rtol=1e-12)
    np.testing.assert_allclose(volume.direction_lps, np.diag([1.0, -1.0, 1.0]))
    # RAS = diag(-1, -1, 1) LPS: i runs to the patient's left, i.e. -x in RAS.
    np.testing.assert_allclose(volume.ijk_to_ras[:3, 0], [-0.78125, 0, 0], atol=1e-12)


def test_npz_layout_convention(tmp_path):
    folder = shared_path(*NPZ_FOLDER)
    paths = sorted(folder.glob("*.npz"))
    assert paths
    for path in paths:
        image, labels = read_npz_case(path)
        raw = np.load(path)
        depth = raw["imgs"].shape[0]
        assert image.array.shape == raw["imgs"].shape and image.array.dtype == np.uint8
        assert image.shape_ijk[2] == depth and image.spacing[2] == 5.0  # slice step on the D axis
        np.testing.assert_array_equal(image.direction_lps, raw["direction"].reshape(3, 3))
        np.testing.assert_array_equal(image.origin_lps, raw["origin"])
        assert labels is not None and labels.array.shape == image.array.shape and labels.array.any()
        np.testing.assert_array_equal(labels.ijk_to_lps, image.ijk_to_lps)
        # read_volume gives the image; a written case reads back identical, labels included.
        assert_same_volume(read_volume(path), image)
        target = tmp_path / path.name
        write_npz_case(target, image, labels)
        again_image, again_labels = read_npz_case(target)
        assert_same_volume(again_image, image)
        assert_same_volume(again_labels, labels)
        assert sorted(np.load(target).files) == ["direction", "gts", "imgs", "origin", "spacing"]


def test_npz_label_volume_to_nifti_keeps_geometry(tmp_path):
    path = sorted(shared_path(*NPZ_FOLDER).glob("*.npz"))[0]
    _, labels = read_npz_case(path)
    write_segmentation(tmp_path / "lesion.nii.gz", labels, [SegmentInfo("lesion", 1)])
    again = read_labelmap(tmp_path / "lesion.nii.gz")
    np.testing.assert_array_equal(again.array, labels.array)
    np.testing.assert_allclose(again.ijk_to_lps, labels.ijk_to_lps, atol=1e-6)


def _write_dicom_series(image, folder: Path, modality: str = "CT") -> None:
    """A minimal but valid CT series, one file per slice, positions from the image geometry.

    GDCM's writer leaves the process in the C locale, after which Python reads text files as ASCII
    and later tests fail on any non-ASCII file: the locale is put back."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_dicom_files(image, folder, modality)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_files(image, folder: Path, modality: str) -> None:
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.99.1"
    d = image.GetDirection()
    tags = {"0008|0060": modality, "0020|000d": uid + ".1", "0020|000e": uid + ".2",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))}
    for k in range(image.GetSize()[2]):
        slice_image = image[:, :, k]
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        slice_image.SetMetaData("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))))
        slice_image.SetMetaData("0020|0013", str(k + 1))
        slice_image.SetMetaData("0008|0018", f"{uid}.3.{k + 1}")
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_image)


def test_dicom_series_folder(tmp_path):
    source = shared_path(*REAL_VOLUMES["ct_nifti"])
    original = read_volume(source)
    _write_dicom_series(sitk.ReadImage(str(source)), tmp_path / "series")
    volume = read_volume(tmp_path / "series")
    assert volume.modality == "CT"
    np.testing.assert_array_equal(volume.array, original.array)
    np.testing.assert_allclose(volume.spacing, original.spacing, atol=1e-4)
    np.testing.assert_allclose(volume.origin_lps, original.origin_lps, atol=1e-3)
    np.testing.assert_allclose(volume.direction_lps, original.direction_lps, atol=1e-6)
    with pytest.raises(InputError, match="series_uid"):
        read_volume(tmp_path / "series", series_uid="1.2.3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DICOM series"):
        read_volume(tmp_path / "empty")


# --- 2D images --------------------------------------------------------------------------------
def test_grey_png_becomes_one_slice(tmp_path):
    path = sorted(shared_path("dev_eval", "medscribble").glob("*/*/image.png"))[0]
    volume = read_volume(path)
    expected = np.asarray(Image.open(path))
    assert expected.ndim == 2 and not volume.rgb
    np.testing.assert_array_equal(volume.array, expected[None])
    np.testing.assert_array_equal(volume.spacing, [1, 1, 1])
    np.testing.assert_array_equal(volume.direction_lps, np.eye(3))
    write_volume(volume, tmp_path / "copy.png")
    assert_same_volume(read_volume(tmp_path / "copy.png"), volume)


def test_rgb_png_and_jpeg(tmp_path):
    png = sorted(shared_path("dev_eval", "biomedparse_demo", "images").glob("*.png"))[0]
    volume = read_volume(png)
    assert volume.rgb and volume.array.shape[0] == 1 and volume.array.shape[-1] == 3
    np.testing.assert_array_equal(volume.array[0], np.asarray(Image.open(png).convert("RGB")))
    for extension in (".png", ".nrrd", ".nii.gz", ".npz"):  # a 2D RGB image survives every format
        write_volume(volume, tmp_path / f"copy{extension}")
        assert_same_volume(read_volume(tmp_path / f"copy{extension}"), volume)

    jpeg = sorted(shared_path("dev_eval", "ham10000", "images").glob("*.jpg"))[0]
    photo = read_volume(jpeg)
    reference = np.asarray(Image.open(jpeg).convert("RGB")).astype(np.int16)
    assert photo.rgb and photo.array.shape == (1, *reference.shape)
    # Two JPEG decoders may differ by a grey level or two on a few pixels; not more.
    assert np.abs(photo.array[0].astype(np.int16) - reference).mean() < 1.0


def test_png_refuses_what_it_cannot_hold(tmp_path):
    ct = read_volume(shared_path(*REAL_VOLUMES["ct_nifti"]))
    with pytest.raises(InputError, match="one 2D slice"):
        write_volume(ct, tmp_path / "ct.png")
    with pytest.raises(InputError, match="int16"):
        write_volume(Volume(ct.array[:1]), tmp_path / "slice.png")
    assert list(tmp_path.iterdir()) == []


# --- Slicer segmentations ---------------------------------------------------------------------
def _totalseg_segmentation():
    labelmap = read_labelmap(shared_path(*TOTALSEG, "example_seg.nii.gz"))
    names = json.loads(shared_path("volumes", "totalseg_tests", "class_map_total_and_total_mr.json").read_text())["total"]
    labels = [int(v) for v in np.unique(labelmap.array) if v]
    segments = [SegmentInfo(names[str(label)], label) for label in labels]
    segments[0] = SegmentInfo(segments[0].name, segments[0].label, (0.25, 0.5, 1.0))  # one custom colour
    return labelmap, segments


def test_seg_nrrd_is_read_by_slicerio_with_same_segments(tmp_path):
    import nrrd
    import slicerio

    labelmap, segments = _totalseg_segmentation()
    assert len(segments) > 30
    path = write_segmentation(tmp_path / "totalseg.seg.nrrd", labelmap, segments)
    read_back = slicerio.read_segmentation(str(path))
    by_label = {s["labelValue"]: s for s in read_back["segments"]}
    assert sorted(by_label) == [s.label for s in segments]
    for segment in segments:
        stored = by_label[segment.label]
        assert stored["name"] == segment.name
        np.testing.assert_allclose(stored["color"], segment.color, atol=1e-12)
        assert stored["layer"] == 0
    assert by_label[segments[0].label]["color"] == [0.25, 0.5, 1.0]
    np.testing.assert_array_equal(read_back["voxels"], labelmap.array.transpose(2, 1, 0))
    np.testing.assert_allclose(read_back["ijkToLPS"], labelmap.ijk_to_lps, atol=1e-12)
    # What makes Slicer load it as a segmentation node: LPS space, 3 domain axes, segment fields.
    header = nrrd.read_header(str(path))
    assert header["space"] == "left-posterior-superior" and header["kinds"] == ["domain"] * 3
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    # Our own reader gives the same labelmap, geometry and segments back.
    again, again_segments = read_segmentation(path)
    np.testing.assert_array_equal(again.array, labelmap.array)
    np.testing.assert_allclose(again.ijk_to_lps, labelmap.ijk_to_lps, atol=1e-12)
    assert again_segments == segments


def test_plain_labelmap_segmentation_round_trip(tmp_path):
    labelmap, segments = _totalseg_segmentation()
    for extension in (".nii.gz", ".nrrd"):
        path = write_segmentation(tmp_path / f"plain{extension}", labelmap, segments)
        again, again_segments = read_segmentation(path)
        np.testing.assert_array_equal(again.array, labelmap.array)
        np.testing.assert_allclose(again.ijk_to_lps, labelmap.ijk_to_lps, atol=1e-6)
        assert [s.label for s in again_segments] == [s.label for s in segments]
        assert again_segments[0].name == f"Segment_{segments[0].label}"
        assert again_segments[1].color == DEFAULT_COLORS[(segments[1].label - 1) % len(DEFAULT_COLORS)]


def test_multi_layer_slicer_file_is_merged(tmp_path):
    import slicerio

    layers = np.zeros((2, 6, 5, 4), dtype=np.uint8)  # [layer, i, j, k]
    layers[0, :3] = 1
    layers[1, 3:] = 1  # both layers use label 1, without overlap
    fields = [{"id": "a", "name": "left part", "labelValue": 1, "layer": 0, "color": [1.0, 0.0, 0.0]},
              {"id": "b", "name": "right part", "labelValue": 1, "layer": 1, "color": [0.0, 1.0, 0.0]}]
    path = tmp_path / "layers.seg.nrrd"
    slicerio.write_segmentation(str(path), {"voxels": layers, "ijkToLPS": np.diag([2.0, 2.0, 3.0, 1.0]), "segments": fields})
    labelmap, segments = read_segmentation(path)
    assert [(s.name, s.label) for s in segments] == [("left part", 1), ("right part", 2)]
    assert labelmap.array.shape == (4, 5, 6)
    assert (labelmap.array[:, :, :3] == 1).all() and (labelmap.array[:, :, 3:] == 2).all()
    np.testing.assert_allclose(labelmap.spacing, [2.0, 2.0, 3.0])
    layers[1, 2] = 1  # now the layers overlap at i = 2
    slicerio.write_segmentation(str(path), {"voxels": layers, "ijkToLPS": np.eye(4), "segments": fields})
    with pytest.raises(DataError, match="overlaps"):
        read_segmentation(path)


def test_write_segmentation_refuses_inconsistent_segments(tmp_path):
    labelmap, segments = _totalseg_segmentation()
    with pytest.raises(InputError, match="no segment describes"):
        write_segmentation(tmp_path / "a.seg.nrrd", labelmap, segments[1:])
    with pytest.raises(InputError, match="more than one segment"):
        write_segmentation(tmp_path / "b.seg.nrrd", labelmap, segments + [SegmentInfo("again", segments[0].label)])
    with pytest.raises(InputError, match="integer"):
        write_segmentation(tmp_path / "c.seg.nrrd", labelmap.with_array(labelmap.array.astype(np.float32)), segments)
    with pytest.raises(InputError, match="color"):
        SegmentInfo("liver", 1, (255, 0, 0))
    with pytest.raises(InputError, match="label"):
        SegmentInfo("liver", 0)
    assert list(tmp_path.iterdir()) == []


# --- bad input --------------------------------------------------------------------------------
def test_unreadable_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_volume(tmp_path / "empty.nii.gz")
    (tmp_path / "garbage.nrrd").write_bytes(b"this is not an image\n" * 10)
    with pytest.raises(DataError, match="garbage.nrrd"):
        read_volume(tmp_path / "garbage.nrrd")
    with pytest.raises(DataError, match="garbage.nrrd"):
        read_segmentation(tmp_path / "garbage.nrrd")
    (tmp_path / "garbage.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="garbage.npz"):
        read_volume(tmp_path / "garbage.npz")


def test_npz_without_images_or_with_empty_images(tmp_path):
    np.savez(tmp_path / "no_imgs.npz", gts=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="no 'imgs'"):
        read_npz_case(tmp_path / "no_imgs.npz")
    np.savez(tmp_path / "empty.npz", imgs=np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(DataError, match="empty"):
        read_npz_case(tmp_path / "empty.npz")


def test_nan_voxels_are_refused(tmp_path):
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = np.nan
    # (ITK's NIfTI reader itself turns NaN into 0, so the formats that keep NaN are used here.)
    for name in ("nan.nrrd", "nan.mha"):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / name))
        with pytest.raises(DataError, match=f"{name}.*NaN"):
            read_volume(tmp_path / name)
    with pytest.raises(InputError, match="NaN"):
        Volume(array)


def test_4d_and_multicomponent_volumes_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 6), np.int16), isVector=False), str(tmp_path / "4d.nii.gz"))
    with pytest.raises(DataError, match="4D"):
        read_volume(tmp_path / "4d.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True), str(tmp_path / "rgb3d.nrrd"))
    with pytest.raises(DataError, match="3 components"):
        read_volume(tmp_path / "rgb3d.nrrd")
    # A 4D file whose 4th axis has length 1 is a 3D volume.
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((1, 4, 5, 6), np.int16), isVector=False), str(tmp_path / "t1.nii.gz"))
    assert read_volume(tmp_path / "t1.nii.gz").array.shape == (4, 5, 6)


def test_volume_argument_checks():
    with pytest.raises(InputError, match="empty"):
        Volume(np.zeros((0, 4, 4)))
    with pytest.raises(InputError, match="4D"):
        Volume(np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match="unit length"):
        Volume(np.zeros((2, 3, 4)), direction_lps=np.eye(3) * 2)
    with pytest.raises(InputError, match="positive"):
        Volume(np.zeros((2, 3, 4)), spacing=(1, 0, 1))
    with pytest.raises(InputError, match="zero length"):
        Volume.from_ijk_to_ras(np.zeros((2, 3, 4)), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="shape"):
        Volume(np.zeros((2, 3, 4))).with_array(np.zeros((2, 3, 5)))


def test_unwritable_outputs_leave_nothing(tmp_path):
    volume = read_volume(shared_path(*REAL_VOLUMES["ct_nifti"]))
    with pytest.raises(InputError, match="does not exist"):
        write_volume(volume, tmp_path / "no" / "such" / "out.nii.gz")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_volume(volume, tmp_path / "a_file" / "out.nii.gz")
    with pytest.raises(InputError, match="unknown format"):
        write_volume(volume, tmp_path / "out.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root can write into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            write_volume(Volume(np.zeros((2, 3, 4), np.uint8)), folder / "out.nrrd")
    finally:
        folder.chmod(0o700)


def test_a_crash_while_writing_keeps_the_old_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    volume = read_volume(shared_path(*REAL_VOLUMES["ct_nifti"]))
    target = tmp_path / "ct.nii.gz"
    write_volume(volume, target)
    before = target.read_bytes()

    def crash(image, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", crash)
    with pytest.raises(DataError, match="disk full"):
        write_volume(volume, target)
    with pytest.raises(DataError, match="disk full"):
        write_volume(volume, tmp_path / "new.nrrd")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]

    import slicerio

    def crash_segmentation(path, *args, **kwargs):
        Path(path).write_bytes(b"NRRD0004\n")
        raise OSError("disk full")

    monkeypatch.setattr(slicerio, "write_segmentation", crash_segmentation)
    labelmap = volume.with_array((volume.array > 0).astype(np.uint8))
    with pytest.raises(DataError, match="disk full"):
        write_segmentation(tmp_path / "mask.seg.nrrd", labelmap, [SegmentInfo("body", 1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]
