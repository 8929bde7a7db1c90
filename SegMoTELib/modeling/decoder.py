"""The SegMoTE decoder: SAM's frozen two-way decoder with expert tokens, MoTE and PPT.

Tokens are `[iou(1), mask(4), expert(E)]` followed by the sparse prompt tokens (or the PPT
tokens). In each two-way block, self-attention and token→image attention run over all tokens with
SAM's frozen weights; SAM's token MLP runs on the non-expert tokens only, the MoTE on the expert
tokens; image→token attention again over all tokens. Each expert token drives its own
hypernetwork over the fused feature map; the output mask is the one of the expert token whose
router is most confident in the last block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import AdapterConfig
from .hq_features import FusedFeatures
from .mote import MixtureOfTokenExperts, Routing, load_balance_loss
from .ppt import PromptTokenizer
from .stroke_encoder import StrokeEncoder
from .presence import PresenceHead, presence_features


@dataclass
class DecoderOutput:
    masks: torch.Tensor            # (B, 1, h, w) low-res logits of the chosen expert token
    iou: torch.Tensor              # (B, 1) predicted IoU of that mask (frozen IoU head)
    chosen: torch.Tensor           # (B,) index of the chosen expert token
    expert_masks: torch.Tensor     # (B, E, h, w)
    expert_iou: torch.Tensor       # (B, E)
    confidence: torch.Tensor       # (B, E) top router probability of each expert token, last block
    base_masks: torch.Tensor       # (B, 4, h, w) SAM's own mask tokens, for comparison
    base_iou: torch.Tensor         # (B, 4)
    routings: list[Routing]
    iou_token: torch.Tensor | None = None          # (B, D) the IoU token after the transformer
    expert_tokens: torch.Tensor | None = None      # (B, E, D) the expert tokens after the transformer
    expert_presence: torch.Tensor | None = None    # (B, E) presence logits (adapters with a presence head)

    def presence_features(self) -> torch.Tensor:
        """(B, E, 2·D + 3): the presence head's input for each expert token's mask."""
        return presence_features(self.iou_token[:, None].expand_as(self.expert_tokens), self.expert_tokens,
                                 self.expert_iou, self.expert_masks)

    @property
    def presence(self) -> torch.Tensor | None:
        """(B, 1) presence logit of the chosen mask, or None without a presence head."""
        if self.expert_presence is None:
            return None
        return self.expert_presence.gather(1, self.chosen[:, None])

    def balance_loss(self) -> torch.Tensor:
        return load_balance_loss(self.routings)


class HypernetworkMLP(nn.Module):
    """D → D → D/8: one per expert token."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim // 8))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.layers(token)


class SegMoTEAdapter(nn.Module):
    """The trainable parameters, kept apart from the frozen SAM decoder so they save separately."""

    def __init__(self, config: AdapterConfig, dim: int, early_channels: int, depth: int):
        super().__init__()
        self.config = config
        self.expert_tokens = nn.Parameter(torch.randn(config.num_experts, dim) * 0.02)
        self.mote = nn.ModuleList(
            MixtureOfTokenExperts(dim, config.num_experts, config.expert_rank, config.expert_hidden,
                                  config.active_experts, config.router_noise_floor)
            for _ in range(depth)
        )
        self.hypernetworks = nn.ModuleList(HypernetworkMLP(dim) for _ in range(config.num_experts))
        self.fused_features = FusedFeatures(dim, early_channels)
        self.prompt_tokenizer = PromptTokenizer(dim, config.ppt_queries, config.ppt_mlp_ratio)
        # only where configured, so adapter files without it load unchanged (strict state dicts)
        self.stroke_encoder = StrokeEncoder(dim) if config.stroke_encoder else None
        # Only adapters that declare it have one, so older adapter files load unchanged.
        self.presence = PresenceHead(dim) if config.presence_head else None


class SegMoTEDecoder(nn.Module):
    def __init__(self, sam_decoder: nn.Module, adapter: SegMoTEAdapter):
        super().__init__()
        self.sam = sam_decoder
        self.adapter = adapter
        self.num_mask_tokens = sam_decoder.num_mask_tokens

    @property
    def num_experts(self) -> int:
        return self.adapter.config.num_experts

    def _block(self, index: int, layer: nn.Module, queries, keys, query_pe, key_pe):
        first = 1 + self.num_mask_tokens
        expert_slice = slice(first, first + self.num_experts)
        # 1. self-attention and token→image attention over all tokens (frozen)
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = layer.norm2(queries + layer.cross_attn_token_to_image(q=q, k=k, v=keys))
        # 2. SAM's token MLP on the non-expert tokens, 3. MoTE on the expert tokens
        experts = queries[:, expert_slice]
        others = torch.cat([queries[:, :first], queries[:, expert_slice.stop:]], dim=1)
        others = layer.norm3(others + layer.mlp(others))
        expert_update, routing = self.adapter.mote[index](experts)
        experts = layer.norm3(experts + expert_update)
        queries = torch.cat([others[:, :first], experts, others[:, first:]], dim=1)
        # 4. image→token attention over all tokens (frozen)
        q, k = queries + query_pe, keys + key_pe
        keys = layer.norm4(keys + layer.cross_attn_image_to_token(q=k, k=q, v=queries))
        return queries, keys, routing

    def forward(self, image_embeddings: torch.Tensor, early_features: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt: torch.Tensor | None, dense_prompt: torch.Tensor) -> DecoderOutput:
        """image_embeddings (B, D, h, w) — one row per prompt; sparse_prompt (B, N, D) or None for
        prompt-free (PPT) decoding; dense_prompt (B, D, h, w)."""
        sam = self.sam
        batch, dim, height, width = image_embeddings.shape
        if sparse_prompt is None:
            sparse_prompt = self.adapter.prompt_tokenizer(image_embeddings, image_pe)
        fixed = torch.cat([sam.iou_token.weight, sam.mask_tokens.weight, self.adapter.expert_tokens], dim=0)
        tokens = torch.cat([fixed.unsqueeze(0).expand(batch, -1, -1).to(sparse_prompt.dtype), sparse_prompt], dim=1)

        src = image_embeddings + dense_prompt
        keys = src.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1).expand(batch, -1, -1)
        queries, query_pe = tokens, tokens
        routings = []
        for index, layer in enumerate(sam.transformer.layers):
            queries, keys, routing = self._block(index, layer, queries, keys, query_pe, key_pe)
            routings.append(routing)
        transformer = sam.transformer
        q, k = queries + query_pe, keys + key_pe
        queries = transformer.norm_final_attn(queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys))

        first = 1 + self.num_mask_tokens
        iou_token_out = queries[:, 0]
        mask_tokens_out = queries[:, 1:first]
        expert_tokens_out = queries[:, first:first + self.num_experts]

        upscaled = sam.output_upscaling(keys.transpose(1, 2).reshape(batch, dim, height, width))
        flat = upscaled.flatten(2)
        base_hyper = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(sam.output_hypernetworks_mlps)], 1)
        base_masks = (base_hyper @ flat).view(batch, -1, *upscaled.shape[-2:])
        base_iou = sam.iou_prediction_head(iou_token_out)

        fused = self.adapter.fused_features(upscaled, image_embeddings, early_features).flatten(2)
        expert_hyper = torch.stack([net(expert_tokens_out[:, i]) for i, net in enumerate(self.adapter.hypernetworks)], 1)
        expert_masks = (expert_hyper @ fused).view(batch, -1, *upscaled.shape[-2:])
        # The frozen IoU head has one output per SAM mask token; expert token e borrows slot e mod 4.
        slots = torch.arange(self.num_experts, device=base_iou.device) % base_iou.shape[1]
        expert_iou = base_iou[:, slots]

        confidence = routings[-1].probs.max(dim=-1).values        # (B, E)
        chosen = confidence.argmax(dim=1)
        rows = torch.arange(batch, device=chosen.device)
        output = DecoderOutput(
            masks=expert_masks[rows, chosen].unsqueeze(1), iou=expert_iou[rows, chosen].unsqueeze(1), chosen=chosen,
            expert_masks=expert_masks, expert_iou=expert_iou, confidence=confidence,
            base_masks=base_masks, base_iou=base_iou, routings=routings,
            iou_token=iou_token_out, expert_tokens=expert_tokens_out,
        )
        if self.adapter.presence is not None:  # only then: the features cost a sigmoid over every expert mask
            # detached: the head reads the decoder and never shapes it (masks and 2D figures stay as trained)
            output.expert_presence = self.adapter.presence(output.presence_features().detach())
        return output
