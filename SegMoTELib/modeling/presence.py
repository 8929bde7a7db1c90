"""The walk's learned continuation decision: does the prompted structure go on in this slice, with
this mask?

Propagation prompts each slice with what the model found on its neighbour. Whether to keep the
answer and go on was decided by hand-set thresholds (predicted IoU, area, centroid, grey level),
which fail on modalities they were not tuned on: the frozen IoU head is not calibrated there (a
cardiac blood pool found right at 0.4996 ended the walk). The presence head answers the walk's
question directly. It reads what the decoder already computed for the chosen mask — its output
token and the IoU token after the two-way transformer, which have attended to the image and to the
prompt (the previous mask's box and logits) — plus three scalars of the mask itself (predicted IoU,
area fraction, mean confidence inside), and gives one logit: "this is the structure, continue".

It is trained on walk steps whose target is 1 when the mask matches the structure on that slice
(Dice ≥ `PRESENT_DICE`) and 0 when the structure ended or the mask caught something else; the
threshold on its probability is calibrated per modality family on training studies
(`training/walk_head.py`) and stored in the adapter's metadata under "walk".
"""

from __future__ import annotations

import torch
from torch import nn

PRESENT_DICE = 0.5       # a walk step whose mask has at least this Dice with the truth "continues"
SCALAR_FEATURES = 3      # predicted IoU, mask area fraction, mean sigmoid inside the mask


def presence_features(iou_token: torch.Tensor, mask_token: torch.Tensor, iou: torch.Tensor,
                      low_res_logits: torch.Tensor) -> torch.Tensor:
    """(..., 2·D + 3): the head's input for each mask. iou_token / mask_token (..., D); iou (...);
    low_res_logits (..., h, w)."""
    probabilities = torch.sigmoid(low_res_logits.float()).flatten(-2)
    inside = (low_res_logits.float() > 0).flatten(-2).to(probabilities.dtype)
    area = inside.mean(-1)
    confidence = (probabilities * inside).sum(-1) / inside.sum(-1).clamp(min=1.0)
    scalars = torch.stack([iou.float(), area, confidence], dim=-1)
    return torch.cat([iou_token.float(), mask_token.float(), scalars], dim=-1)


class PresenceHead(nn.Module):
    """Features (..., 2·D + 3) → presence logit (...)."""

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(2 * dim)
        self.layers = nn.Sequential(nn.Linear(2 * dim + SCALAR_FEATURES, hidden), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens, scalars = features[..., :2 * self.dim], features[..., 2 * self.dim:]
        return self.layers(torch.cat([self.norm(tokens), scalars], dim=-1)).squeeze(-1)
