"""What every backbone provides: a frozen SAM-family encoder, prompt encoder and mask decoder."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A frozen SAM-family model split into the parts SegMoTE needs.

    `encode` returns the image embedding (B, 256, 64, 64) and an early encoder feature map
    (B, C, h, w) used by the HQ-style fused features of the expert masks.
    """

    name: str
    input_size: int
    early_channels: int

    def __init__(self, name: str, input_size: int, image_encoder: nn.Module, prompt_encoder: nn.Module,
                 mask_decoder: nn.Module, early_channels: int, normalization: str):
        super().__init__()
        self.name = name
        self.input_size = input_size
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.early_channels = early_channels
        self.normalization = normalization
        self.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1), persistent=False)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def normalize(self, resized: torch.Tensor, valid_hw: tuple[int, int]) -> torch.Tensor:
        """Map resized 0..255 float images (B, 3, h, w) to the encoder's input range, before padding.

        LiteMedSAM and MedSAM were trained on images min-max scaled to [0, 1] per image; SAM on
        ImageNet mean/std normalisation.
        """
        if self.normalization == "minmax01":
            flat = resized.flatten(1)
            low = flat.min(dim=1).values.view(-1, 1, 1, 1)
            high = flat.max(dim=1).values.view(-1, 1, 1, 1)
            return (resized - low) / torch.clamp(high - low, min=1e-8)
        return (resized - self.pixel_mean) / self.pixel_std

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def train(self, mode: bool = True):
        # The backbone is always frozen and in eval mode (no dropout, fixed norms).
        return super().train(False)
