"""Faster, numerically equivalent stand-ins for parts of SAM's mask decoder (opt-in).

`accelerate_mask_decoder(decoder)` swaps, in place, modules of a SAM `MaskDecoder` for ones with
the same parameters (same state-dict keys) and the same maths, only reassociated:

* `ReassociatedAttention` — SAM's cross-attentions between a few tokens (7-13) and the 4,096
  image positions spend most of their time projecting the 4,096 positions (q/k/v/out projections
  of 256 → 128 channels). With fewer tokens than the head width (16), the same result is obtained
  by folding the projection weights into the token side: two (H·tokens × 256) × (256 × 4,096)
  products instead of two (4,096 × 256) × (256 × 128) ones — 2.3× fewer FLOPs and well-shaped
  matrices instead of (4,096 × 16) × (16 × 7) ones.
* `MatmulUpscaling` — `output_upscaling`'s two 2×2 stride-2 transposed convolutions as plain
  matrix products in channels-last layout, its LayerNorm2d as one `layer_norm` (oneDNN's
  transposed convolution and the seven-pass LayerNorm2d dominate the decoder on CPUs).

`cache_image_features(adapter)` does the same for the SegMoTE adapter's fused features: their two
branches that read only the image (the embedding's and the early map's) are computed once per
image and reused by every prompt on it (`ImageCachedFeatures`).

Masks are equal to the original decoder's up to float rounding (Testing/test_fast_paths.py checks
Dice on real images). Used by `SegMoTEPredictor(optimize=True)`.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class ReassociatedAttention(nn.Module):
    """SAM's `Attention` (q/k/v/out projections, H heads), computed with the projections folded
    into whichever side has few rows. Falls back to SAM's own order when neither side is small."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.q_proj, self.k_proj = attention.q_proj, attention.k_proj
        self.v_proj, self.out_proj = attention.v_proj, attention.out_proj
        self.num_heads = attention.num_heads
        self.internal_dim = attention.internal_dim
        self.embedding_dim = attention.embedding_dim

    @property
    def head_dim(self) -> int:
        return self.internal_dim // self.num_heads

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        few = self.head_dim  # below this many rows, folding the weights saves work
        if q.shape[1] < few and k.shape[1] >= 4 * few:
            return self._few_queries(q, k, v)
        if k.shape[1] < few and q.shape[1] >= 4 * few:
            return self._few_keys(q, k, v)
        return self._as_sam(q, k, v)

    def _as_sam(self, q, k, v):
        """SAM's own order (project, split heads, attend, merge, project)."""
        batch, heads = q.shape[0], self.num_heads
        q, k, v = (projection(x).view(batch, x.shape[1], heads, self.head_dim).transpose(1, 2)
                   for projection, x in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v)))
        weights = torch.softmax((q @ k.transpose(2, 3)) / math.sqrt(self.head_dim), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, -1, self.internal_dim)
        return self.out_proj(out)

    def _heads(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.view(self.num_heads, self.head_dim, -1)  # (H, d, E) from a (H·d, E) weight

    def _few_queries(self, q, k, v):
        """Tokens attend to the image: fold W_k into the queries and W_v after the weighted sum."""
        batch, tokens, _ = q.shape
        heads = self.num_heads
        qh = self.q_proj(q).view(batch, tokens, heads, self.head_dim)
        folded = torch.einsum("bnhj,hje->bhne", qh, self._heads(self.k_proj.weight))
        # q·b_k is the same for every key: softmax ignores it.
        scores = torch.bmm(folded.reshape(batch, heads * tokens, -1), k.transpose(1, 2))
        weights = torch.softmax(scores * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        context = torch.bmm(weights, v).view(batch, heads, tokens, -1)           # (B, H, n, E)
        out = torch.einsum("bhne,hje->bnhj", context, self._heads(self.v_proj.weight))
        out = out + self.v_proj.bias.view(heads, self.head_dim)                 # weights sum to 1
        return self.out_proj(out.reshape(batch, tokens, self.internal_dim))

    def _few_keys(self, q, k, v):
        """The image attends to the tokens: fold W_q into the keys and W_out into the values."""
        batch, tokens, _ = k.shape
        heads = self.num_heads
        kh = self.k_proj(k).view(batch, tokens, heads, self.head_dim)
        vh = self.v_proj(v).view(batch, tokens, heads, self.head_dim)
        folded_keys = torch.einsum("bnhj,hje->bhne", kh, self._heads(self.q_proj.weight))
        key_bias = torch.einsum("bnhj,hj->bhn", kh, self.q_proj.bias.view(heads, self.head_dim))
        scores = torch.bmm(folded_keys.reshape(batch, heads * tokens, -1), q.transpose(1, 2))
        scores = (scores + key_bias.reshape(batch, heads * tokens, 1)) * (1.0 / math.sqrt(self.head_dim))
        weights = torch.softmax(scores.view(batch, heads, tokens, -1), dim=2)   # over the tokens
        out_weight = self.out_proj.weight.view(-1, heads, self.head_dim)        # (E, H, d)
        folded_values = torch.einsum("bnhj,ehj->bhne", vh, out_weight).reshape(batch, heads * tokens, -1)
        out = torch.bmm(weights.view(batch, heads * tokens, -1).transpose(1, 2), folded_values)
        return out + self.out_proj.bias


class FusedLayerNorm2d(nn.Module):
    """SAM's / the adapter's `LayerNorm2d` (per-pixel normalisation over channels, biased variance,
    same `weight`, `bias`, `eps`) as one `layer_norm` kernel on the channels-last view, instead of
    seven elementwise passes; the result is channels-last."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return normed.permute(0, 3, 1, 2)


def _transposed_conv_2x2(nhwc: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A stride-2, 2×2 transposed convolution as one matrix product per pixel: (B, H, W, C) →
    (B, 2H, 2W, O), channels last."""
    batch, height, width, channels = nhwc.shape
    out = conv.out_channels
    weight = conv.weight.permute(0, 2, 3, 1).reshape(channels, 4 * out)   # (C, [dy, dx, O])
    bias = conv.bias.repeat(4)
    product = torch.addmm(bias, nhwc.reshape(-1, channels), weight)
    product = product.view(batch, height, width, 2, 2, out).permute(0, 1, 3, 2, 4, 5)
    return product.reshape(batch, 2 * height, 2 * width, out)


class MatmulUpscaling(nn.Sequential):
    """`output_upscaling` (ConvT 2×2/2, LayerNorm2d, GELU, ConvT 2×2/2, GELU) computed channels-last
    with the transposed convolutions as matrix products (oneDNN's transposed convolution is several
    times slower on CPUs); the same modules under the same state-dict keys. Returns an NCHW-shaped,
    channels-last tensor (SAM's `.view(b, c, h * w)` of it works)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, norm, act1, second, act2 = self
        hidden = _transposed_conv_2x2(x.permute(0, 2, 3, 1), first)
        # (the weight's shape, not the tensor's: a constant when the graph is exported with dynamic shapes)
        hidden = act1(F.layer_norm(hidden, norm.weight.shape, norm.weight, norm.bias, norm.eps))
        return act2(_transposed_conv_2x2(hidden, second)).permute(0, 3, 1, 2)


def _is_standard_upscaling(upscaling: nn.Module) -> bool:
    kinds = [type(layer).__name__ for layer in upscaling]
    convs = [upscaling[0], upscaling[3]] if len(kinds) == 5 else []
    return (kinds[:2] == ["ConvTranspose2d", "LayerNorm2d"] and len(kinds) == 5
            and all(conv.kernel_size == (2, 2) and conv.stride == (2, 2) and conv.padding == (0, 0) for conv in convs))


def fuse_layer_norms(module: nn.Module) -> nn.Module:
    """Swap every LayerNorm2d under `module` for `FusedLayerNorm2d`, in place."""
    for name, child in module.named_children():
        if type(child).__name__ == "LayerNorm2d" and hasattr(child, "eps"):
            setattr(module, name, FusedLayerNorm2d(child))
        else:
            fuse_layer_norms(child)
    return module


def accelerate_mask_decoder(mask_decoder: nn.Module) -> nn.Module:
    """Swap SAM mask-decoder modules for the equivalent faster ones, in place; returns the decoder."""
    transformer = mask_decoder.transformer
    for layer in transformer.layers:
        for name in ("cross_attn_token_to_image", "cross_attn_image_to_token"):
            module = getattr(layer, name)
            if not isinstance(module, ReassociatedAttention):
                setattr(layer, name, ReassociatedAttention(module))
    if not isinstance(transformer.final_attn_token_to_image, ReassociatedAttention):
        transformer.final_attn_token_to_image = ReassociatedAttention(transformer.final_attn_token_to_image)
    upscaling = mask_decoder.output_upscaling
    if not isinstance(upscaling, MatmulUpscaling) and _is_standard_upscaling(upscaling):
        mask_decoder.output_upscaling = MatmulUpscaling(*upscaling)
    return mask_decoder


def _identity(tensor: torch.Tensor) -> tuple:
    """What makes two tensors the same data here: storage, view and in-place version (inference
    tensors, such as the predictor's cached embeddings, keep no version counter)."""
    version = None if tensor.is_inference() else tensor._version
    return (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tensor.stride(), version)


def _one_row(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A batch that repeats one row by a zero stride (the predictor's box batches) → that row, batch."""
    if tensor.shape[0] > 1 and tensor.stride(0) == 0:
        return tensor[:1], tensor.shape[0]
    return tensor, 0


class ImageCachedFeatures(nn.Module):
    """The adapter's `FusedFeatures` (same submodules and keys, same sum in the same order) with the
    image-only branches remembered for the last few images; only without autograd (inference)."""

    def __init__(self, fused: nn.Module, remembered: int = 4):
        super().__init__()
        self.from_embedding, self.from_early, self.refine = fused.from_embedding, fused.from_early, fused.refine
        self.remembered = remembered
        self._memory: OrderedDict[tuple, tuple] = OrderedDict()

    def forward(self, upscaled: torch.Tensor, image_embeddings: torch.Tensor, early: torch.Tensor) -> torch.Tensor:
        from_embedding, from_early = self._image_terms(image_embeddings, early, tuple(upscaled.shape[-2:]))
        return upscaled + self.refine(upscaled) + from_embedding + from_early

    def _compute(self, image_embeddings, early, size):
        from_early = self.from_early(early)
        if tuple(from_early.shape[-2:]) != size:
            from_early = F.interpolate(from_early, size=size, mode="bilinear", align_corners=False)
        return self.from_embedding(image_embeddings), from_early

    def _image_terms(self, image_embeddings, early, size):
        capturing = image_embeddings.is_cuda and torch.cuda.is_current_stream_capturing()
        if torch.is_grad_enabled() or capturing:  # a CUDA graph must compute them from its inputs
            return self._compute(image_embeddings, early, size)
        (embedding, batch), (early_row, early_batch) = _one_row(image_embeddings), _one_row(early)
        if batch != early_batch:
            return self._compute(image_embeddings, early, size)
        key = (_identity(embedding), _identity(early_row), size)
        if key in self._memory:
            self._memory.move_to_end(key)
            terms = self._memory[key][2]
        else:
            terms = self._compute(embedding, early_row, size)
            # the inputs are kept too, so their memory cannot be reused by other data under this key
            self._memory[key] = (embedding, early_row, terms)
            while len(self._memory) > self.remembered:
                self._memory.popitem(last=False)
        if batch:
            terms = tuple(term.expand(batch, -1, -1, -1) for term in terms)
        return terms


def cache_image_features(adapter: nn.Module) -> nn.Module:
    """Swap the adapter's fused features for the image-caching equivalent, in place."""
    if not isinstance(adapter.fused_features, ImageCachedFeatures):
        adapter.fused_features = ImageCachedFeatures(fuse_layer_norms(adapter.fused_features))
    return adapter
