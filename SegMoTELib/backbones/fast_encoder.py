"""Opt-in faster image encoders: the same weights, fewer passes over memory, optional low precision.

Tried on the 2-core CPU and left out: row strips for the full-resolution MBConv blocks and token
chunks for the MLPs (faster single-threaded, 2-3× slower with two threads on a loaded machine),
dynamic int8 Linear layers (21 % relative error on the embedding, no gain on AVX2), torch.compile
(1.5× single-threaded after a 4-minute compile).

`accelerate_image_encoder(encoder, device)` returns a copy of a TinyViT (LiteMedSAM)
image encoder with
* every Conv2d + BatchNorm pair folded into one convolution (TinyViT's own `Conv2d_BN.fuse`): one
  pass less over each of the large early feature maps;
* on GPUs, window attention through `scaled_dot_product_attention` with the relative-position
  bias as the additive mask (one fused kernel instead of four).
Low precision on GPUs (`bf16`, `fp16`) is autocast around the call (see `encoder_autocast`), so
LayerNorm and softmax stay in fp32.

Results equal the original encoder's up to float rounding in fp32; the reduced precisions are
checked by mask Dice on real images in Testing/test_fast_paths.py.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, device) -> str:
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise InputError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise InputError("precision: 'fp16' needs a GPU; on the CPU use fp32 (or bf16 where the CPU supports it)")
    return precision


def encoder_autocast(device, precision: str):
    """The autocast context of the encoder call for bf16/fp16, else a no-op context."""
    if precision not in ("bf16", "fp16"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


class WindowAttention(nn.Module):
    """TinyViT `Attention` (same parameters and keys); on GPUs through scaled_dot_product_attention
    with the relative-position bias as the additive mask (one fused kernel instead of four)."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.norm, self.qkv, self.proj = attention.norm, attention.qkv, attention.proj
        self.num_heads, self.key_dim, self.d, self.dh = (attention.num_heads, attention.key_dim, attention.d,
                                                         attention.dh)
        self.scale = attention.scale
        self.attention_biases = attention.attention_biases
        self.register_buffer("attention_bias_idxs", attention.attention_bias_idxs, persistent=False)
        self.register_buffer("bias", attention.attention_biases[:, attention.attention_bias_idxs].detach().clone(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(batch, tokens, self.num_heads, -1).split(
            [self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if x.is_cuda:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype), scale=self.scale)
        else:  # TinyViT's own order: on CPUs it beats the fused kernel for 7×7 windows
            out = torch.softmax((q @ k.transpose(-2, -1)) * self.scale + self.bias, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.dh))


def _replace_children(module: nn.Module, replace) -> None:
    for name, child in module.named_children():
        new = replace(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _replace_children(child, replace)


def _fold_batchnorm(child: nn.Module):
    if type(child).__name__ == "Conv2d_BN" and hasattr(child, "fuse"):
        return child.fuse()
    return None


def _faster_block(child: nn.Module):
    if type(child).__name__ == "Attention" and hasattr(child, "attention_bias_idxs") and hasattr(child, "qkv"):
        return WindowAttention(child)
    return None


def accelerate_image_encoder(encoder: nn.Module, device) -> nn.Module:
    """A faster copy of a TinyViT image encoder (the original is left untouched); other encoders
    are copied unchanged."""
    fast = copy.deepcopy(encoder).eval()
    _replace_children(fast, _fold_batchnorm)
    _replace_children(fast, _faster_block)
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    return fast.to(device)
