"""Corrections that re-propagate: fix one slice of a segment and carry the fix to its neighbours.

After a propagation the user corrects the slice that is wrong (a click, negative or positive, or a
box). The slice is segmented again with the correction and the segment's current mask there as
the dense prompt — the model's correction rounds were trained exactly so: clicks plus the previous
logits. The new mask then prompts its neighbours as a walk does (`walk_rules`), outward in both
directions, and each direction ends at the first slice where the new mask agrees with the old one
(Dice ≥ `agreement`): from there on the old segmentation already holds, and nothing beyond that
slice is touched. It also ends where a new mask barely overlaps the old one (Dice < `DEPARTURE`):
the walk has left the structure, and the old masks stay. A direction also ends where the walk's decision says the structure ended; the
old masks beyond stay as they were (a correction never erases slices it did not re-segment).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .geometry import SliceRef, extract_slice, insert_slice, prompt_on_slice, prompt_slice, slice_count
from .preprocessing import mask_to_low_res_logits
from .slice_prompt import SlicePrompt
from .walk_rules import PropagationRules, WalkStop

DEFAULT_AGREEMENT = 0.9   # Dice between the new and the old mask of a slice that ends the re-walk there
# Below this Dice with the old mask the re-walk has left the segment (a negative click at the LV's
# apex walked the new masks into the RV: 3D Dice 0.75 -> 0.20); the old mask stays there.
DEPARTURE = 0.35
LOW_RES = 256             # side of the decoder's low-res logits


@dataclass
class Correction:
    labelmap: np.ndarray                  # bool [k, j, i]: the segment after the correction
    slice_ref: SliceRef                   # the corrected slice
    changed: list[int] = field(default_factory=list)   # slice indices re-segmented (the corrected one included)
    stops: list[WalkStop] = field(default_factory=list)  # where and why each direction of the re-walk ended


def slice_dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def correct_segment(segmenter, labelmap, prompt: SlicePrompt, orientation, slice_index,
                    rules: PropagationRules, progress, agreement: float) -> Correction:
    """Re-segment the prompted slice of `labelmap` and re-walk outward until the masks agree again.

    `prompt`: the correction (clicks, a box, scribbles or lassos; RAS or IJK, or pixels with
    `slice_index`); the segment's current mask on that slice goes along as its dense prompt."""
    volume = segmenter.volume
    labelmap = np.asarray(labelmap)
    if labelmap.shape != volume.array.shape[:3]:
        raise InputError(f"labelmap: expected the segment as an array of shape {volume.array.shape[:3]} [k, j, i], "
                         f"got {labelmap.shape}")
    if not 0.0 < agreement <= 1.0:
        raise InputError(f"agreement: expected a Dice in (0, 1], got {agreement}")
    if not isinstance(prompt, SlicePrompt):
        raise InputError(f"prompt: expected a SlicePrompt, got {type(prompt).__name__}")
    if not prompt.has_geometry:
        raise InputError("correction: give the correcting click(s), a box, a scribble or a lasso")
    old = labelmap.astype(bool, copy=False)
    ref = prompt_slice(volume, orientation, prompt, slice_index)
    old_of = _OldSlices(volume, old, ref.axis)
    on_slice = prompt_on_slice(volume, ref, prompt.with_(mask_input=None, seed_mask=None))
    current = old_of(ref.index)
    if current.any():  # the segment as it is on this slice: the model corrects it rather than starting over
        on_slice = on_slice.with_(mask_input=mask_to_low_res_logits(current, LOW_RES))
    segmenter.set_slice(ref)
    seed = segmenter._result(ref, segmenter.predictor.predict(on_slice))  # noqa: SLF001
    corrected = old.copy()
    insert_slice(corrected, ref, seed.mask2d, geometry=volume)
    segmenter.last_stops = []
    if seed.area == 0:  # the correction removed the structure from this slice: nothing to carry
        return Correction(corrected, ref, [ref.index], [])

    def settles(result):
        old_mask = old_of(result.ref.index)
        dice = slice_dice(result.mask2d, old_mask)
        if dice >= agreement:
            return "agrees", f"Dice {dice:.2f} with the segment there"
        if old_mask.any() and dice < DEPARTURE:
            return "departs", f"Dice {dice:.2f} with the segment there"
        return None

    span = (0, slice_count(volume, ref.axis) - 1)
    accepted = segmenter.walk_both_ways(seed, span, rules, progress, None, settles=settles)
    for result in accepted.values():
        insert_slice(corrected, result.ref, result.mask2d, geometry=volume)
    return Correction(corrected, ref, sorted(accepted), list(segmenter.last_stops))


class _OldSlices:
    """The old segment's mask on a slice, in display orientation."""

    def __init__(self, volume, old: np.ndarray, axis: int):
        self.volume = volume.with_array(old.view(np.uint8))
        self.axis = axis

    def __call__(self, index: int) -> np.ndarray:
        return extract_slice(self.volume, SliceRef(self.axis, index)).astype(bool)
