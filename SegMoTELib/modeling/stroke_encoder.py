"""The dense channel of scribbles and lassos: their low-res maps → an addition to SAM's dense prompt.

The maps (positive / negative scribbles, positive / negative lassos; `prompt_encoding`) are
downscaled the way SAM's prompt encoder downscales a mask prompt (two stride-2 convolutions, 256 →
64 cells, then a 1×1 projection to the decoder width). The projection starts at zero, so an adapter
that gains this module (fine-tuned from one without it) starts out giving exactly its old masks;
and it runs only for prompts that hold a stroke, so clicks and boxes never pass through it.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each position (as SAM's)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class StrokeEncoder(nn.Module):
    def __init__(self, dim: int, channels: int = 4, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, hidden // 4, kernel_size=2, stride=2), LayerNorm2d(hidden // 4), nn.GELU(),
            nn.Conv2d(hidden // 4, hidden, kernel_size=2, stride=2), LayerNorm2d(hidden), nn.GELU(),
        )
        self.projection = nn.Conv2d(hidden, dim, kernel_size=1)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 4, L, L) maps → (B, D, L/4, L/4), added to the dense prompt embedding."""
        return self.projection(self.layers(maps))
