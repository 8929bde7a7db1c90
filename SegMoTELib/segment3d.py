"""3D segmentation of a volume with a 2D promptable predictor.

`VolumeSegmenter` takes a `SlicePrompt` in RAS millimetres (what Slicer markups and ROIs give) or
in voxel indices (rotated ROIs become RAS corners through `geometry`), segments one slice, and
extends a slice mask through the volume by propagation: each next slice is prompted with what the
model found on the previous one until the structure ends (`walk_rules.PropagationRules` says how it
prompts and when it stops). A correction on one slice of a propagated segment re-walks outward from
it until the new masks agree with the old ones (`corrections`). All slice and coordinate mapping goes
through `geometry`; all model work through the predictor's public API (`set_image`, `predict`,
`predict_auto`, `embed_images`).

The whole volume is mapped to 8 bits once, with one window, so that neighbouring slices look alike
to the model (a per-slice window would change contrast from slice to slice and derail the walk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import InputError
from .geometry import (
    SliceRef,
    extract_slice,
    insert_slice,
    prompt_on_slice,
    prompt_slice,
    ras_box_to_slice_box,
    slice_axis_for,
    slice_count,
    slice_extent_of_box,
)
from .intensity import IntensityMapping, to_uint8
from .slice_prompt import SlicePrompt
from .volume import Volume
from .walk_rules import (
    PropagationRules,
    WalkJudge,
    WalkStop,
    bridge_prompt,
    clip_to_box,
    follow_prompt,
    mean_grey,
    modality_family,
    presence_threshold,
    uses_learned_decision,
)

Progress = Callable[[int, int], None]
PREFETCH_SLICES = 64  # slices embedded in one batch ahead of the walk on a GPU


@dataclass
class SliceResult:
    """One segmented slice: where it is, the mask in slice pixels and in the volume."""

    ref: SliceRef
    mask2d: np.ndarray          # bool (H, W), display orientation of `ref`
    score: float                # the model's predicted IoU
    low_res_logits: np.ndarray  # float32 (256, 256), a dense prompt for refinement / propagation
    geometry: Volume = field(repr=False)  # the volume the slice belongs to
    decoder: str = "base"       # "segmote" or "base"
    presence: float | None = None  # the walk's continuation probability (adapters with a presence head)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask2d))

    @cached_property
    def labelmap(self) -> np.ndarray:
        """bool [k, j, i]: the mask placed in the volume (built on first use)."""
        labelmap = np.zeros(self.geometry.array.shape[:3], dtype=bool)
        insert_slice(labelmap, self.ref, self.mask2d, geometry=self.geometry)
        return labelmap


class VolumeSegmenter:
    """Slice prompts in RAS, propagation, 3D boxes, corrections and prompt-free slices on one volume."""

    def __init__(self, predictor, volume: Volume, mapping: IntensityMapping | None = None):
        if not isinstance(volume, Volume):
            raise InputError(f"volume: expected a SegMoTELib Volume, got {type(volume).__name__}")
        self.predictor = predictor
        self.volume = volume
        self.mapping = mapping or IntensityMapping(modality=volume.modality or "auto")
        voxels = volume.array if volume.rgb else to_uint8(volume.array, self.mapping)
        # The 8-bit copy shares the geometry, so geometry.extract_slice reads it like the source.
        self.display = volume.with_array(voxels)
        self.family = "other" if volume.rgb else modality_family(self.mapping, volume.array)
        self._walk_prompt_extra: dict = {}   # what a walk adds to each prompt (the decoder a learned walk needs)
        self.last_stops: list[WalkStop] = []  # why the last walk's directions ended (diagnostics, CLI message)

    # --- slices -------------------------------------------------------------------------------
    def slice_image(self, ref: SliceRef) -> np.ndarray:
        """The 8-bit slice the model sees, in display orientation."""
        return extract_slice(self.display, ref)

    def set_slice(self, ref: SliceRef) -> np.ndarray:
        """Set the 8-bit slice `ref` on the predictor (embedded or taken from its cache); returns it."""
        image = self.slice_image(ref)
        self.predictor.set_image(image)
        return image

    def _result(self, ref: SliceRef, prediction, clip_box=None) -> SliceResult:
        mask2d = np.asarray(prediction.masks[0], dtype=bool)
        if clip_box is not None:
            mask2d = clip_to_box(mask2d, clip_box)
        presence = getattr(prediction, "presence", None)
        return SliceResult(ref=ref, mask2d=mask2d, score=float(np.asarray(prediction.scores).reshape(-1)[0]),
                           low_res_logits=np.asarray(prediction.low_res_logits[0], dtype=np.float32),
                           geometry=self.volume, decoder=prediction.decoder,
                           presence=None if presence is None else float(np.asarray(presence).reshape(-1)[0]))

    def predict_on(self, ref: SliceRef, clip_box=None, **prompt) -> SliceResult:
        """Set slice `ref` and segment it with a prompt in its pixels (points, labels, box, mask_input)."""
        self.set_slice(ref)
        return self._result(ref, self.predictor.predict(**prompt), clip_box)

    def segment_slice(self, prompt: SlicePrompt, orientation="axial", slice_index: int | None = None) -> SliceResult:
        """Segment the slice of `orientation` that `prompt` (RAS or IJK; pixels with `slice_index`)
        is on, or the one at `slice_index`. Every coordinate is projected onto that slice
        (`geometry.prompt_on_slice`); clicks outside the volume are refused before any model work."""
        if not isinstance(prompt, SlicePrompt):
            raise InputError(f"prompt: expected a SlicePrompt, got {type(prompt).__name__}")
        if prompt.empty:
            raise InputError("prompt: give a click, a box, a scribble, a lasso, an earlier result or a seed mask")
        ref = prompt_slice(self.volume, orientation, prompt, slice_index)
        on_slice = prompt_on_slice(self.volume, ref, prompt)  # before the (costly) embedding: bad prompts fail fast
        self.set_slice(ref)
        return self._result(ref, self.predictor.predict(on_slice))

    def _slice_for_prompt(self, orientation, slice_index) -> SliceRef:
        return prompt_slice(self.volume, orientation, SlicePrompt("ras"), slice_index)

    def segment_auto(self, orientation="axial", slice_index: int = 0) -> SliceResult:
        """Prompt-free mask of one slice (needs a predictor with a trained adapter)."""
        ref = self._slice_for_prompt(orientation, slice_index)
        self.set_slice(ref)
        return self._result(ref, self.predictor.predict_auto())

    # --- propagation --------------------------------------------------------------------------
    def rules(self, rules: PropagationRules | None = None) -> PropagationRules:
        """`rules`, or the default rules with the prompt the adapter declares."""
        if rules is not None and not isinstance(rules, PropagationRules):
            raise InputError(f"rules: expected PropagationRules, got {type(rules).__name__}")
        return rules or PropagationRules.for_predictor(self.predictor)

    def judge(self, rules: PropagationRules, seed: SliceResult, in_box: bool) -> WalkJudge:
        """The walk's decision for this volume: learned (the presence head, at the threshold calibrated
        for the volume's modality family) or the hand rules."""
        learned = uses_learned_decision(rules, self.predictor)
        threshold = presence_threshold(rules, self.predictor, self.family, in_box) if learned else 0.0
        return WalkJudge(rules, learned, threshold, in_box, mean_grey(self.slice_image(seed.ref), seed.mask2d))

    def propagate(self, seed: SliceResult, slice_range: tuple[int, int] | None = None,
                  rules: PropagationRules | None = None, progress: Progress | None = None) -> np.ndarray:
        """Extend the seed's mask slice by slice in both directions; bool labelmap [k, j, i].

        The walk stays within `slice_range` (inclusive, along the seed's axis) and ends where
        `rules` say the structure ends; `last_stops` then says where and why each direction ended.
        `progress(done, total)` is called after each slice: `done` slices segmented, `total` = done
        plus the slices the directions still walking could yet reach (it shrinks when a direction
        ends, so a progress bar ends where the walk ends).
        """
        return self._propagate(seed, self._checked_range(seed.ref, slice_range), self.rules(rules), progress,
                               clip_box=None)

    def _checked_range(self, ref: SliceRef, slice_range) -> tuple[int, int]:
        count = slice_count(self.volume, ref.axis)
        if slice_range is None:
            return 0, count - 1
        low, high = (int(v) for v in slice_range)
        if not 0 <= low <= ref.index <= high < count:
            raise InputError(f"slice_range: expected first <= seed slice {ref.index} <= last within 0..{count - 1}, "
                             f"got {tuple(slice_range)}")
        return low, high

    def _propagate(self, seed: SliceResult, span: tuple[int, int], rules: PropagationRules,
                   progress: Progress | None, clip_box) -> np.ndarray:
        labelmap = seed.labelmap.copy()
        self.last_stops = []
        accepted = self.walk_both_ways(seed, span, rules, progress, clip_box)
        for result in accepted.values():
            insert_slice(labelmap, result.ref, result.mask2d, geometry=self.volume)
        return labelmap

    def walk_both_ways(self, seed: SliceResult, span: tuple[int, int], rules: PropagationRules,
                       progress: Progress | None, clip_box, settles=None) -> dict[int, SliceResult]:
        """{slice index: result} of the seed and every slice the walk kept, both directions.
        `settles(result)` (corrections): (reason, detail) where the old mask should stay (the new one
        agrees with it, or departs from it), which ends that direction without keeping the new one."""
        tracker = WalkProgress(progress, seed.ref.index, span)
        accepted = {seed.ref.index: seed}
        if seed.area > 0:
            judge = self.judge(rules, seed, in_box=clip_box is not None)
            # the presence head reads the SegMoTE decoder: a learned walk asks it for every slice, boxes
            # included (the predictor's policy may send boxes to the base decoder, which has no head)
            self._walk_prompt_extra = {"decoder": "segmote"} if judge.learned else {}
            for direction, end in ((+1, span[1]), (-1, span[0])):
                for result in self._walk(seed, direction, end, rules, judge, clip_box, tracker, settles):
                    accepted[result.ref.index] = result
                tracker.end(direction)
            if rules.refine:
                accepted = self._refine(accepted, seed, clip_box)
        tracker.finish()
        return accepted

    def _step(self, previous: SliceResult, index: int, rules: PropagationRules, clip_box):
        """(result, image) of slice `index` prompted from `previous`; None for a blank slice."""
        ref = SliceRef(previous.ref.axis, index)
        image = self.slice_image(ref)
        if int(image.max()) == int(image.min()):
            return None, image  # padding, outside the scan: nothing to follow
        self.predictor.set_image(image)
        prompt = {**follow_prompt(previous, rules, clip_box), **self._walk_prompt_extra}
        return self._result(ref, self.predictor.predict(**prompt), clip_box), image

    def _walk(self, seed: SliceResult, direction: int, end: int, rules: PropagationRules, judge: WalkJudge,
              clip_box, tracker, settles):
        """Yield the kept SliceResults from the seed's neighbour towards `end`; record why it ended."""
        previous = seed
        prefetch = _Prefetcher(self, seed.ref.axis, range(seed.ref.index + direction, end + direction, direction))
        reason = ("end of range", "")
        index = seed.ref.index + direction
        while (end - index) * direction >= 0:
            prefetch.reach(abs(index - seed.ref.index) - 1)
            result, image = self._step(previous, index, rules, clip_box)
            if result is None:
                reason = ("blank slice", "")
                break
            tracker.step(direction)
            settled = None if settles is None else settles(result)
            if settled is not None:
                reason = settled
                break
            verdict = judge.verdict(previous, result, image)
            if verdict is not None:
                crossed = self._cross(previous, index, direction, end, rules, judge, clip_box, tracker, settles)
                if not crossed and self._sweeps(rules, judge, clip_box, settles):
                    result, verdict = self._box_afresh(previous, index, clip_box, judge)
                    crossed = [] if result is None else [result]
                    if not crossed:  # absent here: skipped, and the walk goes on to the box's end
                        reason = verdict
                        index += direction
                        continue
                if not crossed:
                    reason = verdict
                    break
                yield from crossed
                previous = crossed[-1]
                index = previous.ref.index + direction
                reason = ("end of range", "")
                continue
            yield result
            judge.accepted(image, result)
            previous = result
            index += direction
            reason = ("end of range", "")
        self.last_stops.append(WalkStop(direction, previous.ref.index, *reason))

    @staticmethod
    def _sweeps(rules: PropagationRules, judge: WalkJudge, clip_box, settles) -> bool:
        """Whether a doubted slice is tried afresh instead of ending the walk: in a 3D box, with the
        learned decision (a presence that means the same for any prompt), not in a correction's re-walk."""
        return rules.sweep_box and judge.learned and clip_box is not None and settles is None

    def _box_afresh(self, previous: SliceResult, index: int, clip_box, judge: WalkJudge):
        """The slice prompted with the 3D box alone; (result, None) when present, else (None, why)."""
        ref = SliceRef(previous.ref.axis, index)
        result = self.predict_on(ref, clip_box, box=clip_box, **self._walk_prompt_extra)
        verdict = judge.verdict(previous, result, self.slice_image(ref))
        return (result, None) if verdict is None else (None, verdict)

    def _cross(self, previous: SliceResult, doubtful: int, direction: int, end: int, rules: PropagationRules,
               judge: WalkJudge, clip_box, tracker, settles) -> list[SliceResult]:
        """Patience: after a doubtful slice, try the slices beyond it from the last kept mask. When one
        passes, the doubtful slices between are prompted again from both sides and kept with it."""
        for gap in range(1, rules.patience_for(judge.learned, judge.in_box) + 1):
            beyond = doubtful + gap * direction
            if (end - beyond) * direction < 0:
                return []
            result, image = self._step(previous, beyond, rules, clip_box)
            if result is None:
                return []
            tracker.step(direction)
            if settles is not None and settles(result) is not None:
                return []
            if judge.verdict(previous, result, image) is None:
                judge.accepted(image, result)
                between = [self.predict_on(SliceRef(previous.ref.axis, doubtful + step * direction), clip_box,
                                           **bridge_prompt(previous, result, clip_box), **self._walk_prompt_extra)
                           for step in range(gap)]
                return between + [result]
        return []

    def _refine(self, accepted: dict[int, SliceResult], seed: SliceResult, clip_box) -> dict[int, SliceResult]:
        """Second pass: each slice between two accepted neighbours, prompted with both of them."""
        refined = dict(accepted)
        for index in sorted(accepted):
            below, above = accepted.get(index - 1), accepted.get(index + 1)
            if index == seed.ref.index or below is None or above is None:
                continue
            result = self.predict_on(accepted[index].ref, clip_box, **bridge_prompt(below, above, clip_box))
            if result.area > 0 and result.score > accepted[index].score:
                refined[index] = result
        return refined

    # --- 3D box -------------------------------------------------------------------------------
    def segment_box3d(self, corners_ras, orientation="auto", progress: Progress | None = None,
                      rules: PropagationRules | None = None) -> np.ndarray:
        """Segment what a 3D box holds; bool labelmap [k, j, i].

        corners_ras: (2, 3) opposite corners of a RAS-aligned box or (8, 3) corners of a rotated
        ROI (`geometry.ijk_box_corners_ras` for a box in voxel indices). The slices run along
        `orientation` ("auto": the acquisition axis). The middle slice of the box's extent is
        prompted with the box, then the mask is propagated no further than the box's first and last
        slices, and every mask is clipped to the box's extent on the slice.
        """
        axis = slice_axis_for(self.volume, orientation)
        first, last = slice_extent_of_box(self.volume, axis, corners_ras)
        middle = SliceRef(axis, (first + last) // 2)
        box = ras_box_to_slice_box(self.volume, middle, corners_ras)
        seed = self.predict_on(middle, clip_box=box, box=box)
        return self._propagate(seed, (first, last), self.rules(rules), progress, clip_box=box)

    # --- corrections --------------------------------------------------------------------------
    def correct(self, labelmap: np.ndarray, prompt: SlicePrompt, orientation="auto", slice_index: int | None = None,
                rules: PropagationRules | None = None, progress: Progress | None = None,
                agreement: float | None = None):
        """Correct one slice of a segment (bool labelmap [k, j, i]) with `prompt` (RAS or IJK; pixels
        with `slice_index`) and carry the fix outward; see `corrections.correct_segment`. Returns a
        `corrections.Correction`."""
        from .corrections import DEFAULT_AGREEMENT, correct_segment

        return correct_segment(self, labelmap, prompt, orientation, slice_index, self.rules(rules), progress,
                               DEFAULT_AGREEMENT if agreement is None else agreement)


class WalkProgress:
    """Reports a walk's progress as (slices done, done + slices still reachable): the total shrinks
    when a direction ends, so a bar ends where the walk ends instead of at the volume's edge."""

    def __init__(self, callback: Progress | None, seed_index: int, span: tuple[int, int]):
        self.callback = callback
        self.done = 1
        self.remaining = {+1: span[1] - seed_index, -1: seed_index - span[0]}
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.done + sum(self.remaining.values()))

    def step(self, direction: int) -> None:
        self.done += 1
        self.remaining[direction] = max(self.remaining[direction] - 1, 0)
        self._report()

    def end(self, direction: int) -> None:
        self.remaining[direction] = 0
        self._report()

    def finish(self) -> None:
        self.remaining = {+1: 0, -1: 0}
        self._report()


# --- helpers -----------------------------------------------------------------------------------
class _Prefetcher:
    """On a GPU, embeds a walk's slices in chunks of PREFETCH_SLICES, one chunk ahead of the walk and
    in the background, so that the GPU embeds the next chunk while the walk decodes this one; on a
    CPU, nothing: the walk embeds each slice as it meets it (it may stop long before the end)."""

    def __init__(self, segmenter: VolumeSegmenter, axis: int, indices: range):
        device = getattr(segmenter.predictor, "device", None)
        self.enabled = getattr(device, "type", "cpu") != "cpu"
        self.segmenter, self.axis = segmenter, axis
        self.chunks = [indices[start:start + PREFETCH_SLICES] for start in range(0, len(indices), PREFETCH_SLICES)]
        self.launched = 0

    def reach(self, position: int) -> None:
        """The walk is at `position` (0-based) of its indices: keep its chunk and the next one queued."""
        if not self.enabled:
            return
        wanted = min(max(position, 0) // PREFETCH_SLICES + 2, len(self.chunks))
        while self.launched < wanted:
            self._launch(self.chunks[self.launched])
            self.launched += 1

    def _launch(self, chunk: range) -> None:
        images = [self.segmenter.slice_image(SliceRef(self.axis, index)) for index in chunk]
        kept = [image for image in images if int(image.max()) != int(image.min())]
        if kept:
            self.segmenter.predictor.embed_images(kept, batch_size=PREFETCH_SLICES, background=True)
