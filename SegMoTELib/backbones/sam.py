"""SAM ViT-B/L/H and MedSAM ViT-B from a user-supplied checkpoint through `segment_anything`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BackboneError, CheckpointError
from .base import Backbone
from .checkpoints import load_into, load_state_dict, verify_checkpoint


class SamViTBackbone(Backbone):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self.image_encoder
        x = encoder.patch_embed(images)
        if encoder.pos_embed is not None:
            x = x + encoder.pos_embed
        early = None
        first_global = encoder.blocks[0].window_size == 0
        for index, block in enumerate(encoder.blocks):
            x = block(x)
            # HQ-SAM's early feature: the output of the first global-attention block
            if early is None and (block.window_size == 0 or (first_global and index == 0)):
                early = x.permute(0, 3, 1, 2)
        return encoder.neck(x.permute(0, 3, 1, 2)), early


def build(name: str, spec: dict, checkpoint: str | Path | None) -> Backbone:
    if checkpoint is None:
        raise CheckpointError(
            f"checkpoint: backbone {name!r} needs a checkpoint file ({spec['checkpoint']}); get it from {spec['source']}"
        )
    try:
        from segment_anything import sam_model_registry
    except ImportError as error:
        raise BackboneError(f"backbone: {name} needs the 'segment-anything' package ({error})") from None
    path = verify_checkpoint(checkpoint, spec.get("sha256"), spec["title"])
    sam = sam_model_registry[spec["builder"]](checkpoint=None)
    load_into(sam, load_state_dict(path, spec["title"]), path, spec["title"])
    normalization = "minmax01" if name.startswith("medsam") else "sam"
    return SamViTBackbone(
        name=name, input_size=int(spec["input_size"]), image_encoder=sam.image_encoder,
        prompt_encoder=sam.prompt_encoder, mask_decoder=sam.mask_decoder,
        early_channels=sam.image_encoder.patch_embed.proj.out_channels, normalization=normalization,
    )
