"""How the propagation walk prompts each next slice and when it stops: one `PropagationRules` object.

A walk prompts slice s+1 with what the model found on slice s (its box, optionally its low-res
logits and a point at its deepest pixel) and must then decide whether the answer is the structure
going on. Two ways to decide:

* **learned** (adapters with a presence head, `modeling/presence.py`): the head's probability that
  the mask is the structure, against a threshold calibrated per modality family on training
  studies (the adapter's metadata, "walk"); the walk also ends on an empty mask.
* **rules** (the measured fallback for adapters without the head): six hand-set thresholds —
  predicted IoU, area collapse and growth, centroid jump, grey level against the seed's.

The walk crosses up to `patience` doubtful slices (by default: one, with the learned decision or
inside a 3D box): it prompts the slice beyond from the last accepted mask, and when that one
passes, the doubtful slice is prompted again from both neighbours and kept. A structure seen at 8–10 mm steps changes a lot between slices, and one
poor slice (partial volume, a flow artefact) no longer ends the walk.

`segment3d.VolumeSegmenter` runs the walk; evaluation, the service and the CLI pass the rules as
this one object (`to_dict` / `from_dict` for the wire).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import InputError

DECISIONS = ("auto", "learned", "rules")
FAMILIES = ("CT", "other")       # what a volume's 8-bit mapping says about it: CT windows, or percentiles
DEFAULT_PRESENCE_THRESHOLD = 0.5


@dataclass(frozen=True)
class PropagationRules:
    """How the walk prompts each next slice and when it stops.

    Prompt: the previous slice's mask box (grown by `box_margin` of the slice's longest side),
    optionally with a positive point at the previous mask's deepest pixel (`use_point`) and its
    low-res logits as a dense prompt (`use_logits`). An adapter trained on walk prompts says which
    in its metadata (`"propagation": {"use_point": true, "use_logits": true}`); `for_predictor`
    reads it. The prompt defaults to the box alone: the shipped v2 adapter was trained on boxes and
    on clicks but never on both at once, and a box plus a point derails it (3D box on CT spleen:
    Dice 0.85 box alone, 0.15 with the point).

    Decision (`decision`): "learned" uses the presence head (`presence_threshold`, or the adapter's
    calibrated threshold for the volume's modality family); "rules" the hand rules below; "auto"
    the head when the adapter has one, else the rules. `patience`: doubtful slices crossed before
    the walk ends (0: stop at the first).

    Hand rules (the walk stops where): the mask vanishes; the model's predicted IoU falls below
    `min_score`; the area collapses below `min_area_ratio` or grows beyond `max_area_growth` times
    the previous slice's (a neighbour filled the box); the mask's centroid moves more than
    `max_centroid_shift` times the previous mask's equivalent radius; or its mean 8-bit grey differs
    from the seed mask's by more than `max_intensity_shift`. `grey_reference="previous"` compares
    slice to slice instead (follows an MRI bias field, but leaks more: not the default). Inside a
    3D box with `trust_box`, only an empty mask stops the rules' walk before the box's last slice.
    `refine`: a second pass prompts every slice between two accepted neighbours again with both
    neighbours' masks and keeps the answer the model scores higher. None turns a rule off.
    `legacy()` is the walk before issue 13.
    """

    # prompt
    use_box: bool = True                # the previous mask's box (off: point and/or logits alone)
    box_margin: float = 0.02            # previous-mask box grown by this fraction of the slice's longest side
    use_logits: bool = False            # also give the previous low-res logits as a dense prompt
    use_point: bool = False             # a positive point at the previous mask's deepest pixel
    refine: bool = False                # second pass with both neighbours' masks
    # decision
    decision: str = "auto"              # "learned", "rules" or "auto" (learned when the adapter can)
    presence_threshold: float | None = None  # None: the adapter's calibrated threshold for the volume's family
    patience: int | None = None         # doubtful slices the walk crosses before it ends; None: 1 with the
                                        # learned decision (calibrated so) or inside a 3D box, else 0 (the
                                        # hand rules with 1 cross a leak's first slice and follow it: brain1)
    # hand rules (the fallback)
    min_score: float = 0.5              # predicted IoU below this ends the walk
    min_area_ratio: float = 0.2         # area below this fraction of the previous slice's ends the walk
    max_area_growth: float | None = 2.5     # area above this multiple of the previous slice's ends the walk
    max_centroid_shift: float | None = 2.0  # centroid move, in previous equivalent radii, that ends the walk
    max_intensity_shift: float | None = 40.0  # mean 8-bit grey under the mask vs the seed's; None: off
    grey_reference: str = "seed"        # brightness compared with the "seed" mask's or the "previous" slice's
    trust_box: bool = False             # in a 3D box, only an empty mask ends the rules' walk before the box does
    sweep_box: bool = True              # in a 3D box, the learned walk goes to the box's ends: a slice it still
                                        # doubts after `patience` is prompted afresh with the box, kept if
                                        # present, else skipped (the user's box says where the structure is)

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
        if self.decision not in DECISIONS:
            raise InputError(f"decision: expected one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if self.presence_threshold is not None and not 0.0 < self.presence_threshold < 1.0:
            raise InputError(f"presence_threshold: expected a probability in (0, 1) or None, "
                             f"got {self.presence_threshold}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or not 0 <= self.patience <= 3):
            raise InputError(f"patience: expected 0, 1, 2 or 3 slices, got {self.patience!r}")

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def for_predictor(cls, predictor, **fields) -> PropagationRules:
        """The rules with the prompt fields an adapter declares in its metadata ("propagation"),
        then `fields`."""
        declared = adapter_metadata(predictor).get("propagation", {})
        prompt_fields = ("use_point", "use_logits", "use_box", "refine")
        return cls(**{**{k: bool(v) for k, v in declared.items() if k in prompt_fields}, **fields})

    @classmethod
    def legacy(cls) -> PropagationRules:
        """The walk before issue 13: the previous box alone; stops on score, area collapse, brightness."""
        return cls(max_area_growth=None, max_centroid_shift=None, decision="rules", patience=0)

    def patience_for(self, learned: bool, in_box: bool) -> int:
        """The doubtful slices to cross: as set; else 1 for the learned decision or inside a 3D box
        (its ends bound a leak), 0 for the hand rules' open walk."""
        return self.patience if self.patience is not None else (1 if learned or in_box else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PropagationRules:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"rules: unknown fields {sorted(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes) -> PropagationRules:
        return PropagationRules.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class WalkStop:
    """Where and why one direction of a walk ended (`VolumeSegmenter.last_stops`)."""

    direction: int     # +1 or -1 along the slice axis
    last_index: int    # the last slice kept (the seed's if none was)
    reason: str        # "end of range", "blank slice", "empty", "presence", "score", "area collapse",
                       # "area growth", "centroid jump", "brightness", "agrees" / "departs" (a correction met the old mask / left it)
    detail: str = ""   # the value that decided, e.g. "presence 0.21 < 0.40"

    def describe(self, total: int) -> str:
        """One line for a user, e.g. 'towards higher slices: stopped after slice 12 (presence 0.21 < 0.40)'."""
        side = "towards higher slices" if self.direction > 0 else "towards lower slices"
        if self.reason == "end of range":
            at_edge = self.last_index in (0, total - 1)
            return f"{side}: reached slice {self.last_index} ({'the edge of the volume' if at_edge else 'the end of its range'})"
        why = REASONS.get(self.reason, self.reason) + (f" ({self.detail})" if self.detail else "")
        return f"{side}: stopped after slice {self.last_index}: {why}"


REASONS = {
    "blank slice": "the next slice is blank (padding outside the scan)",
    "empty": "the model found nothing on the next slice",
    "presence": "the model's confidence that the structure continues fell below its threshold",
    "score": "the model's predicted IoU fell below the floor",
    "area collapse": "the mask shrank abruptly",
    "area growth": "the mask swelled (it probably caught a neighbour)",
    "centroid jump": "the mask jumped away from the previous one",
    "brightness": "the mask's grey level left the seed's",
    "agrees": "the new mask agrees with the previous segmentation from here on",
    "departs": "the new mask left the segment (another structure): the segment is kept from here on",
}


# --- what the adapter says ------------------------------------------------------------------------
def adapter_metadata(predictor) -> dict:
    metadata = getattr(getattr(predictor, "model", None), "metadata", None)
    return metadata if isinstance(metadata, dict) else {}


def has_presence_head(predictor) -> bool:
    """True when the predictor's model gives presence probabilities (a local model with the head,
    or a remote engine that says so)."""
    declared = getattr(predictor, "has_presence_head", None)
    if isinstance(declared, bool):
        return declared
    adapter = getattr(getattr(getattr(predictor, "model", None), "decoder", None), "adapter", None)
    return getattr(adapter, "presence", None) is not None and getattr(predictor, "uses_adapter", False)


def modality_family(mapping, array: np.ndarray | None = None) -> str:
    """"CT" when the volume is mapped with a CT window, else "other" (MR, PET, ultrasound and
    unknown volumes all go through percentile windows: the 8-bit image the model sees is alike)."""
    from .intensity import looks_like_ct, normalise_modality

    modality = normalise_modality(getattr(mapping, "modality", None) or "auto")
    if modality == "auto" and array is not None:
        modality = "CT" if looks_like_ct(array) else "OTHER"
    return "CT" if modality == "CT" else "other"


def presence_threshold(rules: PropagationRules, predictor, family: str, in_box: bool = False) -> float:
    """The rules' own threshold, else the adapter's calibrated one for `family` (inside a 3D box the one
    calibrated on box walks, when the adapter has it), else 0.5."""
    if rules.presence_threshold is not None:
        return float(rules.presence_threshold)
    walk = adapter_metadata(predictor).get("walk", {})
    thresholds = walk.get("presence_thresholds", {})
    if in_box and walk.get("presence_thresholds_box"):
        thresholds = {**thresholds, **walk["presence_thresholds_box"]}
    value = thresholds.get(family, thresholds.get("default", DEFAULT_PRESENCE_THRESHOLD))
    return float(value)


def uses_learned_decision(rules: PropagationRules, predictor) -> bool:
    if rules.decision == "rules":
        return False
    available = has_presence_head(predictor)
    if rules.decision == "learned" and not available:
        raise InputError("rules.decision: 'learned' needs an adapter with a presence head; this one has none "
                         "(use 'rules' or 'auto')")
    return available


# --- the decision ---------------------------------------------------------------------------------
class WalkJudge:
    """Decides, slice by slice, whether the walk keeps a mask and goes on (`verdict` → None), or why not."""

    def __init__(self, rules: PropagationRules, learned: bool, threshold: float, in_box: bool,
                 reference_grey: float):
        self.rules, self.learned, self.threshold, self.in_box = rules, learned, threshold, in_box
        self.reference_grey = reference_grey

    def verdict(self, previous, result, image: np.ndarray) -> tuple[str, str] | None:
        """(reason, detail) to stop at `result`, or None to keep it."""
        if result.area == 0:
            return "empty", ""
        if self.learned:
            presence = result.presence
            if presence is None:
                raise InputError("presence: the model gave no presence probability for this slice")
            if presence < self.threshold:
                return "presence", f"{presence:.2f} < {self.threshold:.2f}"
            return None
        if self.in_box and self.rules.trust_box:
            return None
        reason = stop_reason(previous, result, self.rules)
        if reason is not None:
            return reason
        return brightness_stop(image, result, self.reference_grey, self.rules)

    def accepted(self, image: np.ndarray, result) -> None:
        """The walk kept `result` (on `image`): follow the grey level when the rules compare slice to slice."""
        if self.rules.grey_reference == "previous":
            self.reference_grey = mean_grey(image, result.mask2d)


# --- prompts ---------------------------------------------------------------------------------------
def mask_box(mask2d: np.ndarray) -> np.ndarray | None:
    """Inclusive pixel box x0, y0, x1, y1 of a 2D mask, or None when it is empty."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def grown_box(mask2d: np.ndarray, margin: float, clip_box) -> np.ndarray:
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


def clip_to_box(mask2d: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    clipped = np.zeros_like(mask2d)
    clipped[y0:y1 + 1, x0:x1 + 1] = mask2d[y0:y1 + 1, x0:x1 + 1]
    return clipped


def deepest_pixel(mask2d: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from its boundary (the image border counts as boundary)."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def follow_prompt(previous, rules: PropagationRules, clip_box) -> dict:
    """The prompt of the next slice, from the previous slice's result (mask2d, low_res_logits)."""
    prompt = {"box": grown_box(previous.mask2d, rules.box_margin, clip_box) if rules.use_box else None,
              "mask_input": previous.low_res_logits if rules.use_logits else None}
    if rules.use_point:
        prompt.update(points=np.array([deepest_pixel(previous.mask2d)], dtype=np.float64), labels=np.array([1]))
    return prompt


def bridge_prompt(below, above, clip_box) -> dict:
    """The prompt of a slice between two accepted neighbours: the box of their union, their mean
    logits, a point inside both (or either)."""
    union = below.mask2d | above.mask2d
    both = below.mask2d & above.mask2d
    anchor = both if both.any() else union
    return {"box": grown_box(union, 0.0, clip_box), "mask_input": (below.low_res_logits + above.low_res_logits) / 2.0,
            "points": np.array([deepest_pixel(anchor)], dtype=np.float64), "labels": np.array([1])}


# --- the hand rules -------------------------------------------------------------------------------
def centroid(mask2d: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask2d)
    return np.array([xs.mean(), ys.mean()])


def stop_reason(previous, result, rules: PropagationRules) -> tuple[str, str] | None:
    """Why the hand rules end the walk at `result`, or None when it goes on."""
    if result.area == 0:
        return "empty", ""
    if result.score < rules.min_score:
        return "score", f"predicted IoU {result.score:.3f} < {rules.min_score:g}"
    if result.area < rules.min_area_ratio * previous.area:
        return "area collapse", f"{result.area} < {rules.min_area_ratio:g} × {previous.area} pixels"
    if rules.max_area_growth is not None and result.area > rules.max_area_growth * previous.area:
        return "area growth", f"{result.area} > {rules.max_area_growth:g} × {previous.area} pixels"
    if rules.max_centroid_shift is not None:
        radius = max(np.sqrt(previous.area / np.pi), 1.0)
        shift = float(np.linalg.norm(centroid(result.mask2d) - centroid(previous.mask2d)))
        if shift > rules.max_centroid_shift * radius:
            return "centroid jump", f"{shift / radius:.1f} radii > {rules.max_centroid_shift:g}"
    return None


def mean_grey(image: np.ndarray, mask2d: np.ndarray) -> float:
    """Mean 8-bit grey of the image under a mask (all channels of an RGB image)."""
    return float(image[mask2d].mean()) if mask2d.any() else 0.0


def brightness_stop(image: np.ndarray, result, reference_grey: float,
                    rules: PropagationRules) -> tuple[str, str] | None:
    if rules.max_intensity_shift is None:
        return None
    grey = mean_grey(image, result.mask2d)
    if abs(grey - reference_grey) > rules.max_intensity_shift:
        return "brightness", f"mean grey {grey:.0f} vs {reference_grey:.0f} at the seed"
    return None
