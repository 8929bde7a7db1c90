"""3D segmentation of a volume with a 2D promptable predictor.

`VolumeSegmenter` takes prompts in RAS millimetres (what Slicer markups and ROIs give), segments
one patient-axis slice, and extends a slice mask through the volume by propagation: each next
slice is prompted with the box of the previous slice's mask (optionally with its low-res logits as
a dense prompt) until the structure ends. All slice and coordinate mapping goes through
`geometry`; all model work through the predictor's public API (`set_image`, `predict`,
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
    box_corners_ras,
    extract_slice,
    insert_slice,
    ras_box_to_slice_box,
    ras_to_slice_pixels,
    slice_axis_for,
    slice_count,
    slice_extent_of_box,
    slice_shape,
    slice_through,
)
from .intensity import IntensityMapping, to_uint8
from .volume import Volume, as_points, round_half_up

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

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask2d))

    @cached_property
    def labelmap(self) -> np.ndarray:
        """bool [k, j, i]: the mask placed in the volume (built on first use)."""
        labelmap = np.zeros(self.geometry.array.shape[:3], dtype=bool)
        insert_slice(labelmap, self.ref, self.mask2d, geometry=self.geometry)
        return labelmap


@dataclass(frozen=True)
class PropagationRules:
    """How the walk prompts each next slice and when it stops.

    Prompt: the previous slice's mask box (grown by `box_margin` of the slice's longest side),
    optionally with a positive point at the previous mask's deepest pixel (`use_point`) and its
    low-res logits as a dense prompt (`use_logits`), the walk prompt of issue 13's training.
    Stop (the structure ended, or the prompt caught something else): the mask vanishes; the model's
    predicted IoU falls below `min_score`; the area collapses below `min_area_ratio` or grows beyond
    `max_area_growth` times the previous slice's (a neighbour filled the box); the mask's centroid
    moves more than `max_centroid_shift` times the previous mask's equivalent radius (it jumped to a
    neighbour); or its mean 8-bit grey differs from the seed mask's by more than
    `max_intensity_shift` (tissue of another brightness: the IoU head stays confident there).
    `grey_reference="previous"` compares slice to slice instead, which follows an MRI bias field
    (CHAOS T2: the seed rule ends the liver walk at 14 of 26 slices) but lets the walk leak into
    neighbours (measured: more slices, lower Dice), hence not the default.
    Inside a 3D box (`segment_box3d`) the user has said where the structure ends, and the clip keeps
    every mask in the box; with `trust_box` only an empty mask stops the walk before the box's last
    slice. It then reaches every slice, but the masks it adds at the thin ends are poor with the
    shipped adapter (CHAOS kidney: 14/14 slices, Dice 0.79 vs 10/14, 0.84), hence not the default.
    `refine`: a second pass prompts every slice between two accepted neighbours again with both
    neighbours' masks (box of their union, their mean logits) and keeps the answer the model
    scores higher. None turns a rule off. `legacy()` is the walk before issue 13.

    The prompt defaults to the box alone: the shipped adapter was trained on boxes and on clicks
    but never on both at once, and a box plus a point derails it (3D box on CT spleen: Dice 0.85
    box alone, 0.15 with the point). An adapter trained on walk prompts says so in its metadata
    (`"propagation": {"use_point": true, "use_logits": true}`); `for_predictor` reads it.
    """

    min_score: float = 0.5              # predicted IoU below this ends the walk
    min_area_ratio: float = 0.2         # area below this fraction of the previous slice's ends the walk
    use_logits: bool = False            # also give the previous low-res logits as a dense prompt
    box_margin: float = 0.02            # previous-mask box grown by this fraction of the slice's longest side
    max_intensity_shift: float | None = 40.0  # mean 8-bit grey under the mask vs the seed's; None: off
    use_point: bool = False             # a positive point at the previous mask's deepest pixel
    max_area_growth: float | None = 2.5     # area above this multiple of the previous slice's ends the walk
    max_centroid_shift: float | None = 2.0  # centroid move, in previous equivalent radii, that ends the walk
    refine: bool = False                # second pass with both neighbours' masks
    use_box: bool = True                # the previous mask's box (off: point and/or logits alone)
    trust_box: bool = False             # in a 3D box, only an empty mask ends the walk before the box does
    grey_reference: str = "seed"        # brightness compared with the "seed" mask's or the "previous" slice's

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise InputError(f"min_score: expected a predicted IoU in 0..1, got {self.min_score}")
        if not 0.0 <= self.min_area_ratio < 1.0:
            raise InputError(f"min_area_ratio: expected a fraction in 0..1, got {self.min_area_ratio}")
        if not 0.0 <= self.box_margin < 0.5:
            raise InputError(f"box_margin: expected a fraction of the slice size in 0..0.5, got {self.box_margin}")
        if self.max_intensity_shift is not None and not 0.0 < self.max_intensity_shift <= 255.0:
            raise InputError(f"max_intensity_shift: expected 8-bit grey levels in (0, 255] or None, "
                             f"got {self.max_intensity_shift}")
        if self.max_area_growth is not None and not self.max_area_growth > 1.0:
            raise InputError(f"max_area_growth: expected a multiple above 1 or None, got {self.max_area_growth}")
        if not (self.use_box or self.use_point or self.use_logits):
            raise InputError("rules: the walk needs a prompt; use_box, use_point and use_logits are all off")
        if self.grey_reference not in ("previous", "seed"):
            raise InputError(f"grey_reference: expected 'previous' or 'seed', got {self.grey_reference!r}")
        if self.max_centroid_shift is not None and not self.max_centroid_shift > 0.0:
            raise InputError(f"max_centroid_shift: expected a positive number of radii or None, "
                             f"got {self.max_centroid_shift}")

    @classmethod
    def for_predictor(cls, predictor, **fields) -> PropagationRules:
        """The rules with the prompt fields an adapter declares in its metadata ("propagation"),
        then `fields`."""
        metadata = getattr(getattr(predictor, "model", None), "metadata", None)
        declared = metadata.get("propagation", {}) if isinstance(metadata, dict) else {}
        prompt_fields = ("use_point", "use_logits", "use_box", "refine")
        return cls(**{**{k: bool(v) for k, v in declared.items() if k in prompt_fields}, **fields})

    @classmethod
    def legacy(cls) -> PropagationRules:
        """The walk before issue 13: the previous box alone; stops on score, area collapse, brightness."""
        return cls(max_area_growth=None, max_centroid_shift=None)  # the other fields' defaults are the old walk's


@dataclass(frozen=True)
class WalkStop:
    """Where and why one direction of a walk ended (`VolumeSegmenter.last_stops`)."""

    direction: int     # +1 or -1 along the slice axis
    last_index: int    # the last slice kept (the seed's if none was)
    reason: str        # "end of range", "blank slice", "empty", "score", "area collapse", "area growth",
                       # "centroid jump", "brightness"


class VolumeSegmenter:
    """Slice prompts in RAS, propagation, 3D boxes and prompt-free slices on one volume."""

    def __init__(self, predictor, volume: Volume, mapping: IntensityMapping | None = None):
        if not isinstance(volume, Volume):
            raise InputError(f"volume: expected a SegMoTELib Volume, got {type(volume).__name__}")
        self.predictor = predictor
        self.volume = volume
        self.mapping = mapping or IntensityMapping(modality=volume.modality or "auto")
        voxels = volume.array if volume.rgb else to_uint8(volume.array, self.mapping)
        # The 8-bit copy shares the geometry, so geometry.extract_slice reads it like the source.
        self.display = volume.with_array(voxels)
        self.last_stops: list[WalkStop] = []  # why the last propagation's walks ended (diagnostics)

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
            mask2d = _clip_to_box(mask2d, clip_box)
        return SliceResult(ref=ref, mask2d=mask2d, score=float(np.asarray(prediction.scores).reshape(-1)[0]),
                           low_res_logits=np.asarray(prediction.low_res_logits[0], dtype=np.float32),
                           geometry=self.volume, decoder=prediction.decoder)

    def segment_slice(self, orientation="axial", points_ras=None, labels=None, box_ras=None, mask_input=None,
                      slice_index: int | None = None, seed_mask=None) -> SliceResult:
        """Segment the slice of `orientation` through the prompt (or at `slice_index`).

        points_ras (N, 3) RAS mm, labels (N,) 1 positive / 0 negative; box_ras (2, 3) opposite
        corners or (8, 3) corners in RAS mm, projected onto the slice. The slice is the one through
        the first point, else through the box centre, unless `slice_index` names it.
        seed_mask: bool (H, W), the slice's current mask in its display orientation (as
        `SliceResult.mask2d`), e.g. a segment made by another tool, which the prompt then refines
        instead of starting from scratch (instead of `mask_input`, an earlier result's logits).
        """
        if points_ras is None and box_ras is None and mask_input is None and seed_mask is None:
            raise InputError("prompt: give points_ras, box_ras, mask_input or seed_mask")
        ref = self._slice_for_prompt(orientation, points_ras, box_ras, slice_index)
        points = None
        if points_ras is not None:  # mapped before the (costly) embedding, so bad prompts fail fast
            height, width = slice_shape(self.volume, ref)
            points = np.clip(round_half_up(ras_to_slice_pixels(self.volume, ref, points_ras)), 0, [width - 1, height - 1])
        box = None if box_ras is None else ras_box_to_slice_box(self.volume, ref, box_ras)
        if seed_mask is not None and np.shape(seed_mask) != slice_shape(self.volume, ref):
            raise InputError(f"seed_mask: expected the slice's shape {slice_shape(self.volume, ref)}, "
                             f"got {np.shape(seed_mask)}")
        self.set_slice(ref)
        prompt = {"points": points, "labels": labels, "box": box, "mask_input": mask_input}
        if seed_mask is not None:  # only then: predictors that take no seed mask (remote_cli's) serve the rest
            prompt["seed_mask"] = np.asarray(seed_mask, dtype=bool)
        prediction = self.predictor.predict(**prompt)
        return self._result(ref, prediction)

    def _slice_for_prompt(self, orientation, points_ras, box_ras, slice_index) -> SliceRef:
        axis = slice_axis_for(self.volume, orientation)
        if slice_index is not None:
            count = slice_count(self.volume, axis)
            if isinstance(slice_index, bool) or int(slice_index) != slice_index or not 0 <= slice_index < count:
                raise InputError(f"slice_index: expected an integer in 0..{count - 1}, got {slice_index!r}")
            return SliceRef(axis, int(slice_index))
        if points_ras is not None:
            anchor = as_points(points_ras, "points_ras")[0]
        elif box_ras is None:
            raise InputError("slice_index: a mask_input or seed_mask alone does not say which slice; give slice_index")
        else:
            anchor = box_corners_ras(box_ras).mean(axis=0)
        return slice_through(self.volume, orientation, anchor)

    def segment_auto(self, orientation="axial", slice_index: int = 0) -> SliceResult:
        """Prompt-free mask of one slice (needs a predictor with a trained adapter)."""
        ref = self._slice_for_prompt(orientation, None, None, slice_index)
        self.set_slice(ref)
        return self._result(ref, self.predictor.predict_auto())

    # --- propagation --------------------------------------------------------------------------
    def propagate(self, seed: SliceResult, slice_range: tuple[int, int] | None = None, use_logits: bool = False,
                  min_score: float = 0.5, min_area_ratio: float = 0.2, progress: Progress | None = None,
                  box_margin: float = 0.02, max_intensity_shift: float | None = 40.0,
                  rules: PropagationRules | None = None) -> np.ndarray:
        """Extend the seed's mask slice by slice in both directions; bool labelmap [k, j, i].

        Each next slice is prompted with the box of the previous mask (grown by `box_margin` of the
        slice size), plus its logits if `use_logits`. The walk stops at the first slice whose mask
        is empty, smaller than `min_area_ratio` of the previous one, scored below `min_score`
        (predicted IoU) or whose mean 8-bit grey differs from the seed mask's by more than
        `max_intensity_shift`, or at the end of `slice_range` (inclusive, along the seed's axis);
        also where the mask swells or its centroid jumps (see `PropagationRules`, whose other fields
        `rules` sets; `last_stops` then says where and why each direction ended).
        `progress(done, total)` is called after each slice, total = the slices in the range.
        `rules`, when given, replaces the individual rule arguments.
        """
        rules = rules or self._rules(min_score, min_area_ratio, use_logits, box_margin, max_intensity_shift)
        return self._propagate(seed, self._checked_range(seed.ref, slice_range), rules, progress, clip_box=None)

    def _rules(self, min_score, min_area_ratio, use_logits, box_margin, max_intensity_shift) -> PropagationRules:
        fields = {"min_score": min_score, "min_area_ratio": min_area_ratio, "box_margin": box_margin,
                  "max_intensity_shift": max_intensity_shift}
        if use_logits:  # asked for by the caller; otherwise as the adapter declares
            fields["use_logits"] = True
        return PropagationRules.for_predictor(self.predictor, **fields)

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
        total = span[1] - span[0] + 1
        done = [1]
        self.last_stops = []

        def step():
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        if progress is not None:
            progress(1, total)
        if seed.area > 0:
            accepted = {seed.ref.index: seed}
            for direction, end in ((+1, span[1]), (-1, span[0])):
                for result in self._walk(seed, direction, end, rules, clip_box, step):
                    accepted[result.ref.index] = result
            if rules.refine:
                accepted = self._refine(accepted, seed, clip_box)
            for result in accepted.values():
                insert_slice(labelmap, result.ref, result.mask2d, geometry=self.volume)
        if progress is not None:
            progress(total, total)
        return labelmap

    def _walk(self, seed: SliceResult, direction: int, end: int, rules: PropagationRules, clip_box, step):
        """Yield the accepted SliceResults from the seed's neighbour towards `end`; record why it ended."""
        previous = seed
        reference_grey = _mean_grey(self.slice_image(seed.ref), seed.mask2d)
        indices = range(seed.ref.index + direction, end + direction, direction)
        prefetch = _Prefetcher(self, seed.ref.axis, indices)
        reason = "end of range"
        for position, index in enumerate(indices):
            ref = SliceRef(seed.ref.axis, index)
            image = self.slice_image(ref)
            if int(image.max()) == int(image.min()):
                reason = "blank slice"  # padding, outside the scan: nothing to follow
                break
            prefetch.reach(position)
            self.predictor.set_image(image)
            result = self._result(ref, self.predictor.predict(**_follow_prompt(previous, rules, clip_box)), clip_box)
            step()
            if clip_box is not None and rules.trust_box:
                reason = "empty" if result.area == 0 else None
            else:
                reason = _stop_reason(previous, result, rules) or _brightness_stop(image, result, reference_grey, rules)
            if reason is not None:
                break
            yield result
            previous = result
            if rules.grey_reference == "previous":
                reference_grey = _mean_grey(image, result.mask2d)
            reason = "end of range"
        self.last_stops.append(WalkStop(direction, previous.ref.index, reason))

    def _refine(self, accepted: dict[int, SliceResult], seed: SliceResult, clip_box) -> dict[int, SliceResult]:
        """Second pass: each slice between two accepted neighbours, prompted with both of them."""
        refined = dict(accepted)
        for index in sorted(accepted):
            below, above = accepted.get(index - 1), accepted.get(index + 1)
            if index == seed.ref.index or below is None or above is None:
                continue
            union = below.mask2d | above.mask2d
            both = below.mask2d & above.mask2d
            prompt = {"box": _grown_box(union, 0.0, clip_box),
                      "mask_input": (below.low_res_logits + above.low_res_logits) / 2.0}
            anchor = both if both.any() else union
            prompt.update(points=np.array([_deepest_pixel(anchor)], dtype=np.float64), labels=np.array([1]))
            self.set_slice(accepted[index].ref)
            result = self._result(accepted[index].ref, self.predictor.predict(**prompt), clip_box)
            if result.area > 0 and result.score > accepted[index].score:
                refined[index] = result
        return refined

    # --- 3D box -------------------------------------------------------------------------------
    def segment_box3d(self, corners_ras, orientation="axial", progress: Progress | None = None,
                      use_logits: bool = False, min_score: float = 0.5, min_area_ratio: float = 0.2,
                      box_margin: float = 0.02, max_intensity_shift: float | None = 40.0,
                      rules: PropagationRules | None = None) -> np.ndarray:
        """Segment what a 3D box holds; bool labelmap [k, j, i].

        corners_ras: (2, 3) opposite corners of a RAS-aligned box or (8, 3) corners of a rotated
        ROI. The middle slice of the box's extent is prompted with the box, then the mask is
        propagated no further than the box's first and last slices, and every mask is clipped to
        the box's extent on the slice.
        """
        axis = slice_axis_for(self.volume, orientation)
        first, last = slice_extent_of_box(self.volume, axis, corners_ras)
        middle = SliceRef(axis, (first + last) // 2)
        box = ras_box_to_slice_box(self.volume, middle, corners_ras)
        self.set_slice(middle)
        seed = self._result(middle, self.predictor.predict(box=box), clip_box=box)
        rules = rules or self._rules(min_score, min_area_ratio, use_logits, box_margin, max_intensity_shift)
        return self._propagate(seed, (first, last), rules, progress, clip_box=box)


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
        wanted = min(position // PREFETCH_SLICES + 2, len(self.chunks))
        while self.launched < wanted:
            self._launch(self.chunks[self.launched])
            self.launched += 1

    def _launch(self, chunk: range) -> None:
        images = [self.segmenter.slice_image(SliceRef(self.axis, index)) for index in chunk]
        kept = [image for image in images if int(image.max()) != int(image.min())]
        if kept:
            self.segmenter.predictor.embed_images(kept, batch_size=PREFETCH_SLICES, background=True)


def mask_box(mask2d: np.ndarray) -> np.ndarray | None:
    """Inclusive pixel box x0, y0, x1, y1 of a 2D mask, or None when it is empty."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def _grown_box(mask2d: np.ndarray, margin: float, clip_box) -> np.ndarray:
    """The mask's box grown by `margin` of the slice's longest side, kept inside the slice (and clip box)."""
    x0, y0, x1, y1 = mask_box(mask2d)
    height, width = mask2d.shape
    grow = int(round(margin * max(height, width)))
    low = np.array([max(x0 - grow, 0), max(y0 - grow, 0)])
    high = np.array([min(x1 + grow, width - 1), min(y1 + grow, height - 1)])
    if clip_box is not None:
        low = np.maximum(low, clip_box[:2])
        high = np.minimum(high, clip_box[2:])
    # A one-pixel-wide mask gives a zero-area box, which the predictor refuses: widen it.
    high = np.maximum(high, np.minimum(low + 1, [width - 1, height - 1]))
    low = np.minimum(low, high - 1)
    return np.concatenate([low, high]).astype(np.int64)


def _clip_to_box(mask2d: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    clipped = np.zeros_like(mask2d)
    clipped[y0:y1 + 1, x0:x1 + 1] = mask2d[y0:y1 + 1, x0:x1 + 1]
    return clipped


def _deepest_pixel(mask2d: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from its boundary (the image border counts as boundary)."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def _follow_prompt(previous: SliceResult, rules: PropagationRules, clip_box) -> dict:
    """The prompt of the next slice, from the previous slice's result."""
    prompt = {"box": _grown_box(previous.mask2d, rules.box_margin, clip_box) if rules.use_box else None,
              "mask_input": previous.low_res_logits if rules.use_logits else None}
    if rules.use_point:
        prompt.update(points=np.array([_deepest_pixel(previous.mask2d)], dtype=np.float64), labels=np.array([1]))
    return prompt


def _centroid(mask2d: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask2d)
    return np.array([xs.mean(), ys.mean()])


def _stop_reason(previous: SliceResult, result: SliceResult, rules: PropagationRules) -> str | None:
    """Why the walk ends at `result`, or None when it goes on."""
    if result.area == 0:
        return "empty"
    if result.score < rules.min_score:
        return "score"
    if result.area < rules.min_area_ratio * previous.area:
        return "area collapse"
    if rules.max_area_growth is not None and result.area > rules.max_area_growth * previous.area:
        return "area growth"
    if rules.max_centroid_shift is not None:
        radius = np.sqrt(previous.area / np.pi)
        if np.linalg.norm(_centroid(result.mask2d) - _centroid(previous.mask2d)) > rules.max_centroid_shift * max(radius, 1.0):
            return "centroid jump"
    return None


def _mean_grey(image: np.ndarray, mask2d: np.ndarray) -> float:
    """Mean 8-bit grey of the image under a mask (all channels of an RGB image)."""
    return float(image[mask2d].mean()) if mask2d.any() else 0.0


def _brightness_stop(image: np.ndarray, result: SliceResult, reference_grey: float,
                     rules: PropagationRules) -> str | None:
    if rules.max_intensity_shift is None:
        return None
    return "brightness" if abs(_mean_grey(image, result.mask2d) - reference_grey) > rules.max_intensity_shift else None
