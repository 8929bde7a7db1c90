"""The scribble and lasso groups of training (`prompt_mix` kinds "scribble" and "lasso"), drawn by
a simulated user from the target and from the model's own errors, next to the click, box and walk
groups of `interactive` (which they leave untouched: clicks and boxes train as before).

* scribble -- with probability `scribble_first_probability` the first interaction is a positive
  scribble on the target (along its middle, or in 30 % of groups along the inside of its edge);
  otherwise a central click (or, in 30 % of those groups, a jittered box) comes first. Then come
  correction rounds (1..`max_stroke_rounds`, or 0.. after a first scribble): the model segments with
  everything so far and its previous logits as the dense prompt, and the next scribble lies in one
  connected part of its larger error — false negatives → positive, false positives → negative.
* lasso -- a positive loop around the target (its outline pushed out by 5-40 % of its radius, with
  radial noise), then 0..`max_stroke_rounds` − 1 correction scribbles; or, with probability
  `negative_lasso_probability`, a central click first and then a negative loop around one part of
  its false positives (where it has none, around a patch of background away from the target:
  a true "not here" that must not hurt the mask).
Strokes are encoded by `prompt_encoding.encode_strokes`, as at inference.
"""

from __future__ import annotations

import numpy as np
import torch

from ..prompt_encoding import StrokeSlot, encode_strokes
from . import simulated_strokes_gpu as strokes
from . import simulated_user_gpu

CONTOUR_SHARE = 0.3          # first scribbles along the inside of the edge instead of the middle
BOX_FIRST_SHARE = 0.3        # groups whose first prompt is a box, when a scribble does not come first
LASSO_MARGIN = (0.05, 0.4)   # of the target's equivalent radius (+ 1 pixel)
LASSO_JITTER = 0.08
LASSO_VERTICES = 24


class StrokeRounds:
    def __init__(self, simulator):
        self.simulator = simulator
        self.config = simulator.config
        self.device = simulator.device
        model = simulator.trainer.model
        self.input_size = model.backbone.input_size
        self.low_res = 4 * model.backbone.prompt_encoder.image_embedding_size[0]
        self.with_maps = model.reads_stroke_maps

    # --- one group -----------------------------------------------------------------------------
    def group(self, kind: str, embeddings, early, masks: torch.Tensor, rng: np.random.Generator,
              generator: torch.Generator) -> dict:
        """The final prompt of a scribble or lasso group: points, labels, boxes, mask_input, stroke maps."""
        state = _State(len(masks), self.device)
        rounds = self._rounds(rng)
        if kind == "scribble":
            if rng.random() < self.config.scribble_first_probability:
                vertices, _ = self._first_scribble(masks, rng, generator)
                state.slots.append(StrokeSlot(vertices, False, torch.ones(len(masks), dtype=torch.bool,
                                                                          device=self.device)))
                rounds = max(0, rounds - 1)
            else:
                self._first_click_or_box(state, masks, rng, generator)
                rounds = max(1, rounds)
        else:
            if rng.random() < self.config.negative_lasso_probability:
                self._negative_lasso(state, embeddings, early, masks, generator)
            else:
                loops, _ = strokes.perturbed_lassos(masks, generator, LASSO_VERTICES, LASSO_MARGIN, LASSO_JITTER)
                state.slots.append(StrokeSlot(loops, True, torch.ones(len(masks), dtype=torch.bool, device=self.device)))
            rounds = max(0, rounds - 1)
        for _ in range(rounds):
            self._correction(state, embeddings, early, masks, generator)
        return self.inputs(state)

    def _rounds(self, rng: np.random.Generator) -> int:
        return int(rng.integers(1, self.config.max_stroke_rounds + 1)) if self.config.max_stroke_rounds > 0 else 0

    def _first_scribble(self, masks, rng, generator):
        if rng.random() < CONTOUR_SHARE:
            return strokes.contour_scribbles(masks, generator, self.config.stroke_vertices)
        return strokes.region_scribbles(masks, generator, self.config.stroke_vertices)

    def _first_click_or_box(self, state: _State, masks, rng, generator) -> None:
        if rng.random() < BOX_FIRST_SHARE:
            tight, _ = simulated_user_gpu.tight_boxes(masks)
            state.boxes = simulated_user_gpu.perturbed_boxes(tight, masks.shape[-1], self.config.box_jitter, 0.0,
                                                             generator)
        else:
            first, _ = simulated_user_gpu.first_clicks(masks, generator)
            state.points = first[:, None]
            state.labels = torch.ones(len(masks), 1, dtype=torch.long, device=self.device)

    def _negative_lasso(self, state: _State, embeddings, early, masks, generator) -> None:
        first, _ = simulated_user_gpu.first_clicks(masks, generator)
        state.points = first[:, None]
        state.labels = torch.ones(len(masks), 1, dtype=torch.long, device=self.device)
        predicted = self._decode(state, embeddings, early, masks)
        extra = predicted & ~masks
        seeds, has_extra = strokes.region_scribbles(extra, generator, 1)
        leak = strokes.connected_part(extra, seeds[:, 0])
        region = torch.where(has_extra.view(-1, 1, 1), leak, self._background_patch(masks, generator))
        loops, _ = strokes.perturbed_lassos(region, generator, LASSO_VERTICES, (0.05, 0.2), LASSO_JITTER)
        state.slots.append(StrokeSlot(loops, True, torch.zeros(len(masks), dtype=torch.bool, device=self.device)))

    def _background_patch(self, masks: torch.Tensor, generator) -> torch.Tensor:
        """A disk of background (5-12 % of the side across) at least 6 % of the side from the target."""
        side = masks.shape[-1]
        away = strokes.depth(~masks) > 0.06 * side
        away = torch.where(away.flatten(1).any(dim=1).view(-1, 1, 1), away, ~masks)
        centres = strokes.sample_pixels(away, 1, generator)[0][:, 0]
        radius = (0.05 + 0.07 * torch.rand(len(masks), generator=generator, device=self.device)) * side / 2
        ys = torch.arange(side, device=self.device, dtype=torch.float32).view(1, -1, 1)
        xs = torch.arange(side, device=self.device, dtype=torch.float32).view(1, 1, -1)
        disk = (xs - centres[:, 0].view(-1, 1, 1)) ** 2 + (ys - centres[:, 1].view(-1, 1, 1)) ** 2 <= radius.view(-1, 1, 1) ** 2
        return disk & ~masks

    def _correction(self, state: _State, embeddings, early, masks, generator) -> None:
        predicted = self._decode(state, embeddings, early, masks)
        missed, extra = masks & ~predicted, predicted & ~masks
        positive = missed.sum(dim=(1, 2)) >= extra.sum(dim=(1, 2))
        region = torch.where(positive.view(-1, 1, 1), missed, extra)
        vertices, has_error = strokes.region_scribbles(region, generator, self.config.stroke_vertices)
        # a target with no error left gets one more positive stroke on itself (the batch keeps one shape)
        fallback, _ = strokes.region_scribbles(masks, generator, self.config.stroke_vertices)
        vertices = torch.where(has_error.view(-1, 1, 1), vertices, fallback)
        state.slots.append(StrokeSlot(vertices, False, positive | ~has_error))

    # --- decoding ------------------------------------------------------------------------------
    def inputs(self, state: _State) -> dict:
        encoded = encode_strokes(state.slots, self.input_size, self.low_res, self.with_maps)
        points, labels, boxes = state.points, state.labels, state.boxes
        if encoded.points is not None:
            points = encoded.points if points is None else torch.cat([points, encoded.points], dim=1)
            labels = encoded.labels if labels is None else torch.cat([labels, encoded.labels], dim=1)
        if encoded.boxes is not None:
            boxes = encoded.boxes if boxes is None else torch.cat(
                [torch.minimum(boxes[:, :2], encoded.boxes[:, :2]), torch.maximum(boxes[:, 2:], encoded.boxes[:, 2:])], 1)
        return {"points": None if points is None else (points, labels), "boxes": boxes,
                "mask_input": state.mask_input, "strokes": encoded.maps}

    def _decode(self, state: _State, embeddings, early, masks) -> torch.Tensor:
        inputs = self.inputs(state)
        logits = self.simulator._decode(embeddings, early, inputs["points"], inputs["boxes"], inputs["mask_input"],
                                        strokes=inputs["strokes"])
        state.mask_input = logits
        return self.simulator._predicted(logits, masks.shape[-1])


class _State:
    """The prompt of a group so far."""

    def __init__(self, batch: int, device):
        self.points: torch.Tensor | None = None   # (B, N, 2) clicks
        self.labels: torch.Tensor | None = None
        self.boxes: torch.Tensor | None = None
        self.slots: list[StrokeSlot] = []
        self.mask_input: torch.Tensor | None = None
