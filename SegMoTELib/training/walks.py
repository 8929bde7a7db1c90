"""Slice stacks of real 3D studies, for training the slice-to-slice walk of propagation.

Propagation prompts each slice with what the model found on its neighbour (that mask's box, its
low-res logits, a point inside it). To learn that prompt the trainer needs neighbouring slices of
real volumes with expert labels: `../shared/data/volumes3d` (see its README) and any folder in the
same layout (one INVENTORY.json per set). A `WalkStack` is the 8-bit slices along a study's slice
axis — exactly as `VolumeSegmenter` shows them to the model — from two slices before the first
labelled one to two after the last, so the trainer also sees slices where the structure has ended
(the target there is empty: the walk must learn to stop). With `max_side` the slices are resized
so their longest side is at most that (the model sees every slice at its input size anyway: a
512² CT slice stored at 256² gives the same embedding, at a quarter of the bytes).

The split is by case: a pair's own "split" field in its INVENTORY.json when it has one, else the
hold-out the volumes3d README suggests (`volume_cases.HOLDOUT_RULES`); the hold-out is kept for
evaluation only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume_cases import is_held_out

EXTRA_SLICES = 2  # slices kept beyond each end of the labelled extent
WEBP_QUALITY = 90  # compact stacks: slices as lossy WebP (the labels stay lossless)


@dataclass(frozen=True)
class StudyPair:
    dataset: str
    case: str
    image: Path
    label: Path
    slice_axis: int     # ITK / SliceRef axis (0 = i, 1 = j, 2 = k)
    holdout: bool


def is_holdout(dataset: str, pair: dict, pairs: list[dict]) -> bool:
    """The pair's "split" field, else the hold-out volumes3d/README.md suggests (the rule evaluate-3d
    uses too); a set with neither is all training."""
    return is_held_out(dataset, pair, pairs, unknown=False)


def volumes3d_pairs(root, split: str = "train") -> list[StudyPair]:
    """The image–label pairs of a volumes3d-layout folder (one INVENTORY.json per set).

    `split`: "train" (every case outside the hold-out), "holdout", or "all".
    """
    if split not in ("train", "holdout", "all"):
        raise InputError(f"split: expected train, holdout or all, got {split!r}")
    root = Path(root)
    inventories = sorted(root.glob("*/INVENTORY.json"))
    if not inventories:
        raise DataError(f"{root}: no */INVENTORY.json (expected the volumes3d layout)")
    pairs = []
    for inventory in inventories:
        folder = inventory.parent
        content = json.loads(inventory.read_text())
        dataset = str(content.get("dataset") or folder.name)
        for pair in content["pairs"]:
            holdout = is_holdout(dataset, pair, content["pairs"])
            if split == "all" or (split == "holdout") == holdout:
                case = pair["case"] + (f" {pair['frame']}" if "frame" in pair else "")
                pairs.append(StudyPair(dataset, case, folder / pair["image"]["path"],
                                       folder / pair["label"]["path"], int(pair["slice_axis_itk"]), holdout))
    return pairs


@dataclass
class WalkStack:
    """Consecutive slices of one study: `images` (n, H, W[, 3]) uint8 as the model sees them and
    `labels` (n, H, W) uint8 label values, slice `first_index` being the study's slice of row 0.
    `family`: "CT" or "other", as `walk_rules.modality_family` names the study's 8-bit mapping."""

    dataset: str
    case: str
    images: np.ndarray
    labels: np.ndarray
    first_index: int
    family: str = "other"

    def save(self, path, compact: bool = False) -> None:
        """`compact`: the slices as lossy WebP (a fifth of the bytes; the labels stay lossless)."""
        images = {"images": self.images}
        if compact:  # WebP has no grey mode: grey slices come back as equal RGB channels, kept as one
            buffer, sizes = _encode_webp(self.images)
            images = {"webp": buffer, "webp_sizes": sizes, "webp_grey": self.images.ndim == 3}
        np.savez_compressed(path, **images, labels=self.labels, dataset=self.dataset, case=self.case,
                            first_index=self.first_index, family=self.family)

    @classmethod
    def load(cls, path) -> WalkStack:
        with np.load(path, allow_pickle=False) as content:
            images = content["images"] if "images" in content else \
                _decode_webp(content["webp"], content["webp_sizes"], bool(content["webp_grey"]))
            family = str(content["family"]) if "family" in content else "other"
            return cls(str(content["dataset"]), str(content["case"]), images, content["labels"],
                       int(content["first_index"]), family)


def _encode_webp(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(one byte buffer, the size of each slice's WebP in it)."""
    import io

    from PIL import Image

    chunks = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="WEBP", quality=WEBP_QUALITY, method=6)
        chunks.append(buffer.getvalue())
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), np.array([len(c) for c in chunks], dtype=np.int64)


def _decode_webp(buffer: np.ndarray, sizes: np.ndarray, grey: bool) -> np.ndarray:
    import io

    from PIL import Image

    data, images, offset = buffer.tobytes(), [], 0
    for size in sizes:
        with Image.open(io.BytesIO(data[offset:offset + int(size)])) as image:
            images.append(np.asarray(image.convert("L" if grey else "RGB")))
        offset += int(size)
    return np.stack(images)


def read_walk_stack(pair: StudyPair, max_side: int | None = None) -> WalkStack:
    """The labelled extent (± EXTRA_SLICES) of one study, sliced along its slice axis; with `max_side`
    the slices are resized (area for images, nearest for labels) to that longest side at most."""
    from ..geometry import SliceRef, extract_slice, slice_count
    from ..intensity import IntensityMapping, to_uint8
    from ..io import read_volume
    from ..walk_rules import modality_family

    volume, labels = read_volume(pair.image), read_volume(pair.label)
    if volume.shape_ijk != labels.shape_ijk:
        raise DataError(f"{pair.label}: grid {labels.shape_ijk} differs from the image's {volume.shape_ijk}")
    mapping = IntensityMapping(modality=volume.modality or "auto")
    display = volume.with_array(to_uint8(volume.array, mapping))
    label_values = labels.with_array(_small_label_values(np.rint(labels.array).astype(np.int64)))
    count = slice_count(volume, pair.slice_axis)
    present = [i for i in range(count) if extract_slice(label_values, SliceRef(pair.slice_axis, i)).any()]
    if not present:
        raise DataError(f"{pair.label}: no labelled voxel")
    first, last = max(0, present[0] - EXTRA_SLICES), min(count - 1, present[-1] + EXTRA_SLICES)
    refs = [SliceRef(pair.slice_axis, i) for i in range(first, last + 1)]
    images = np.stack([_fit(extract_slice(display, ref), max_side, "image") for ref in refs])
    masks = np.stack([_fit(extract_slice(label_values, ref), max_side, "label") for ref in refs])
    return WalkStack(pair.dataset, pair.case, images, masks, first, modality_family(mapping, volume.array))


def _small_label_values(labels: np.ndarray) -> np.ndarray:
    """uint8 label values; sets that number labels past 255 (MS-CMRSeg: 200, 500, 600) are renumbered
    1, 2, … in value order."""
    if labels.min() >= 0 and labels.max() <= 255:
        return labels.astype(np.uint8)
    values = [int(v) for v in np.unique(labels) if v != 0]
    renumbered = np.zeros(labels.shape, dtype=np.uint8)
    for number, value in enumerate(values, start=1):
        renumbered[labels == value] = number
    return renumbered


def _fit(slice_2d: np.ndarray, max_side: int | None, kind: str) -> np.ndarray:
    height, width = slice_2d.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return slice_2d
    from PIL import Image

    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if kind == "image" else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(slice_2d).resize(size, resample))


@dataclass(frozen=True)
class WalkStep:
    """One training example of the walk: segment slice `row` of a stack, prompted from `neighbour`."""

    stack: int
    row: int
    neighbour: int
    label: int


def walk_steps(stacks: list[WalkStack], max_gap: int = 2) -> list[WalkStep]:
    """Every (slice, neighbour within `max_gap`, label) where the neighbour shows the label; the
    slice itself may not (the structure ended there)."""
    steps = []
    for number, stack in enumerate(stacks):
        values = sorted(int(v) for v in np.unique(stack.labels) if v)
        present = {value: (stack.labels == value).reshape(len(stack.labels), -1).any(1) for value in values}
        for value in values:
            for row in range(len(stack.labels)):
                for gap in range(1, max_gap + 1):
                    for neighbour in (row - gap, row + gap):
                        if 0 <= neighbour < len(stack.labels) and present[value][neighbour]:
                            steps.append(WalkStep(number, row, neighbour, value))
    return steps
