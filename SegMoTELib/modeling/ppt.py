"""Progressive Prompt Tokenization: learned queries that read the image and act as the prompt."""

from __future__ import annotations

import torch
from torch import nn


class PromptTokenizer(nn.Module):
    """Q learned queries attend over the image embedding (+ positional encoding), MLP residual,
    LayerNorm; the result replaces the sparse prompt tokens for prompt-free masks."""

    def __init__(self, dim: int, num_queries: int, mlp_ratio: float = 2.0, num_heads: int = 8):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor) -> torch.Tensor:
        batch = image_embeddings.shape[0]
        values = image_embeddings.flatten(2).transpose(1, 2)                  # (B, HW, D)
        keys = values + image_pe.flatten(2).transpose(1, 2)
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)
        queries = queries + self.attention(queries, keys, values, need_weights=False)[0]
        queries = queries + self.mlp(queries)
        return self.norm(queries)
