"""Dice of scribbles and lassos (`segmote evaluate --prompt scribble|lasso`), with the simulated
user of `training.simulated_strokes` (protocol in MODEL_CARD.md):

  * scribble -- a positive scribble along the structure's centre line, then each further one along
    the centre line of the largest error region (positive in a miss, negative in a leak), with all
    strokes so far and the previous low-res logits; Dice after each scribble (a curve, like clicks);
  * negative scribble after an over-segmented click (measured in the same run) -- the evaluation's
    central click; where its mask leaks (false positives of at least 1 % of the target's area), a
    negative scribble along the centre line of the largest leak, with the click and the previous
    logits: the share of the false-positive area it removes (1 − false positives after / before,
    so a leak the scribble opens elsewhere counts against it);
  * lasso -- one positive lasso around the structure (`outline_lasso`); Dice.
"""

from __future__ import annotations

import numpy as np

from .slice_prompt import SlicePrompt
from .training.simulated_strokes import centre_line, correction_scribble, outline_lasso
from .training.simulated_user import central_click

LEAK_FRACTION = 0.01   # false positives below this share of the target's area are no leak to correct


def _dice(prediction: np.ndarray, target: np.ndarray) -> float:
    total = int(prediction.sum()) + int(target.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & target).sum()) / total


def scribble_dice_curve(view, mask: np.ndarray, scribbles: int) -> list[float]:
    """Dice after each of `scribbles` simulated scribbles."""
    positives, negatives = [centre_line(mask)], []
    prediction = view.predict(SlicePrompt.build(scribbles=positives))
    curve = [_dice(prediction.masks[0], mask)]
    while len(curve) < scribbles:
        correction = correction_scribble(mask, prediction.masks[0])
        if correction is None:
            curve.append(curve[-1])
            continue
        vertices, positive = correction
        (positives if positive else negatives).append(vertices)
        prompt = SlicePrompt.build(scribbles=positives, negative_scribbles=negatives,
                                   mask_input=prediction.low_res_logits[0])
        prediction = view.predict(prompt)
        curve.append(_dice(prediction.masks[0], mask))
    return curve


def lasso_dice(view, mask: np.ndarray) -> float:
    return _dice(view.predict(SlicePrompt.build(lassos=[outline_lasso(mask)])).masks[0], mask)


def negative_scribble_effect(view, mask: np.ndarray) -> dict | None:
    """After the central click: the leak, and what one negative scribble leaves of it; None when
    the click's mask does not leak."""
    x, y = central_click(mask)
    first = view.predict(SlicePrompt.build(points=[[x, y]]))
    predicted = first.masks[0]
    leak = predicted & ~mask
    if leak.sum() < max(1, LEAK_FRACTION * mask.sum()):
        return None
    vertices, _ = correction_scribble(np.zeros_like(mask), leak)  # the largest leak region's centre line
    second = view.predict(SlicePrompt.build(points=[[x, y]], negative_scribbles=[vertices],
                                            mask_input=first.low_res_logits[0]))
    remaining = int((second.masks[0] & ~mask).sum())  # every false positive left, new ones included
    return {"leak_pixels": int(leak.sum()), "removed": 1.0 - remaining / int(leak.sum()),
            "dice_before": _dice(predicted, mask), "dice_after": _dice(second.masks[0], mask)}
