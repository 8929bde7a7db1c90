"""Issue 23, item 11: what a volume's header may make the reader do.

- `--data-root` confinement through detached headers: a NRRD `data file:` or a MetaImage
  `ElementDataFile` pointing outside the root opened voxels there, and the integrity messages said
  whether any file exists and how large it is. Now every named file is resolved and confined first,
  and the refusal reads the same whether the target exists or not.
- NRRD `spacings: nan ...` or a `none` direction on a spatial axis was read as 1 mm without a word.
Real volumes from ../shared/data, rewritten as detached headers.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from SegMoTELib.errors import AccessError, DataError
from SegMoTELib.io import read_volume, write_volume
from SegMoTELib.service.limits import ServiceLimits
from SegMoTELib.service.refusal import Refusal
from SegMoTELib.service.schemas import SessionCreate
from SegMoTELib.service.store import SessionStore

CT = ("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")


@pytest.fixture(scope="module")
def raw_ct(tmp_path_factory):
    """A real CT written as a .nhdr + .raw pair and as a .mhd + .raw pair, outside any root."""
    folder = tmp_path_factory.mktemp("elsewhere")
    volume = read_volume(shared_path(*CT))
    write_volume(volume, folder / "ct.nhdr")
    write_volume(volume, folder / "ct.mhd")
    return folder, volume


def _nrrd_header(raw_ct, data_file: str) -> bytes:
    folder, _ = raw_ct
    text = (folder / "ct.nhdr").read_text(encoding="latin-1")
    lines = [line for line in text.splitlines() if not line.lower().startswith(("data file", "datafile"))]
    return ("\n".join(lines) + f"\ndata file: {data_file}\n").encode("latin-1")


def _meta_header(raw_ct, data_file: str) -> bytes:
    folder, _ = raw_ct
    text = (folder / "ct.mhd").read_text(encoding="latin-1")
    lines = [line for line in text.splitlines() if not line.startswith("ElementDataFile")]
    return ("\n".join(lines) + f"\nElementDataFile = {data_file}\n").encode("latin-1")


def _raw_of(folder, kind: str):
    return folder / ("ct.raw.gz" if kind == "nrrd" else "ct.zraw")  # what write_volume names the data files


@pytest.mark.parametrize("kind", ["nrrd", "meta"])
def test_a_header_under_the_root_cannot_open_voxels_outside_it(tmp_path, raw_ct, kind):
    folder, volume = raw_ct
    root = tmp_path / "root"
    root.mkdir()
    outside = _raw_of(folder, kind)
    header = root / ("scan.nhdr" if kind == "nrrd" else "scan.mhd")
    make = _nrrd_header if kind == "nrrd" else _meta_header
    header.write_bytes(make(raw_ct, str(outside)))
    # Without confinement (the CLI reads what its user names) the header works: the voxels are real.
    np.testing.assert_array_equal(read_volume(header).array, volume.array)
    with pytest.raises(AccessError, match="its header names a data file .* outside the folders this server may read"):
        read_volume(header, confine_to=[root])
    header.write_bytes(make(raw_ct, "../" + "../" * len(root.parts) + str(outside).lstrip("/")))  # relative, via ..
    with pytest.raises(AccessError, match="outside the folders"):
        read_volume(header, confine_to=[root])
    # Inside the root, a detached data file is read as before.
    inside = root / outside.name
    inside.write_bytes(outside.read_bytes())
    header.write_bytes(make(raw_ct, inside.name))
    np.testing.assert_array_equal(read_volume(header, confine_to=[root]).array, volume.array)
    (root / "link.raw").symlink_to(outside)  # a link under the root to voxels outside it
    header.write_bytes(make(raw_ct, "link.raw"))
    with pytest.raises(AccessError, match="outside the folders"):
        read_volume(header, confine_to=[root])


def test_the_service_says_the_same_of_a_secret_file_and_of_no_file_at_all(tmp_path, raw_ct):
    """Before: "its data file ... does not exist" for one, "the file is truncated: ... the file holds
    631 bytes" for the other: an existence and size oracle for any path of the server."""
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"x" * 631)
    store = SessionStore(host=None, limits=ServiceLimits(), data_roots=[root])
    answers = []
    for target in (secret, tmp_path / "no_such_file"):
        (root / "probe.nhdr").write_bytes(_nrrd_header(raw_ct, str(target)))
        with pytest.raises(Refusal) as refusal:
            store.create(SessionCreate(path=str(root / "probe.nhdr")))
        answers.append((refusal.value.status, refusal.value.message.replace(str(target), "TARGET")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403 and "631" not in answers[0][1] and "exist" not in answers[0][1]


def test_pattern_and_list_data_files_are_confined_too(tmp_path, raw_ct):
    root = tmp_path / "root"
    root.mkdir()
    header = root / "scan.nhdr"
    header.write_bytes(_nrrd_header(raw_ct, f"{tmp_path}/slice%03d.raw 0 29 1 2"))
    with pytest.raises(AccessError, match="slice000.raw"):
        read_volume(header, confine_to=[root])
    header.write_bytes(_nrrd_header(raw_ct, "LIST 2") + b"inside.raw\n" + f"{tmp_path}/outside.raw\n".encode())
    with pytest.raises(AccessError, match="outside.raw"):
        read_volume(header, confine_to=[root])
    analyze = root / "scan.hdr"  # SimpleITK would open scan.img beside it, by its own rules
    analyze.write_bytes(b"\0" * 348)
    with pytest.raises(AccessError, match="not .hdr"):
        read_volume(analyze, confine_to=[root])


def _nrrd(path, fields: str, sizes="6 5 4", dimension=3, data=None):
    data = bytes(6 * 5 * 4) if data is None else data
    path.write_bytes(f"NRRD0004\ntype: uint8\ndimension: {dimension}\nsizes: {sizes}\nencoding: raw\n{fields}\n"
                     .encode() + data)
    return path


def test_a_nrrd_spatial_axis_without_a_voxel_size_is_refused_not_read_as_1_mm(tmp_path):
    ramp = (np.arange(120) % 7).astype(np.uint8).tobytes()
    with pytest.raises(DataError, match="spacings 'nan nan nan': axis 0 is spatial"):
        read_volume(_nrrd(tmp_path / "nan.nrrd", "spacings: nan nan nan\n", data=ramp))
    with pytest.raises(DataError, match="spacings '1 nan 2': axis 1 is spatial"):
        read_volume(_nrrd(tmp_path / "nan1.nrrd", "spacings: 1 nan 2\n", data=ramp))
    directions = "space: left-posterior-superior\nspace origin: (0,0,0)\nspace directions: (1,0,0) none (0,0,1)\n"
    with pytest.raises(DataError, match="axis 1 the direction 'none'"):
        read_volume(_nrrd(tmp_path / "none.nrrd", directions, data=ramp))
    # NaN and `none` stay allowed where NRRD means them: a colour axis.
    rgb = read_volume(_nrrd(tmp_path / "rgb.nrrd", "kinds: RGB-color domain domain domain\nspacings: nan 1 1 2\n",
                            sizes="3 6 5 1", dimension=4, data=bytes(90)))
    assert rgb.rgb and rgb.array.shape == (1, 5, 6, 3)
    assert read_volume(_nrrd(tmp_path / "ok.nrrd", "spacings: 1 1 2.5\n", data=ramp)).spacing[2] == 2.5
