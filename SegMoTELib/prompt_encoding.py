"""A pixel-frame `SlicePrompt` → the model's prompt tensors: the one place where this happens.

The encoding of each kind, and why:
- click: SAM's point token (label 1 / 0), as before;
- box: SAM's two corner tokens;
- scribble: `SCRIBBLE_POINTS` point tokens at equal arc-length steps along the stroke (label =
  its polarity) — SAM's decoder, and every adapter trained with clicks, already reads them, so a
  scribble works with the shipped adapter; and, where the adapter has a stroke encoder
  (`AdapterConfig.stroke_encoder`), the stroke drawn `SCRIBBLE_RADIUS` cells wide on the low-res
  grid as a dense channel: points say "here", the line says "all along here";
- lasso: a positive lasso gives its bounding box (clipped to the image; united with a box given
  too) — the box is what the model knows best, and a loop around a structure is a loose box;
  a negative lasso gives a negative point at the deepest cell inside it; with a stroke encoder,
  the filled polygon is a dense channel too, which tells the model the outline, not only its box;
  after decoding, the lassos also bound the mask on their slice (`lasso_bounds`: nothing outside a
  positive loop, nothing inside a negative one), as a user who draws a loop means;
- earlier result: its low-res logits as SAM's mask prompt; or a seed mask (a segment the user
  already has) as such logits (`preprocessing.mask_to_low_res_logits`).
Dense stroke channels: positive scribbles, negative scribbles, positive lassos, negative lassos.
Training (`training.stroke_simulation`) encodes its simulated strokes with `encode_strokes` too,
so the model is trained on exactly what it gets at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .modeling import stroke_raster
from .preprocessing import ImageTransform, mask_to_low_res_logits
from .slice_prompt import SlicePrompt

SCRIBBLE_POINTS = 3
SCRIBBLE_RADIUS = 1.5          # low-res cells (about 1.2 % of the image side on each side of the line)
NEGATIVE_LASSO_POINTS = 1
STROKE_CHANNELS = ("positive scribble", "negative scribble", "positive lasso", "negative lasso")


@dataclass
class StrokeSlot:
    """One stroke per sample of a batch: (B, V, 2) vertices in model-input pixels."""

    vertices: torch.Tensor
    lasso: bool
    positive: torch.Tensor      # (B,) bool; a lasso slot has one polarity for the whole batch


@dataclass
class EncodedStrokes:
    points: torch.Tensor | None    # (B, n, 2) model-input pixels
    labels: torch.Tensor | None    # (B, n) long
    boxes: torch.Tensor | None     # (B, 4) the positive lassos' bounding box
    maps: torch.Tensor | None      # (B, 4, L, L) float, STROKE_CHANNELS


def encode_strokes(slots: list[StrokeSlot], input_size: int, low_res: int, with_maps: bool) -> EncodedStrokes:
    """Sparse and dense model inputs of a batch of strokes (the order of `slots` is kept)."""
    if not slots:
        return EncodedStrokes(None, None, None, None)
    batch = slots[0].vertices.shape[0]
    device = slots[0].vertices.device
    points, labels, boxes = [], [], None
    maps = torch.zeros((batch, len(STROKE_CHANNELS), low_res, low_res), device=device) if with_maps else None
    for slot in slots:
        vertices = slot.vertices.float()
        positive = slot.positive.to(device=device, dtype=torch.bool)
        if slot.lasso:
            if bool(positive.any()) != bool(positive.all()):
                raise ValueError("a lasso slot needs one polarity for the whole batch")
            filled = stroke_raster.fill_polygons(vertices, input_size, low_res)
            if bool(positive[0]):
                box = stroke_raster.polygon_boxes(vertices, input_size)
                boxes = box if boxes is None else torch.cat([torch.minimum(boxes[:, :2], box[:, :2]),
                                                             torch.maximum(boxes[:, 2:], box[:, 2:])], dim=1)
            else:
                cell, _ = stroke_raster.deepest_pixels(filled)
                points.append(stroke_raster.low_res_to_input(cell, input_size, low_res)[:, None]
                              .expand(-1, NEGATIVE_LASSO_POINTS, -1))
                labels.append(torch.zeros((batch, NEGATIVE_LASSO_POINTS), dtype=torch.long, device=device))
            channel = 2 if bool(positive[0]) else 3
            if maps is not None:
                maps[:, channel] = torch.maximum(maps[:, channel], filled.float())
        else:
            points.append(stroke_raster.resample_polylines(vertices, SCRIBBLE_POINTS))
            labels.append(positive.long()[:, None].expand(-1, SCRIBBLE_POINTS))
            if maps is not None:
                line = stroke_raster.draw_polylines(vertices, input_size, low_res, SCRIBBLE_RADIUS).float()
                channel = torch.where(positive, 0, 1)
                for value in (0, 1):
                    chosen = (channel == value).float()[:, None, None]
                    maps[:, value] = torch.maximum(maps[:, value], line * chosen)
    return EncodedStrokes(torch.cat(points, dim=1) if points else None, torch.cat(labels, dim=1) if labels else None,
                          boxes, maps)


@dataclass
class PromptTensors:
    """What `modeling.prompt_path` takes for a batch of prompts on one image."""

    points: torch.Tensor | None    # (B, N, 2) float32, model-input pixels
    labels: torch.Tensor | None    # (B, N) long
    boxes: torch.Tensor | None     # (B, 4) float32, model-input pixels
    masks: torch.Tensor | None     # (B, 1, L, L) float32 low-res logits
    strokes: torch.Tensor | None   # (B, 4, L, L) float32 dense stroke channels


def encode_prompts(prompts: list[SlicePrompt], transform: ImageTransform, low_res: int, with_maps: bool,
                   device) -> PromptTensors:
    """Model inputs of prompts on one image (pixel frame, checked with `check_inside`). Several
    prompts make a batch: they must have the same kinds and numbers of clicks and strokes."""
    encoded = [_encode_one(prompt, transform, low_res, with_maps, device) for prompt in prompts]
    shapes = {tuple(None if t is None else tuple(t.shape) for t in (e.points, e.boxes, e.masks, e.strokes))
              for e in encoded}
    if len(shapes) != 1:
        raise InputError("prompt: a batch of prompts needs the same kinds and numbers of prompts in each")
    return PromptTensors(*(None if parts[0] is None else torch.cat(parts) for parts in
                           zip(*((e.points, e.labels, e.boxes, e.masks, e.strokes) for e in encoded))))


def _encode_one(prompt: SlicePrompt, transform: ImageTransform, low_res: int, with_maps: bool,
                device) -> PromptTensors:
    height, width = transform.original_hw
    input_size = transform.input_size
    scale = torch.as_tensor(transform.scale_xy, dtype=torch.float32, device=device)
    limit = torch.tensor([width - 1.0, height - 1.0], device=device)

    def to_input(xy) -> torch.Tensor:  # image pixels (clipped to the image) → model-input pixels
        return torch.minimum(torch.as_tensor(np.asarray(xy), dtype=torch.float32, device=device).clamp(min=0), limit) * scale

    slots = [StrokeSlot(to_input(stroke.array)[None], False, torch.tensor([stroke.positive], device=device))
             for stroke in prompt.scribbles]
    slots += [StrokeSlot(to_input(stroke.array)[None], True, torch.tensor([stroke.positive], device=device))
              for stroke in prompt.lassos]
    strokes = encode_strokes(slots, input_size, low_res, with_maps)
    points = labels = None
    if prompt.points:
        points = to_input(prompt.points_array())[None]
        labels = torch.as_tensor(prompt.labels_array(), device=device)[None]
    if strokes.points is not None:
        points = strokes.points if points is None else torch.cat([points, strokes.points], dim=1)
        labels = strokes.labels if labels is None else torch.cat([labels, strokes.labels], dim=1)
    boxes = None
    if prompt.box is not None:
        boxes = torch.as_tensor(transform.boxes_to_input(prompt.pixel_box()[None]), dtype=torch.float32, device=device)
    if strokes.boxes is not None:
        boxes = strokes.boxes if boxes is None else torch.cat([torch.minimum(boxes[:, :2], strokes.boxes[:, :2]),
                                                               torch.maximum(boxes[:, 2:], strokes.boxes[:, 2:])], 1)
    masks = _dense_logits(prompt, transform, low_res, device)
    return PromptTensors(points, labels, boxes, masks, strokes.maps)


def _dense_logits(prompt: SlicePrompt, transform: ImageTransform, low_res: int, device) -> torch.Tensor | None:
    if prompt.mask_input is not None:
        logits = mask_input_array(prompt.mask_input, low_res)
        return torch.as_tensor(logits, device=device)[None, None]
    if prompt.seed_mask is not None:
        return torch.as_tensor(mask_to_low_res_logits(prompt.seed_mask, low_res), device=device)[None, None]
    return None


def mask_input_array(mask_input, low_res: int) -> np.ndarray:
    """(L, L) float32 logits from an earlier result's `low_res_logits` ((L, L) or (1, L, L))."""
    try:
        logits = np.asarray(mask_input, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"mask_input: expected low-res logits, got {type(mask_input).__name__}") from None
    if logits.shape == (1, low_res, low_res):
        logits = logits[0]
    if logits.shape != (low_res, low_res):
        raise InputError(f"mask_input: expected low-res logits of shape ({low_res}, {low_res}) or "
                         f"(1, {low_res}, {low_res}), got {np.shape(mask_input)}")
    if not np.all(np.isfinite(logits)):
        raise InputError("mask_input: contains NaN or infinite values")
    return logits
