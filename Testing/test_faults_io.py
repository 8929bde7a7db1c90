"""Issue 15, the shared helpers in SegMoTELib.io that every command (segment, curate, evaluate, batch,
serve) calls: file integrity (truncation, declared size, voxel size), output checks, publishing
several files together, and the output-folder lock.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, shared_path
from faults_support import nifti_with_pixdim, truncated_copy

from SegMoTELib.errors import DataError, InputError
from SegMoTELib.io import (
    FolderLock,
    atomic_outputs,
    check_image_file,
    read_volume,
    refuse_overwriting_input,
    writable_folder,
    write_volume,
)

VOLUME_FORMATS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _data_file(folder, header):
    """The file holding the voxels: the header itself, or the .nhdr/.mhd's companion."""
    others = [p for p in folder.iterdir() if p != header and p.name.startswith(header.name.split(".")[0])]
    return others[0] if others else header


@pytest.fixture(scope="module")
def ct_volume():
    return read_volume(shared_path("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz"))


# --- truncation --------------------------------------------------------------------------------
@pytest.mark.parametrize("extension", VOLUME_FORMATS)
@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "raw"])
def test_every_volume_format_written_whole_passes_and_cut_short_is_refused(tmp_path, ct_volume, extension,
                                                                           compressed):
    import SimpleITK as sitk

    from SegMoTELib.io.sitk_convert import volume_to_sitk

    path = tmp_path / f"ct{extension}"
    sitk.WriteImage(volume_to_sitk(ct_volume), str(path), useCompression=compressed)
    check_image_file(path)
    np.testing.assert_array_equal(read_volume(path).array, ct_volume.array)
    data = _data_file(tmp_path, path)
    whole = data.read_bytes()
    for fraction in (0.3, 0.9, 0.999):
        data.write_bytes(whole[: int(len(whole) * fraction)])
        with pytest.raises(DataError, match=f"{path.name}: .*(truncated|corrupt)"):
            check_image_file(path)
        with pytest.raises(DataError, match="truncated|corrupt"):
            read_volume(path)  # what SimpleITK alone would zero-fill


def test_real_shared_files_all_pass(shared_data):
    """No false alarm on the real data: every volume and every dev_eval image, a sample of the pool."""
    from SegMoTELib.io.formats import extension_of

    checked = 0
    for pattern in ("volumes/**/*", "volumes3d/**/*", "dev_eval/**/*", "train_pool/*/images/*_000*.png"):
        for path in shared_data.glob(pattern):
            if path.is_file() and extension_of(path) in (*VOLUME_FORMATS, ".png", ".jpg", ".jpeg"):
                check_image_file(path)
                checked += 1
    assert checked > 250


@pytest.mark.parametrize("name", ["ISIC_0027533.jpg", "ISIC_0027001.jpg"])
def test_a_jpeg_cut_anywhere_in_its_scan_is_refused(tmp_path, name):
    source = shared_path("dev_eval", "ham10000", "images", name)
    check_image_file(source)
    for fraction in (0.1, 0.5, 0.99):
        cut = truncated_copy(source, tmp_path / name, fraction)
        with pytest.raises(DataError, match="JPEG file is truncated"):
            check_image_file(cut)


def test_a_png_cut_or_with_a_flipped_byte_is_refused(tmp_path):
    source = shared_path("dev_eval", "biomedparse_demo", "images", "15_X-Ray_chest.png")
    cut = truncated_copy(source, tmp_path / "cut.png", 0.99)
    with pytest.raises(DataError, match="PNG file is truncated"):
        check_image_file(cut)
    flipped = bytearray(source.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / "flipped.png").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="corrupt"):
        check_image_file(tmp_path / "flipped.png")


def test_truncated_2d_images_are_refused_by_read_volume(tmp_path):
    for parts in (("dev_eval", "ham10000", "images", "ISIC_0027533.jpg"),
                  ("dev_eval", "medscribble", "CHAOS", "19_axis0_midslice", "image.png")):
        cut = truncated_copy(shared_path(*parts), tmp_path / parts[-1], 0.5)
        with pytest.raises(DataError, match=str(cut)):
            read_volume(cut)


def _dicom_series(folder, slices: int = 8):
    """A real CT's first slices written as a DICOM series, one file per slice (slice000.dcm, ...)."""
    import SimpleITK as sitk
    from test_volume_io import REAL_VOLUMES, _write_dicom_series

    _write_dicom_series(sitk.ReadImage(str(shared_path(*REAL_VOLUMES["ct_nifti"])))[:, :, :slices], folder)
    return folder


def test_a_dicom_series_missing_a_slice_is_refused_instead_of_misplaced(tmp_path, capfd):
    """ITK reads the 7 slices left with the average spacing, so every slice past the gap is misplaced."""
    import shutil

    whole = read_volume(_dicom_series(tmp_path / "whole"))
    assert whole.array.shape[0] == 8
    gap = shutil.copytree(tmp_path / "whole", tmp_path / "gap")
    (gap / "slice004.dcm").unlink()
    usual = f"{whole.spacing[2]:.3g}"
    with pytest.raises(DataError, match=rf"slices 3 and 4 \(of 7\) lie {2 * whole.spacing[2]:.3g} mm apart where "
                                        rf"the others lie {usual} mm apart: a slice is missing"):
        read_volume(gap)
    assert "Non uniform sampling" not in capfd.readouterr().err  # ITK's multi-line warning: ours is one line


@pytest.mark.parametrize("victim, fraction", [("slice004.dcm", 0.5), ("slice007.dcm", 0.98)])
def test_a_dicom_series_with_a_truncated_file_names_it_instead_of_dropping_its_slice(tmp_path, victim, fraction):
    """GDCM leaves a file it cannot parse out of the series without a word (the last slice's too,
    which no spacing check can see)."""
    folder = _dicom_series(tmp_path / "series")
    truncated_copy(folder / victim, folder / victim, fraction)
    with pytest.raises(DataError, match=rf"1 DICOM file\(s\) could not be read \({victim}\); they may be truncated"):
        read_volume(folder)


def test_a_truncated_tiff_is_refused_as_truncated(tmp_path):
    """A TIFF whose directory precedes its one strip of pixels, cut in the pixels."""
    import struct

    pixels = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    entries = [(256, 4, 64), (257, 4, 64), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, None), (277, 3, 1),
               (278, 4, 64), (279, 4, pixels.size)]
    start = 8 + 2 + 12 * len(entries) + 4
    directory = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else
                                              struct.pack("<I", start if value is None else value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    whole = tmp_path / "whole.tif"
    whole.write_bytes(b"II" + struct.pack("<HI", 42, 8) + directory + pixels.tobytes())
    np.testing.assert_array_equal(read_volume(whole).array[0], pixels)
    cut = truncated_copy(whole, tmp_path / "cut.tif", 0.6)
    with pytest.raises(DataError, match=r"cut.tif: the TIFF file is truncated \(.* of its pixel data missing\)"):
        read_volume(cut)


# --- declared size -------------------------------------------------------------------------------
def test_declared_size_is_compared_with_the_file_and_with_memory(tmp_path, monkeypatch):
    import SegMoTELib.io.integrity as integrity

    raw = tmp_path / "raw.nrrd"
    raw.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 2000 2000 2000\nencoding: raw\n\n" + bytes(100))
    with pytest.raises(DataError, match="truncated: the header declares 2000 x 2000 x 2000 .*14.9 GiB"):
        check_image_file(raw)
    packed = tmp_path / "packed.nrrd"
    packed.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 2000 2000 2000\nencoding: gzip\n\n"
                       + gzip.compress(bytes(1000)))
    with pytest.raises(DataError, match="more than .* of compressed data can hold"):
        check_image_file(packed)
    # a well-formed file that does not fit in memory is refused before reading, with both figures
    whole = tmp_path / "whole.nrrd"
    whole.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 100 100 100\nencoding: raw\n\n" + bytes(10 ** 6))
    check_image_file(whole)
    monkeypatch.setattr(integrity, "available_memory", lambda: 1_500_000)
    with pytest.raises(DataError, match="needs about 1.9 MiB of memory and 1.4 MiB is available"):
        check_image_file(whole)


def test_nifti_voxel_sizes_of_zero_or_nan_are_refused_and_valid_ones_pass(tmp_path):
    source = shared_path("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")
    check_image_file(source)
    for value in (0.0, float("nan"), float("-inf")):
        damaged = nifti_with_pixdim(source, tmp_path / "bad.nii.gz", 2, value)
        with pytest.raises(DataError, match=r"pixdim\[2\]"):
            read_volume(damaged)
    # an uncompressed .nii likewise
    plain = write_volume(read_volume(source), tmp_path / "plain.nii")
    with pytest.raises(DataError, match=r"pixdim\[1\]"):
        check_image_file(nifti_with_pixdim(plain, tmp_path / "plain0.nii", 1, 0.0))


def test_nrrd_zero_spacing_is_refused(tmp_path):
    path = tmp_path / "zero.nrrd"
    path.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nspacings: 1 0 1\nencoding: raw\n\n"
                     + bytes(64))
    with pytest.raises(DataError, match="spacings"):
        check_image_file(path)


# --- outputs -------------------------------------------------------------------------------------
def test_writable_folder_refuses_files_proc_and_full_disks(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        writable_folder(plain)
    with pytest.raises(InputError, match="is a file, so the folder .* cannot be created"):
        writable_folder(plain / "sub" / "deeper")
    if os.path.isdir("/proc/self"):
        with pytest.raises(InputError, match="cannot write in the folder /proc"):
            writable_folder("/proc/curated")
    assert writable_folder(tmp_path / "new" / "nested") == tmp_path / "new" / "nested"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]  # and leaves no probe behind

    import SegMoTELib.io.outputs as outputs

    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: type("U", (), {"free": 4096})())
    with pytest.raises(InputError, match="disk of .* is full"):
        writable_folder(tmp_path)


def test_output_equal_to_an_input_is_found_through_links(tmp_path):
    source = tmp_path / "scan.nii.gz"
    source.write_bytes(b"data")
    (tmp_path / "soft.nii.gz").symlink_to(source)
    os.link(source, tmp_path / "hard.nii.gz")
    for output in (source, tmp_path / "soft.nii.gz", tmp_path / "hard.nii.gz", tmp_path / "." / "scan.nii.gz"):
        with pytest.raises(InputError, match="is the input file"):
            refuse_overwriting_input(output, [tmp_path / "other.png", source])
    refuse_overwriting_input(tmp_path / "mask.nii.gz", [source])  # a new name is fine


def test_atomic_outputs_publish_all_files_or_keep_every_previous_version(tmp_path, monkeypatch):
    first, second = tmp_path / "mask.png", tmp_path / "mask_overlay.png"
    first.write_bytes(b"old mask")
    second.write_bytes(b"old overlay")
    # a writer failing on the second file: nothing is published
    with pytest.raises(RuntimeError), atomic_outputs([first, second]) as (a, b):
        a.write_bytes(b"new mask")
        raise RuntimeError("the overlay writer failed")
    assert (first.read_bytes(), second.read_bytes()) == (b"old mask", b"old overlay")
    # the second rename failing: the first file gets its previous version back
    import SegMoTELib.io.atomic as atomic

    real_replace = atomic.os.replace

    def failing_replace(source, target):
        if str(target) == str(second):
            raise OSError(28, "No space left on device", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(DataError, match="No space left on device"), atomic_outputs([first, second]) as (a, b):
        a.write_bytes(b"new mask")
        b.write_bytes(b"new overlay")
    assert (first.read_bytes(), second.read_bytes()) == (b"old mask", b"old overlay")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    with atomic_outputs([first, second]) as (a, b):
        a.write_bytes(b"new mask")
        b.write_bytes(b"new overlay")
    assert (first.read_bytes(), second.read_bytes()) == (b"new mask", b"new overlay")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "mask_overlay.png"]


# --- the folder lock -----------------------------------------------------------------------------
_HOLDER = textwrap.dedent("""
    import sys, time
    from SegMoTELib.io import FolderLock
    with FolderLock(sys.argv[1], "test holder"):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_held_lock_refuses_a_second_run_with_the_holder_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"in use by another run \\(pid {holder.pid}, test holder, since "):
            FolderLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock file stays, the operating system's lock does not
    lock = FolderLock(tmp_path, "second").acquire()
    assert lock.took_over is not None and f"pid {holder.pid}" in lock.took_over
    lock.release()
    assert not (tmp_path / ".segmote.lock").exists()


def test_a_lock_file_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".segmote.lock").write_text(f'{{"pid": {int(dead.stdout)}, "command": "segmote curate"}}\n')
    with FolderLock(tmp_path) as lock:
        assert f"pid {int(dead.stdout)}" in lock.took_over
        assert f'"pid": {os.getpid()}' in (tmp_path / ".segmote.lock").read_text()
    assert not (tmp_path / ".segmote.lock").exists()


_FORKING_HOLDER = textwrap.dedent("""
    import os, sys, time
    from SegMoTELib.io import FolderLock
    lock = FolderLock(sys.argv[1], "forking holder").acquire()
    if os.fork() == 0:          # a worker inherits the lock and outlives its parent
        time.sleep(60)
        os._exit(0)
    print("held", flush=True)
    os._exit(0)                 # the run ends without releasing
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_lock_kept_by_the_workers_of_an_ended_run_is_explained(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _FORKING_HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.wait(timeout=30)
        with pytest.raises(InputError, match=f"still held by processes started by a run that has ended "
                                             f"\\(pid {holder.pid}, forking holder"):
            FolderLock(tmp_path).acquire()
    finally:
        try:
            os.killpg(holder.pid, 9)  # the lingering worker
        except ProcessLookupError:
            pass
