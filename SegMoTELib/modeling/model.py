"""SegMoTEModel: a frozen backbone plus the SegMoTE decoder, for training and inference."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..backbones.base import Backbone
from ..errors import CheckpointError, one_line
from .adapter_io import read_adapter, save_adapter
from .config import AdapterConfig
from .decoder import DecoderOutput, SegMoTEAdapter, SegMoTEDecoder


class SegMoTEModel(nn.Module):
    def __init__(self, backbone: Backbone, config: AdapterConfig | None = None):
        super().__init__()
        self.backbone = backbone
        self.config = config or AdapterConfig()
        # The backbone's SAM decoder always stays the untouched base; the training modes that
        # fine-tune it work on a copy, which the SegMoTE path then uses.
        sam_decoder = backbone.mask_decoder
        if self.config.training_mode != "adapter":
            sam_decoder = copy.deepcopy(sam_decoder)
        dim = sam_decoder.transformer_dim
        adapter = SegMoTEAdapter(self.config, dim, backbone.early_channels, len(sam_decoder.transformer.layers))
        self.decoder = SegMoTEDecoder(sam_decoder, adapter)
        self.set_trainable(self.config.training_mode)

    @property
    def uses_experts(self) -> bool:
        """False for the 'decoder' training mode: SAM's own decoder, fine-tuned, without experts or PPT."""
        return self.config.training_mode != "decoder"

    @property
    def adapter(self) -> SegMoTEAdapter:
        return self.decoder.adapter

    def set_trainable(self, mode: str) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        if mode in ("adapter", "adapter+decoder"):
            for parameter in self.adapter.parameters():
                parameter.requires_grad_(True)
        if mode in ("adapter+decoder", "decoder"):
            for parameter in self.decoder.sam.parameters():
                parameter.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone.encode(images)

    def _full_precision(self):
        # Random-Fourier positional encodings take sin/cos of large products: in bf16/fp16 they
        # become noise, so prompt and image positional encodings are always computed in fp32.
        return torch.autocast(self.backbone.pixel_mean.device.type, enabled=False)

    @property
    def reads_stroke_maps(self) -> bool:
        """Whether the SegMoTE path takes scribbles and lassos as a dense channel too."""
        return self.uses_experts and self.adapter.stroke_encoder is not None

    def encode_prompts(self, points=None, boxes=None, masks=None, strokes=None):
        """SAM's prompt encoder (frozen). points = (coords (B,N,2), labels (B,N)) in model-input pixels;
        `strokes` (B, 4, L, L): the stroke maps of `prompt_encoding`, added to the dense embedding by
        the adapter's stroke encoder (ignored without one)."""
        with self._full_precision():
            sparse, dense = self.backbone.prompt_encoder(points=points, boxes=boxes, masks=masks)
        if strokes is not None and self.reads_stroke_maps:
            dense = dense + self.adapter.stroke_encoder(strokes.to(dense.dtype))
        return sparse, dense

    def dense_pe(self) -> torch.Tensor:
        """The prompt encoder's dense positional encoding (1, D, h, w): it depends on no input, so it
        is computed once per device (same ops, same values) instead of at every decode."""
        gaussian = self.backbone.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        # channels-last (set by the predictor's `optimize`) lets the decoder read it without a copy
        layout = getattr(self, "dense_pe_memory_format", torch.contiguous_format)
        key = (gaussian.device, gaussian.dtype, gaussian.data_ptr(), gaussian._version, layout)
        cached = getattr(self, "_dense_pe_cache", None)
        if cached is None or cached[0] != key:
            # A plain tensor (not an inference tensor), so training may use it too.
            with torch.inference_mode(False), torch.no_grad(), self._full_precision():
                cached = (key, self.backbone.prompt_encoder.get_dense_pe().contiguous(memory_format=layout))
            self._dense_pe_cache = cached
        return cached[1]

    def dense_no_prompt(self, batch: int) -> torch.Tensor:
        encoder = self.backbone.prompt_encoder
        return encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *encoder.image_embedding_size)

    def decode(self, embeddings: torch.Tensor, early: torch.Tensor, sparse: torch.Tensor | None,
               dense: torch.Tensor) -> DecoderOutput:
        return self.decoder(embeddings, early, self.dense_pe(), sparse, dense)

    def decode_base(self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool,
                    tuned: bool = False):
        """SAM's decoder path: (low-res logits, IoU predictions) — the base one, or with `tuned` the
        fine-tuned copy of the 'decoder' training mode."""
        decoder = self.decoder.sam if tuned else self.backbone.mask_decoder
        return decoder(image_embeddings=embeddings, image_pe=self.dense_pe(),
                       sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask)

    # --- adapter files -------------------------------------------------------------------
    def save_adapter(self, path: str | Path, metadata: dict | None = None, half: bool = False) -> Path:
        decoder_state = None
        if self.config.training_mode in ("adapter+decoder", "decoder"):
            decoder_state = self.decoder.sam.state_dict()
        return save_adapter(path, self.adapter.state_dict(), self.config, self.backbone.name,
                            decoder_state=decoder_state, metadata=metadata, half=half)

    @classmethod
    def from_adapter(cls, backbone: Backbone, path: str | Path) -> SegMoTEModel:
        payload = read_adapter(path, expected_backbone=backbone.name)
        model = cls(backbone, payload["config"])
        model._load_states(payload, path)
        model.metadata = payload.get("metadata", {})
        model.set_trainable("none")
        return model

    def attach_walk_head(self, payload: dict) -> None:
        """Give an adapter without one the presence head of a walk-head add-on (`adapter_io.read_walk_head`)
        and its calibrated walk settings (metadata "walk")."""
        from .presence import PresenceHead

        head = PresenceHead(self.decoder.sam.transformer_dim)
        head.load_state_dict({k: v.float() for k, v in payload["head"].items()}, strict=True)
        self.adapter.presence = head.to(next(self.adapter.parameters()).device).eval()
        self.metadata = {**getattr(self, "metadata", {}), "walk": payload["walk"]}

    def _load_states(self, payload: dict, path) -> None:
        def load(module, state, what):
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as error:
                raise CheckpointError(f"adapter: {path} does not fit this model ({what}): "
                                      f"{one_line(error, 300)}") from None

        load(self.adapter, payload["adapter"], "adapter parameters")
        if payload.get("decoder") is not None:
            load(self.decoder.sam, payload["decoder"], "decoder parameters")
