"""Issue 23, item 11: a refusal is one line on stderr, with nothing from torch or ITK before it.

Run as real processes: warnings that torch raises and ITK's C++ warnings reach the terminal there,
which pytest's own capture would hide.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import pickle
import struct
import subprocess
import sys

from conftest import REPO, shared_path

CT = ("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")
XRAY = ("dev_eval", "biomedparse_demo", "images", "15_X-Ray_chest.png")


def _segmote(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "SegMoTELib.cli", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_malicious_plain_pickle_adapter_is_refused_in_one_line(tmp_path):
    """A pickle written by `pickle.dump` (protocol 4), not `torch.save`: torch warned in two lines."""
    marker = tmp_path / "code-was-run"
    adapter = tmp_path / "adapter.pt"
    with adapter.open("wb") as handle:
        pickle.dump({"format": "segmote-adapter", "x": _Payload(marker)}, handle, protocol=4)
    result = _segmote("segment", shared_path(*XRAY), "--box", 10, 10, 100, 100, "-o", tmp_path / "mask.png",
                      "--adapter", adapter)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("segmote segment: error: adapter: ") and "is not a valid SegMoTE adapter" in lines[0]
    assert not marker.exists()


def test_itk_warnings_do_not_precede_a_refusal(tmp_path):
    """A real CT whose NIfTI sform has a shear (ITK warns "unexpected scales in sform" and uses the
    qform): the warning printed four raw lines before the one-line error."""
    data = bytearray(gzip.decompress(shared_path(*CT).read_bytes()))
    struct.pack_into("<hh", data, 252, 1, 1)  # qform_code, sform_code
    struct.pack_into("<12f", data, 280, 3, 0.5, 0, -177.9, 0, 3, 0, 11.3, 0, 0, 3, 94.3)  # srow_x/y/z
    skewed = tmp_path / "skewed.nii"
    skewed.write_bytes(bytes(data))
    result = _segmote("segment", skewed, "--ras-point", 0, 0, 0, "-o", tmp_path / "out.seg.nrrd")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("segmote segment: error: points: ") and "outside the volume" in lines[0]
