"""Helpers of the fault tests (test_faults_*.py): snapshots, one-line errors, damaged copies of real files.

Every fault test asserts the same three things: exit status 2, one line on stderr that names the
problem, and no file that existed before changed or vanished.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import pytest

from SegMoTELib.cli import main as segmote


class ModelWouldLoad(Exception):
    """Raised instead of loading a model: a test that expects a refusal *before* the model loads
    fails on it, a test that expects the checks to pass catches it."""


@pytest.fixture
def no_model(monkeypatch):
    """Make every command's model construction raise ModelWouldLoad (nothing is loaded)."""
    def refuse(*args, **kwargs):
        raise ModelWouldLoad()

    import SegMoTELib.commands.evaluate as evaluate_command
    import SegMoTELib.commands.segment as segment_command

    monkeypatch.setattr(segment_command, "predictor_from_args", refuse)
    monkeypatch.setattr(evaluate_command, "predictor_from_args", refuse)


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (links followed), by path."""
    digests = {}
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        for path in paths:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def assert_unchanged(before: dict[str, str], *folders: Path) -> None:
    """Every file of `before` still exists with the same bytes."""
    after = snapshot(*folders)
    missing = sorted(set(before) - set(after))
    changed = sorted(path for path in before if path in after and after[path] != before[path])
    assert not missing, f"files removed: {missing}"
    assert not changed, f"files changed: {changed}"


def refused(argv: list[str], capsys, *fragments: str) -> str:
    """Run `segmote argv`; assert exit status 2 and one stderr line holding every fragment."""
    code = segmote([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(f"segmote {argv[0]}: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in line and "weights_only" not in line
    return line


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of `source`'s bytes, as a file cut short by a copy or a download."""
    data = Path(source).read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def nifti_with_pixdim(source: Path, target: Path, axis: int, value: float) -> Path:
    """A copy of a NIfTI-1 file (.nii or .nii.gz) whose pixdim[axis] is `value` (0, NaN, ...)."""
    compressed = str(source).endswith(".gz")
    data = bytearray(gzip.decompress(Path(source).read_bytes()) if compressed else Path(source).read_bytes())
    order = "<" if struct.unpack("<i", data[:4])[0] == 348 else ">"
    struct.pack_into(order + "f", data, 76 + 4 * axis, value)
    target.write_bytes(gzip.compress(bytes(data)) if compressed else bytes(data))
    return target


def copy_of(source: Path, folder: Path, name: str | None = None) -> Path:
    target = Path(folder) / (name or Path(source).name)
    shutil.copyfile(source, target)
    return target


def linked_pool(root: Path, datasets) -> Path:
    """root/pool holding links to these train_pool datasets of ../shared (nothing copied)."""
    from conftest import shared_path

    pool = root / "pool"
    pool.mkdir()
    for name in datasets:
        (pool / name).symlink_to(shared_path("train_pool", name), target_is_directory=True)
    return pool

