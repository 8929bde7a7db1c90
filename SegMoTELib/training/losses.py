"""Training losses of the SegMoTE adapter (DESIGN §2): 20·focal + Dice + IoU-MSE + λ·balance.

All functions take mask logits of shape (..., H, W): every leading dimension indexes a separate
mask (e.g. (B, 1, H, W) or (B, H, W)); targets have the same shape (bool or 0/1 float); a predicted
IoU has one value per mask (shape (...), or (..., 1)). Focal and Dice follow the SAM / HQ-SAM /
MedSAM fine-tuning code: the focal loss is torchvision's sigmoid focal loss averaged over all
pixels; the Dice loss is the soft Dice of the sigmoid probabilities with +1 smoothing, averaged
over masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

DEFAULT_WEIGHTS = {"focal": 20.0, "dice": 1.0, "iou": 1.0, "balance": 0.01}


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.dim() < 2:
        raise InputError(f"logits: expected shape (..., H, W), got {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise InputError(f"target: shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}")
    return target.to(dtype=logits.dtype)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), mean over every pixel of every mask.

    Per pixel: alpha_t · (1 - p_t)^gamma · BCE(logit, t), with p_t the probability given to the
    true class and alpha_t = alpha for foreground, 1 - alpha for background (alpha < 0 disables
    the weighting).
    """
    target = _check_pair(logits, target)
    probability = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = probability * target + (1 - probability) * (1 - target)
    loss = cross_entropy * (1 - p_true) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2·Σpt + smooth) / (Σp + Σt + smooth) per mask on sigmoid probabilities, mean over masks."""
    target = _check_pair(logits, target)
    probability = torch.sigmoid(logits).flatten(-2)
    target = target.flatten(-2)
    numerator = 2 * (probability * target).sum(-1)
    denominator = probability.sum(-1) + target.sum(-1)
    return (1 - (numerator + smooth) / (denominator + smooth)).mean()


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each thresholded mask (logit > 0) with its target, shape (...); 1 when both are empty."""
    target = _check_pair(logits, target) > 0.5
    predicted = logits > 0
    intersection = (predicted & target).flatten(-2).sum(-1).to(logits.dtype)
    union = (predicted | target).flatten(-2).sum(-1).to(logits.dtype)
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union))


def iou_mse_loss(pred_iou: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted IoU and the actual IoU of the thresholded mask.

    The actual IoU is a constant (no gradient flows into the mask through it), so this loss only
    trains whatever produces `pred_iou`.
    """
    actual = mask_iou(logits.detach(), target)
    if pred_iou.numel() != actual.numel():
        raise InputError(
            f"pred_iou: expected one value per mask ({tuple(actual.shape)}), got shape {tuple(pred_iou.shape)}"
        )
    return F.mse_loss(pred_iou.reshape(actual.shape), actual.to(pred_iou.dtype))


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, pred_iou: torch.Tensor | None = None,
                      balance: torch.Tensor | None = None, weights: dict | None = None):
    """Total training loss and its parts: 20·focal + Dice + IoU-MSE + 0.01·balance by default.

    `pred_iou` None drops the IoU term (e.g. a frozen IoU head); `balance` is the MoTE load-balance
    loss (CV²(importance) + CV²(load)) or None. `weights` overrides any of the keys
    focal, dice, iou, balance. Returns (total, parts) where parts maps each term's name to its
    unweighted value, detached (call float() to log it).
    """
    chosen = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise InputError(f"weights: unknown loss terms {sorted(unknown)}; expected {sorted(DEFAULT_WEIGHTS)}")
        chosen.update(weights)
    terms = {"focal": focal_loss(logits, target), "dice": dice_loss(logits, target)}
    if pred_iou is not None:
        terms["iou"] = iou_mse_loss(pred_iou, logits, target)
    if balance is not None:
        terms["balance"] = balance.sum()  # a scalar, or per-block terms to add up
    total = sum(chosen[name] * value for name, value in terms.items())
    parts = {name: value.detach() for name, value in terms.items()}
    return total, parts


def presence_loss(presence_logits: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
                  present_dice: float = 0.5) -> torch.Tensor:
    """BCE of the walk's presence head (`modeling/presence.py`): its target is 1 where the structure is on
    the slice and the mask found it (hard Dice ≥ `present_dice`), 0 where the structure ended or the mask
    caught something else. presence_logits (B, 1); logits / target (B, 1, H, W)."""
    predicted = (logits > 0).flatten(1).float()
    truth = (target > 0.5).flatten(1).float()
    overlap = 2 * (predicted * truth).sum(1) / (predicted.sum(1) + truth.sum(1)).clamp(min=1.0)
    present = ((truth.sum(1) > 0) & (overlap >= present_dice)).float()
    return F.binary_cross_entropy_with_logits(presence_logits.reshape(-1), present)
