"""Prompt tensors → masks at the image's size: the one computation behind `predict` / `predict_auto`.

It is written as a function of tensors only (`prompt_function(model, call)`), so that the whole
path — prompt encoding, decoding, expert selection, upscaling to the image and thresholding — can
be replayed from one CUDA graph (`cuda_graphs=True`); eagerly it is the same operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..preprocessing import ImageTransform

DECODERS = ("base", "tuned", "segmote")  # SAM's decoder, its fine-tuned copy, the SegMoTE decoder


@dataclass(frozen=True)
class PromptCall:
    """What one call computes (apart from the tensors' values); hashable, a CUDA-graph key."""

    points: bool
    boxes: bool
    masks: bool
    decoder: str          # one of DECODERS; prompt-free calls use "segmote"
    multimask: bool
    transform: ImageTransform
    strokes: bool = False  # dense stroke maps (read by the SegMoTE decoder's stroke encoder only)

    @property
    def prompt_free(self) -> bool:
        return not (self.points or self.boxes or self.masks or self.strokes)

    @property
    def needs_early_features(self) -> bool:
        return self.decoder == "segmote"


def adapter_outputs(output, multimask: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(low-res logits, scores, presence probabilities or None) of the SegMoTE decoder: the chosen
    expert's mask, or with `multimask` every expert's mask, most confident first."""
    presence = None if output.expert_presence is None else torch.sigmoid(output.expert_presence.float())
    if not multimask:
        chosen = None if presence is None else presence.gather(1, output.chosen[:, None])
        return output.masks, output.iou, chosen
    order = output.confidence.argsort(dim=1, descending=True)
    return (output.expert_masks.gather(1, order[..., None, None].expand_as(output.expert_masks)),
            output.expert_iou.gather(1, order), None if presence is None else presence.gather(1, order))


def prompt_function(model, call: PromptCall) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`run(embedding, [early], [coords, labels], [boxes], [mask logits], [stroke maps])` → (masks
    bool (B, K, H, W) at the image's size, low-res logits (B, K, s, s), scores (B, K), presence (B, K)
    or None); the bracketed tensors are passed when `call` says so. Presence is the walk's
    continuation probability, from adapters with a presence head (`modeling/presence.py`)."""

    def run(embedding, *tensors):
        rest = iter(tensors)
        early = next(rest) if call.needs_early_features else None
        points = (next(rest), next(rest)) if call.points else None
        boxes = next(rest) if call.boxes else None
        masks = next(rest) if call.masks else None
        strokes = next(rest) if call.strokes else None
        presence = None
        if call.prompt_free:
            low_res, scores, presence = adapter_outputs(
                model.decode(embedding, early, None, model.dense_no_prompt(1)), call.multimask)
        else:
            sparse, dense = model.encode_prompts(points=points, boxes=boxes, masks=masks,
                                                 strokes=strokes if call.decoder == "segmote" else None)
            batch = sparse.shape[0]
            embedding = embedding.expand(batch, -1, -1, -1)
            if call.decoder == "segmote":
                output = model.decode(embedding, early.expand(batch, -1, -1, -1), sparse, dense)
                low_res, scores, presence = adapter_outputs(output, call.multimask)
            else:
                low_res, scores = model.decode_base(embedding, sparse, dense, call.multimask,
                                                    tuned=call.decoder == "tuned")
        low_res = low_res.float()
        return call.transform.logits_to_image(low_res) > 0, low_res, scores.float(), presence

    return run


def graph_safe_point_embedding(prompt_encoder) -> None:
    """Give SAM's prompt encoder (in place) a point embedding without boolean-mask indexing.

    SAM's `_embed_points` writes through `embedding[labels == k]`, which reads the mask's indices
    back to the host and so cannot be captured in a CUDA graph. `torch.where` does the same sums in
    the same order (0 + w for padding points, e + w for the others): bit-identical results."""
    import types

    def _embed_points(self, points, labels, pad: bool):
        points = points + 0.5  # to the centre of the pixel, as SAM
        if pad:
            padding_point = torch.zeros((points.shape[0], 1, 2), device=points.device)
            padding_label = -torch.ones((labels.shape[0], 1), device=labels.device)
            points = torch.cat([points, padding_point], dim=1)
            labels = torch.cat([labels, padding_label], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight + 0.0, embedding)
        embedding = torch.where(labels == 0, embedding + self.point_embeddings[0].weight, embedding)
        return torch.where(labels == 1, embedding + self.point_embeddings[1].weight, embedding)

    if getattr(prompt_encoder, "_graph_safe_points", False):
        return
    prompt_encoder._embed_points = types.MethodType(_embed_points, prompt_encoder)
    prompt_encoder._graph_safe_points = True


class EagerPrompts:
    """Runs prompt calls directly (the default)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, call: PromptCall, *tensors: torch.Tensor) -> tuple:
        return prompt_function(self.model, call)(*tensors)


class GraphedPrompts:
    """Replays prompt calls from CUDA graphs, one per call kind and input shapes."""

    def __init__(self, model, max_graphs: int = 16):
        from .cuda_graph import GraphCache

        self.model = model
        self.graphs = GraphCache(max_graphs)
        graph_safe_point_embedding(model.backbone.prompt_encoder)

    @property
    def failures(self) -> list[str]:
        """Why some calls run eagerly (captures that failed), if any."""
        return self.graphs.failure_reasons

    def __call__(self, call: PromptCall, *tensors: torch.Tensor) -> tuple:
        return self.graphs(call, lambda: prompt_function(self.model, call), *tensors)
