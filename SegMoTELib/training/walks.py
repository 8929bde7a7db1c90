"""Slice stacks of real 3D studies, for training the slice-to-slice walk of propagation.

Propagation prompts each slice with what the model found on its neighbour (that mask's box, its
low-res logits, a point inside it). To learn that prompt the trainer needs neighbouring slices of
real volumes with expert labels: `../shared/data/volumes3d` (see its README). A `WalkStack` is the
8-bit slices along a study's slice axis — exactly as `VolumeSegmenter` shows them to the model —
from two slices before the first labelled one to two after the last, so the trainer also sees
slices where the structure has ended (the target there is empty: the walk must learn to stop).

The split is by case, with the hold-out the data's README suggests kept for evaluation only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..volume_cases import HOLDOUT_RULES

EXTRA_SLICES = 2  # slices kept beyond each end of the labelled extent


@dataclass(frozen=True)
class StudyPair:
    dataset: str
    case: str
    image: Path
    label: Path
    slice_axis: int     # ITK / SliceRef axis (0 = i, 1 = j, 2 = k)
    holdout: bool


def is_holdout(dataset: str, pair: dict, pairs: list[dict]) -> bool:
    """The hold-out volumes3d/README.md suggests (`volume_cases.HOLDOUT_RULES`, which evaluate-3d
    uses too); a set without a rule is all training."""
    rule = HOLDOUT_RULES.get(dataset)
    return bool(rule and rule(pair, pairs))


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
        for pair in content["pairs"]:
            holdout = is_holdout(folder.name, pair, content["pairs"])
            if split == "all" or (split == "holdout") == holdout:
                pairs.append(StudyPair(folder.name, pair["case"], folder / pair["image"]["path"],
                                       folder / pair["label"]["path"], int(pair["slice_axis_itk"]), holdout))
    return pairs


@dataclass
class WalkStack:
    """Consecutive slices of one study: `images` (n, H, W[, 3]) uint8 as the model sees them and
    `labels` (n, H, W) uint8 label values, slice `first_index` being the study's slice of row 0."""

    dataset: str
    case: str
    images: np.ndarray
    labels: np.ndarray
    first_index: int

    def save(self, path) -> None:
        np.savez_compressed(path, images=self.images, labels=self.labels, dataset=self.dataset, case=self.case,
                            first_index=self.first_index)

    @classmethod
    def load(cls, path) -> WalkStack:
        with np.load(path, allow_pickle=False) as content:
            return cls(str(content["dataset"]), str(content["case"]), content["images"], content["labels"],
                       int(content["first_index"]))


def read_walk_stack(pair: StudyPair) -> WalkStack:
    """The labelled extent (± EXTRA_SLICES) of one study, sliced along its slice axis."""
    from ..geometry import SliceRef, extract_slice, slice_count
    from ..intensity import IntensityMapping, to_uint8
    from ..io import read_volume

    volume, labels = read_volume(pair.image), read_volume(pair.label)
    if volume.shape_ijk != labels.shape_ijk:
        raise DataError(f"{pair.label}: grid {labels.shape_ijk} differs from the image's {volume.shape_ijk}")
    display = volume.with_array(to_uint8(volume.array, IntensityMapping(modality=volume.modality or "auto")))
    label_values = labels.with_array(np.rint(labels.array).astype(np.uint8))
    count = slice_count(volume, pair.slice_axis)
    present = [i for i in range(count) if extract_slice(label_values, SliceRef(pair.slice_axis, i)).any()]
    if not present:
        raise DataError(f"{pair.label}: no labelled voxel")
    first, last = max(0, present[0] - EXTRA_SLICES), min(count - 1, present[-1] + EXTRA_SLICES)
    refs = [SliceRef(pair.slice_axis, i) for i in range(first, last + 1)]
    images = np.stack([extract_slice(display, ref) for ref in refs])
    masks = np.stack([extract_slice(label_values, ref) for ref in refs])
    return WalkStack(pair.dataset, pair.case, images, masks, first)


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
