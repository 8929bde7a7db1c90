"""The prompts of one training group, simulated as a user (or the propagation walk) would give them.

* box -- the tight box, jittered; some targets then get correction clicks as a user would add;
* click -- a first click near the middle of the object, then 1..N correction rounds: the model
  segments with the clicks so far and its own previous logits as dense prompt, and the next click
  lands in its current error (false negative → positive, false positive → negative); some rounds
  add no click and only feed the logits back (SAM's interactive training);
* scribble, lasso -- strokes from the target and from the model's own error (`stroke_rounds`);
* walk -- the propagation step: the model segments a neighbouring slice from its (jittered) box,
  and that result prompts this slice as `VolumeSegmenter` does: its box grown by a margin, with
  its low-res logits and/or a positive point at its deepest pixel. The slice's target may be
  empty (the structure ended): the walk has to learn to stop there.

All masks and prompts stay on the training device (`simulated_user_gpu`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import simulated_user_gpu
from .stroke_rounds import StrokeRounds


@dataclass
class GroupPrompt:
    embeddings: torch.Tensor
    early: torch.Tensor
    points: tuple[torch.Tensor, torch.Tensor] | None
    boxes: torch.Tensor | None
    mask_input: torch.Tensor | None
    prompt_free: bool
    targets: torch.Tensor  # (B, 1, s, s) float at the low-res logits' size
    strokes: torch.Tensor | None = None  # (B, 4, s, s) stroke maps (scribble and lasso groups)


class PromptSimulator:
    def __init__(self, trainer):
        self.trainer = trainer
        self.config = trainer.config
        self.bank = trainer.bank
        self.device = trainer.device
        self.strokes = StrokeRounds(self)

    # --- helpers ---------------------------------------------------------------------------
    def _features(self, image_rows: torch.Tensor):
        bank = self.bank
        return bank.embeddings[image_rows].float(), bank.early[image_rows].float()

    def _decode(self, embeddings, early, points, boxes, mask_input, strokes=None):
        trainer = self.trainer
        with torch.no_grad(), trainer._autocast():
            output = trainer.step_module(embeddings, early, points, boxes, mask_input, False, strokes)
        return output.masks.float()

    def _predicted(self, logits: torch.Tensor, size: int) -> torch.Tensor:
        if logits.shape[-1] != size:
            logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        return logits[:, 0] > 0

    def low_res_targets(self, masks: torch.Tensor) -> torch.Tensor:
        targets = masks[:, None].float()
        size = 4 * self.trainer.model.backbone.prompt_encoder.image_embedding_size[0]
        if targets.shape[-1] != size:
            targets = (F.interpolate(targets, size=(size, size), mode="area") > 0.5).float()
        return targets

    def _correction_rounds(self, rounds: int, embeddings, early, masks, points, labels, boxes, generator,
                           rng: np.random.Generator):
        """Run `rounds` correction rounds; returns (points, labels, mask_input) for the final decode."""
        mask_input = None
        for _ in range(rounds):
            prompt_points = (points, labels) if points is not None else None
            logits = self._decode(embeddings, early, prompt_points, boxes, mask_input)
            mask_input = logits
            if rng.random() < self.config.no_click_probability:
                continue
            predicted = self._predicted(logits, masks.shape[-1])
            click, label, has_error = simulated_user_gpu.error_clicks(masks, predicted, generator)
            if points is None:
                points, labels = click[:, None], label[:, None]
                continue
            # a target with no error left repeats its last click (the batch keeps one click count)
            click = torch.where(has_error[:, None], click, points[:, -1])
            label = torch.where(has_error, label, labels[:, -1])
            points, labels = torch.cat([points, click[:, None]], 1), torch.cat([labels, label[:, None]], 1)
        return points, labels, mask_input

    def _rounds(self, rng: np.random.Generator, probability: float) -> int:
        if self.config.max_refinement_clicks < 1 or rng.random() >= probability:
            return 0
        return int(rng.integers(1, self.config.max_refinement_clicks + 1))

    # --- the groups ------------------------------------------------------------------------
    def group(self, kind: str, indices: list[int], rng: np.random.Generator, generator: torch.Generator) -> GroupPrompt:
        bank, config = self.bank, self.config
        targets = [bank.targets[i] for i in indices]
        image_rows = torch.as_tensor([t.image_index for t in targets], device=self.device)
        masks = bank.masks[torch.as_tensor([t.mask_index for t in targets], device=self.device)]
        embeddings, early = self._features(image_rows)
        side = masks.shape[-1]
        points = labels = boxes = mask_input = None
        if kind == "auto":
            return GroupPrompt(embeddings, early, None, None, None, True, self.low_res_targets(masks))
        if kind in ("scribble", "lasso"):
            inputs = self.strokes.group(kind, embeddings, early, masks, rng, generator)
            return GroupPrompt(embeddings, early, inputs["points"], inputs["boxes"], inputs["mask_input"], False,
                               self.low_res_targets(masks), inputs["strokes"])
        if kind == "box":
            tight, _ = simulated_user_gpu.tight_boxes(masks)
            boxes = simulated_user_gpu.perturbed_boxes(tight, side, config.box_jitter, 0.0, generator)
            rounds = self._rounds(rng, config.box_refinement_probability)
            points, labels, mask_input = self._correction_rounds(rounds, embeddings, early, masks, None, None, boxes,
                                                                 generator, rng)
        elif kind == "click":
            first, _ = simulated_user_gpu.first_clicks(masks, generator)
            points = first[:, None]
            labels = torch.ones(len(indices), 1, dtype=torch.long, device=self.device)
            rounds = self._rounds(rng, config.refinement_probability)
            points, labels, mask_input = self._correction_rounds(rounds, embeddings, early, masks, points, labels, None,
                                                                 generator, rng)
        elif kind == "walk":
            boxes, points, labels, mask_input = self._walk_prompt(targets, side, generator)
        else:
            raise ValueError(f"unknown prompt kind {kind!r}")
        prompt_points = (points, labels) if points is not None else None
        return GroupPrompt(embeddings, early, prompt_points, boxes, mask_input, False, self.low_res_targets(masks))

    def _walk_prompt(self, targets, side: int, generator: torch.Generator):
        config, bank, device = self.config, self.bank, self.device
        count = len(targets)
        neighbour_rows = torch.as_tensor([t.neighbour_image for t in targets], device=device)
        neighbour_masks = bank.masks[torch.as_tensor([t.neighbour_mask for t in targets], device=device)]
        embeddings, early = self._features(neighbour_rows)
        tight, _ = simulated_user_gpu.tight_boxes(neighbour_masks)
        seed_boxes = simulated_user_gpu.perturbed_boxes(tight, side, config.box_jitter, 0.0, generator)
        logits = self._decode(embeddings, early, None, seed_boxes, None)
        previous = self._predicted(logits, side)
        found, found_any = simulated_user_gpu.tight_boxes(previous)
        # where the model found nothing on the neighbour, the walk would have stopped: use the truth
        previous_boxes = torch.where(found_any[:, None], found, tight)
        margin = torch.rand(count, generator=generator, device=device) * config.walk_box_margin
        boxes = simulated_user_gpu.perturbed_boxes(previous_boxes, side, config.box_jitter, margin, generator)
        mask_input = None
        if float(torch.rand(1, generator=generator, device=device)) < config.walk_logits_probability:
            mask_input = logits
        points = labels = None
        if float(torch.rand(1, generator=generator, device=device)) < config.walk_point_probability:
            inside = torch.where(found_any.view(-1, 1, 1), previous, neighbour_masks)
            point, _ = simulated_user_gpu.deepest_pixels(inside)
            points, labels = point[:, None], torch.ones(count, 1, dtype=torch.long, device=device)
        return boxes, points, labels, mask_input
