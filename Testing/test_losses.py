"""Training losses (SegMoTELib.training.losses), checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the losses need torch")

from SegMoTELib.errors import InputError  # noqa: E402
from SegMoTELib.training.losses import (  # noqa: E402
    dice_loss,
    focal_loss,
    iou_mse_loss,
    mask_iou,
    segmentation_loss,
)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def focal_by_hand(logit, target, gamma=2.0, alpha=0.25):
    p = sigmoid(logit)
    p_true = p if target else 1 - p
    weight = alpha if target else 1 - alpha
    return -weight * (1 - p_true) ** gamma * math.log(p_true)


LOGITS = [[0.0, 2.0], [-1.0, 3.0]]
TARGET = [[1.0, 0.0], [0.0, 1.0]]


def test_focal_loss_matches_the_formula_pixel_by_pixel():
    expected = sum(focal_by_hand(x, t) for row_x, row_t in zip(LOGITS, TARGET) for x, t in zip(row_x, row_t)) / 4
    value = focal_loss(torch.tensor(LOGITS)[None, None], torch.tensor(TARGET)[None, None])
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # One pixel, logit 0, foreground: 0.25 · 0.5² · ln 2.
    single = focal_loss(torch.zeros(1, 1), torch.ones(1, 1))
    assert single.item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-6)


def test_focal_loss_agrees_with_torchvision_sigmoid_focal_loss():
    ops = pytest.importorskip("torchvision.ops", reason="torchvision cross-check")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 16, 16, generator=generator) * 3
    target = (torch.rand(3, 1, 16, 16, generator=generator) > 0.7).float()
    reference = ops.sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="mean")
    assert focal_loss(logits, target).item() == pytest.approx(reference.item(), rel=1e-5)


def test_focal_loss_down_weights_easy_pixels():
    target = torch.ones(1, 4, 4)
    assert focal_loss(torch.full((1, 4, 4), 4.0), target) < focal_loss(torch.full((1, 4, 4), 0.5), target) / 20


def test_dice_loss_by_hand():
    # Probability 0.5 everywhere, 2 of 4 pixels foreground: (2·1 + 1) / (2 + 2 + 1) = 0.6.
    value = dice_loss(torch.zeros(1, 2, 2), torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]))
    assert value.item() == pytest.approx(0.4, rel=1e-6)
    # Two masks are averaged: a near-perfect one (loss ≈ 0) and a near-opposite one.
    logits = torch.tensor([[[20.0, -20.0]], [[-20.0, 20.0]]])
    target = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    opposite = 1 - (0 + 1) / (1 + 1 + 1)
    assert dice_loss(logits, target).item() == pytest.approx(opposite / 2, abs=1e-6)


def test_iou_of_thresholded_mask_and_its_mse():
    logits = torch.tensor([[[1.0, 1.0, -1.0, -1.0]]])  # predicts pixels 0 and 1
    target = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])  # truth is pixels 1 and 2: IoU 1/3
    assert mask_iou(logits, target).item() == pytest.approx(1 / 3)
    assert iou_mse_loss(torch.tensor([0.5]), logits, target).item() == pytest.approx((0.5 - 1 / 3) ** 2)
    assert mask_iou(-torch.ones(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0  # both empty


def test_segmentation_loss_weights_and_parts():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 8, 8, generator=generator, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()
    pred_iou = torch.rand(2, 1, generator=generator, requires_grad=True)
    balance = torch.tensor(0.7, requires_grad=True)
    total, parts = segmentation_loss(logits, target, pred_iou, balance)
    expected = (20 * focal_loss(logits, target) + dice_loss(logits, target)
                + iou_mse_loss(pred_iou, logits, target) + 0.01 * balance)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"focal", "dice", "iou", "balance"} and not parts["dice"].requires_grad
    total.backward()
    assert logits.grad.abs().sum() > 0 and pred_iou.grad.abs().sum() > 0
    assert balance.grad.item() == pytest.approx(0.01)


def test_segmentation_loss_optional_terms_and_weight_overrides():
    logits, target = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    total, parts = segmentation_loss(logits, target)
    assert set(parts) == {"focal", "dice"}
    assert total.item() == pytest.approx(20 * parts["focal"].item() + parts["dice"].item(), rel=1e-6)
    total, _ = segmentation_loss(logits, target, weights={"focal": 0.0})
    assert total.item() == pytest.approx(parts["dice"].item(), rel=1e-6)
    with pytest.raises(InputError, match="weights"):
        segmentation_loss(logits, target, weights={"lovasz": 1.0})


def test_losses_reject_mismatched_shapes():
    with pytest.raises(InputError, match="target"):
        focal_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(InputError, match="pred_iou"):
        iou_mse_loss(torch.zeros(3), torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
