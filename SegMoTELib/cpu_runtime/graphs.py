"""The model as the graphs the CPU runtimes run: torch modules written for export (fixed image
size, dynamic prompt count and batch), computing what `modeling.prompt_path` computes.

* `EncoderGraph`: normalised images (B, 3, S, S) → image embedding and, with a SegMoTE adapter, the
  image-only terms of its fused features (the embedding's and the early map's branches, computed
  once per image instead of once per prompt, as `ImageCachedFeatures` does in torch).
* `BasePromptGraph`: SAM's prompt encoder and mask decoder (the base one or the fine-tuned copy).
* `SegMoTEPromptGraph`: the prompt encoder and the SegMoTE decoder (expert tokens, MoTE, HQ
  fused features); `AutoGraph`: the same decoder prompted by the PPT tokens (prompt-free).

Prompts enter as SAM's ONNX export does: one list of points per row, labels 1 / 0 for positive /
negative clicks, 2 / 3 for a box's two corners, -1 for the padding point that SAM adds when there
is no box; any number of points (scribbles sample many), and a dense `mask_input` (previous
logits or a drawn mask) with a `has_mask_input` flag. The predictor builds these lists exactly as
SAM's prompt encoder concatenates its tokens, so the sparse tokens are the same values.

The maths is the faster, reassociated form of `modeling.fast_decoder` (token-side attention
projections, the upscaling as matrix products), and the SegMoTE fused features' last 3×3
convolution is folded into the expert hypernetworks: mask_e = h_e·(up + conv(z, W) + b + T) =
h_e·(up + T) + conv(z, h_e·W) + h_e·b, computed as 9 shifted products (0.3 instead of 2.4 GFLOP).
Equal to the torch path up to float rounding (Testing/test_cpu_runtime.py compares masks).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.fast_decoder import _transposed_conv_2x2, accelerate_mask_decoder, fuse_layer_norms
from ..modeling.presence import presence_features

# Label values of the point list (SAM's ONNX convention).
PADDING, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class EncoderGraph(nn.Module):
    """LiteMedSAM's `encode` with the token-grid sides fixed at export (traced shapes are tensors)."""

    def __init__(self, model, with_image_terms: bool):
        super().__init__()
        from ..backbones.fast_encoder import accelerate_image_encoder

        backbone = model.backbone
        self.encoder = accelerate_image_encoder(backbone.image_encoder, torch.device("cpu"))
        size = backbone.input_size
        with torch.no_grad():  # the grid sides, read once from a real call
            embedding, early = backbone.encode(torch.zeros(1, 3, size, size))
        self.early_shape = tuple(early.shape[1:])
        self.final_side = embedding.shape[-1]
        self.image_terms = ImageTerms(model.adapter.fused_features, embedding.shape[-1] * 4) if with_image_terms else None

    def forward(self, images: torch.Tensor):
        encoder = self.encoder
        x = encoder.layers[0](encoder.patch_embed(images))
        channels, side, _ = self.early_shape
        early = x.transpose(1, 2).reshape(-1, channels, side, side)
        for layer in encoder.layers[1:]:
            x = layer(x)
        x = x.reshape(-1, self.final_side, self.final_side, x.shape[-1]).permute(0, 3, 1, 2)
        embedding = encoder.neck(x)
        if self.image_terms is None:
            return embedding
        return embedding, self.image_terms(embedding, early)


class ImageTerms(nn.Module):
    """from_embedding(embedding) + from_early(early) at the fused map's size, channels last
    (B, 4h, 4w, D/8): the layout the SegMoTE graph adds it in."""

    def __init__(self, fused, size: int):
        super().__init__()
        self.from_embedding = fuse_layer_norms(copy.deepcopy(fused.from_embedding))
        self.from_early = fuse_layer_norms(copy.deepcopy(fused.from_early))
        self.size = size

    def forward(self, embedding: torch.Tensor, early: torch.Tensor) -> torch.Tensor:
        from_early = self.from_early(early)
        if from_early.shape[-1] != self.size:
            from_early = F.interpolate(from_early, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (self.from_embedding(embedding) + from_early).permute(0, 2, 3, 1)


class PromptEncoding(nn.Module):
    """SAM's prompt encoder on the point list (labels -1/0/1/2/3) and the dense mask input."""

    def __init__(self, prompt_encoder, input_size: int):
        super().__init__()
        self.encoder = prompt_encoder
        self.input_size = float(input_size)

    def sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
        # (x + 0.5) / S as SAM's forward_with_coords (the image is square, S × S)
        embedding = encoder.pe_layer._pe_encoding((coords + 0.5) / self.input_size)
        labels = labels.unsqueeze(-1)
        # SAM writes through boolean masks; `where` gives the same sums (0 + w, e + w) in the same order
        embedding = torch.where(labels == PADDING, encoder.not_a_point_embed.weight + 0.0, embedding)
        for value in (NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT):
            embedding = torch.where(labels == value, embedding + encoder.point_embeddings[value].weight, embedding)
        return embedding

    def dense(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return torch.where(has_mask_input.reshape(-1, 1, 1, 1) > 0.5, encoder.mask_downscaling(mask_input), no_mask)


def _prepared_sam_decoder(sam_decoder) -> nn.Module:
    """A copy of a SAM mask decoder with the reassociated attention and matrix-product upscaling."""
    return accelerate_mask_decoder(copy.deepcopy(sam_decoder))


def upscale_channels_last(upscaling, tokens: torch.Tensor, side: int) -> torch.Tensor:
    """SAM's `output_upscaling` (ConvT 2×2/2, LayerNorm2d, GELU, ConvT 2×2/2, GELU) on the image
    tokens (B, side², C) as they leave the transformer, channels last throughout: (B, 4·side, 4·side,
    C/8). The torch path transposes to NCHW and back around it; here no map is transposed."""
    first, norm, act1, second, act2 = upscaling
    hidden = _transposed_conv_2x2(tokens.reshape(-1, side, side, tokens.shape[-1]), first)
    hidden = act1(F.layer_norm(hidden, norm.weight.shape, norm.weight, norm.bias, norm.eps))
    return act2(_transposed_conv_2x2(hidden, second))


class BasePromptGraph(nn.Module):
    """(embedding (1, D, h, w), coords (B, N, 2), labels (B, N), mask_input (B, 1, 4h, 4w),
    has_mask_input (1,)) → SAM's 4 mask-token logits (B, 4, 4h, 4w) and IoU predictions (B, 4)."""

    def __init__(self, model, sam_decoder):
        super().__init__()
        backbone = model.backbone
        self.prompts = PromptEncoding(backbone.prompt_encoder, backbone.input_size)
        self.decoder = _prepared_sam_decoder(sam_decoder)
        self.register_buffer("image_pe", model.dense_pe().detach().clone().contiguous())

    def forward(self, embedding, coords, labels, mask_input, has_mask_input):
        sparse = self.prompts.sparse(coords, labels)
        dense = self.prompts.dense(mask_input, has_mask_input)
        decoder = self.decoder
        batch = sparse.shape[0]
        tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)
        src = embedding + dense
        side = src.shape[-1]
        hs, src = decoder.transformer(src, self.image_pe.expand(batch, -1, -1, -1), tokens)
        upscaled = upscale_channels_last(decoder.output_upscaling, src, side)          # (B, H, W, C)
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], 1)
        height, width, channels = upscaled.shape[1:]
        masks = (upscaled.reshape(batch, -1, channels) @ hyper.transpose(1, 2)).transpose(1, 2)
        return masks.reshape(batch, -1, height, width), decoder.iou_prediction_head(hs[:, 0])


class SegMoTEPromptGraph(nn.Module):
    """(embedding (1, D, h, w), image terms (1, D/8, 4h, 4w), coords, labels, mask_input,
    has_mask_input[, stroke_maps (B, 4, 4h, 4w), has_strokes (1,) for an adapter with a stroke encoder]) → the chosen expert token's logits (B, 1, 4h, 4w), IoU prediction (B, 1),
    router confidence (B, 1) and, for an adapter with a presence head, the walk's presence
    probability (B, 1) — the most confident expert, as the torch path picks it; with `all_experts`
    every expert's (B, E, ...) (multimask; the predictor orders them)."""

    def __init__(self, model, all_experts: bool = False):
        super().__init__()
        self.all_experts = all_experts
        from ..modeling.decoder import SegMoTEDecoder

        backbone = model.backbone
        self.prompts = PromptEncoding(backbone.prompt_encoder, backbone.input_size)
        adapter = copy.deepcopy(model.adapter)
        self.decoder = SegMoTEDecoder(_prepared_sam_decoder(model.decoder.sam), adapter)
        self.register_buffer("image_pe", model.dense_pe().detach().clone().contiguous())
        refine = adapter.fused_features.refine  # Conv 3×3, LayerNorm2d, GELU, Conv 3×3
        self.refine_in, self.refine_norm, self.refine_act, self.refine_out = refine

    def forward(self, embedding, image_terms, coords, labels, mask_input, has_mask_input, stroke_maps=None,
                has_strokes=None):
        sparse = self.prompts.sparse(coords, labels)
        dense = self.prompts.dense(mask_input, has_mask_input)
        stroke_encoder = self.decoder.adapter.stroke_encoder
        if stroke_encoder is not None:
            # The scribbles' and lassos' dense channel (modeling/stroke_encoder.py), added as torch adds it;
            # without strokes the flag is 0 and the sum adds exactly zero (the maps are zeros then).
            dense = dense + stroke_encoder(stroke_maps) * has_strokes.reshape(-1, 1, 1, 1)
        return self.decode(embedding, image_terms, sparse, dense)

    def decode(self, embedding, image_terms, sparse, dense):
        decoder, sam = self.decoder, self.decoder.sam
        batch = sparse.shape[0]
        fixed = torch.cat([sam.iou_token.weight, sam.mask_tokens.weight, decoder.adapter.expert_tokens], dim=0)
        tokens = torch.cat([fixed.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)
        src = embedding + dense
        side = src.shape[-1]
        keys = src.flatten(2).permute(0, 2, 1)
        key_pe = self.image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        routing = None
        for index, layer in enumerate(sam.transformer.layers):
            queries, keys, routing = decoder._block(index, layer, queries, keys, tokens, key_pe)
        transformer = sam.transformer
        attended = transformer.final_attn_token_to_image(q=queries + tokens, k=keys + key_pe, v=keys)
        queries = transformer.norm_final_attn(queries + attended)

        first = 1 + decoder.num_mask_tokens
        experts = decoder.num_experts
        upscaled = upscale_channels_last(sam.output_upscaling, keys, side)                 # (B, H, W, C)
        hyper = torch.stack([net(queries[:, first + i]) for i, net in enumerate(decoder.adapter.hypernetworks)], 1)
        base_iou = sam.iou_prediction_head(queries[:, 0])
        slots = [index % base_iou.shape[1] for index in range(experts)]  # expert e borrows IoU slot e mod 4
        iou, confidence = base_iou[:, slots], routing.probs.max(dim=-1).values
        expert_tokens = queries[:, first:first + experts]                                # (B, E, D)
        if not self.all_experts:  # only the chosen expert's mask is made (a quarter of the mask work)
            chosen = confidence.argmax(dim=1, keepdim=True)                               # (B, 1)
            hyper = torch.gather(hyper, 1, chosen.unsqueeze(-1).expand(-1, -1, hyper.shape[-1]))
            expert_tokens = torch.gather(expert_tokens, 1, chosen.unsqueeze(-1).expand(-1, -1, expert_tokens.shape[-1]))
            iou, confidence = torch.gather(iou, 1, chosen), torch.gather(confidence, 1, chosen)
        masks = self._expert_masks(hyper, upscaled, image_terms)
        presence_head = decoder.adapter.presence
        if presence_head is None:
            return masks, iou, confidence
        # The walk's presence probability (modeling/presence.py) of each mask made here: the head reads
        # the IoU token, the expert's token, its IoU and its logits, as SegMoTEDecoder does.
        features = presence_features(queries[:, :1].expand_as(expert_tokens), expert_tokens, iou, masks)
        return masks, iou, confidence, torch.sigmoid(presence_head(features))

    def _expert_masks(self, hyper: torch.Tensor, upscaled: torch.Tensor, image_terms: torch.Tensor) -> torch.Tensor:
        """hyper (B, E, C) · fused features (channels last), with the refine branch's last 3×3
        convolution folded into the hypernetwork outputs (it is linear): 9 shifted (64 → E)
        products per pixel instead of a 64 → 32 convolution."""
        batch, experts, channels = hyper.shape
        height, width = upscaled.shape[1:3]
        direct = (upscaled + image_terms).reshape(batch, -1, channels) @ hyper.transpose(1, 2)   # (B, HW, E)
        hidden = self.refine_in(upscaled.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)   # (B, H, W, 64)
        norm = self.refine_norm  # LayerNorm2d over the channels, last here
        hidden = self.refine_act(F.layer_norm(hidden, norm.weight.shape, norm.weight, norm.bias, norm.eps))
        weight = self.refine_out.weight                                              # (C, 64, 3, 3)
        inner = weight.shape[1]
        folded = (hyper @ weight.reshape(channels, -1)).reshape(batch, experts, inner, 9)
        folded = folded.permute(0, 2, 3, 1).reshape(batch, inner, 9 * experts)       # (B, 64, [tap, E])
        taps = (hidden.reshape(batch, -1, inner) @ folded).reshape(batch, height, width, 9, experts)
        taps = F.pad(taps, (0, 0, 0, 0, 1, 1, 1, 1))
        convolved = taps[:, 0:height, 0:width, 0]
        for tap in range(1, 9):  # cross-correlation: output (y, x) reads input (y + dy - 1, x + dx - 1)
            dy, dx = divmod(tap, 3)
            convolved = convolved + taps[:, dy:dy + height, dx:dx + width, tap]
        bias = hyper @ self.refine_out.bias                                          # (B, E)
        masks = direct.reshape(batch, height, width, experts) + convolved + bias.reshape(batch, 1, 1, experts)
        return masks.permute(0, 3, 1, 2)


class AutoGraph(nn.Module):
    """Prompt-free: (embedding, image terms) → the SegMoTE graph's outputs with the PPT tokens as the
    sparse prompt and no mask input."""

    def __init__(self, prompt_graph: SegMoTEPromptGraph):
        super().__init__()
        self.graph = prompt_graph

    def forward(self, embedding, image_terms):
        graph = self.graph
        sparse = graph.decoder.adapter.prompt_tokenizer(embedding, graph.image_pe)
        dense = graph.prompts.encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand_as(embedding)
        return graph.decode(embedding, image_terms, sparse, dense)
