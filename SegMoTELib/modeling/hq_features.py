"""HQ-SAM-style fused feature map for the expert masks.

The decoder's upscaled features (D/8 channels at 4× the embedding resolution) plus the image
embedding and an early encoder feature map, each compressed to D/8 channels at that resolution.
The last layer of each added branch starts at zero so an untrained adapter sees SAM's features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def _upsampler(in_channels: int, mid: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, mid, kernel_size=2, stride=2), LayerNorm2d(mid), nn.GELU(),
        nn.ConvTranspose2d(mid, out, kernel_size=2, stride=2),
    )


class FusedFeatures(nn.Module):
    def __init__(self, dim: int, early_channels: int):
        super().__init__()
        out = dim // 8
        self.from_embedding = _upsampler(dim, dim // 4, out)
        self.from_early = nn.Sequential(nn.Conv2d(early_channels, dim // 4, kernel_size=1), LayerNorm2d(dim // 4),
                                        nn.GELU(), nn.Conv2d(dim // 4, out, kernel_size=1))
        self.refine = nn.Sequential(nn.Conv2d(out, dim // 4, 3, padding=1), LayerNorm2d(dim // 4), nn.GELU(),
                                    nn.Conv2d(dim // 4, out, 3, padding=1))
        for branch in (self.from_embedding, self.from_early, self.refine):
            nn.init.zeros_(branch[-1].weight)
            nn.init.zeros_(branch[-1].bias)

    def forward(self, upscaled: torch.Tensor, image_embeddings: torch.Tensor, early: torch.Tensor) -> torch.Tensor:
        size = upscaled.shape[-2:]
        early = self.from_early(early)
        if early.shape[-2:] != size:
            early = F.interpolate(early, size=size, mode="bilinear", align_corners=False)
        return upscaled + self.refine(upscaled) + self.from_embedding(image_embeddings) + early
