"""Training samples with their frozen-encoder embeddings computed once.

The backbone is frozen, so every image (and every augmented view of it) is embedded a single time
before training; each step then runs only the decoder. The bank holds, on the training device:
the embeddings and early features of every view, every target mask at the model's input size, and
per target the view it belongs to, its sampling weight and, for walk targets (neighbouring slices
of 3D studies), the neighbour slice and mask that prompt it.

Every rank of a multi-GPU run builds the same bank: a step's batch is drawn globally and each rank
takes its share, so a run on W GPUs sees exactly the batches one process would (see `Trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..preprocessing import ImageTransform, to_model_input
from .augment import apply_view, draw_view
from .config import KINDS
from .datasets import PairDataset, load_entry
from .walks import WalkStack, walk_steps

STROKE_KINDS = ("scribble", "lasso")  # drawn on the same 2D targets as boxes and clicks


@dataclass
class Target:
    image_index: int
    mask_index: int
    dataset: str
    prompt_free: bool
    weight: float
    walk: bool = False
    neighbour_image: int = -1
    neighbour_mask: int = -1


class _Collector:
    """Images to embed and masks at the model's input size, numbered as they are added."""

    def __init__(self, input_size: int):
        self.input_size = input_size
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def add_image(self, image: np.ndarray) -> int:
        self.images.append(image)
        return len(self.images) - 1

    def add_mask(self, mask: np.ndarray) -> int:
        transform = ImageTransform.for_image(*mask.shape, self.input_size)
        padded = np.zeros((self.input_size, self.input_size), dtype=bool)
        resized = _resize_mask(mask, transform.resized_hw)
        padded[: resized.shape[0], : resized.shape[1]] = resized
        self.masks.append(padded)
        return len(self.masks) - 1


class EmbeddingBank:
    def __init__(self, embeddings: torch.Tensor, early: torch.Tensor, masks: torch.Tensor, targets: list[Target]):
        self.embeddings = embeddings
        self.early = early
        self.masks = masks            # (M, S, S) bool on the training device
        self.targets = targets
        self.pools = {kind: [] for kind in KINDS}
        for index, target in enumerate(targets):
            if target.walk:
                self.pools["walk"].append(index)
                continue
            for kind in ("box", "click", *STROKE_KINDS):
                self.pools[kind].append(index)
            if target.prompt_free:
                self.pools["auto"].append(index)
        self.pool_weights = {kind: _normalised([targets[i].weight for i in pool]) for kind, pool in self.pools.items()}

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def build(cls, dataset: PairDataset, backbone, device, storage_dtype, batch_size: int = 32,
              max_images: int | None = None, progress=None, views: int = 1, walks: list[WalkStack] = (),
              walk_max_gap: int = 2, score_temperature: float = 0.85, seed: int = 0,
              walk_end_weight: float = 1.0) -> EmbeddingBank:
        """`views` - 1 augmented views per image besides the original; `walks` adds walk targets.

        A 2D target's weight is score^(1/τ) / sqrt(targets of its dataset): the curation's quality
        score as in its sampler, with large data sets (hundreds of frames of one ultrasound task)
        damped so they do not crowd out the rest.
        """
        collector = _Collector(backbone.input_size)
        targets: list[Target] = []
        rng = np.random.default_rng([seed, 7])
        groups: dict[tuple[str, str], list[int]] = {}
        for position, entry in enumerate(dataset.entries):
            groups.setdefault((str(entry.folder), entry.file), []).append(position)
        if max_images is not None:
            groups = dict(list(groups.items())[:max_images])
        per_dataset: dict[str, int] = {}
        for positions in groups.values():
            for position in positions:
                name = dataset.entries[position].dataset
                per_dataset[name] = per_dataset.get(name, 0) + 1
        for positions in groups.values():
            items = [load_entry(dataset.entries[p]) for p in positions]
            image = items[0].image
            union = np.logical_or.reduce([item.mask for item in items])
            for view in range(views):
                masks = [item.mask for item in items]
                view_image = image
                if view > 0:
                    view_image, masks = apply_view(image, masks, draw_view(rng, image.shape[:2], union))
                image_index = None
                for position, item, mask in zip(positions, items, masks):
                    if not mask.any():
                        continue
                    if image_index is None:
                        image_index = collector.add_image(view_image)
                    entry = dataset.entries[position]
                    weight = entry.score ** (1 / score_temperature) / per_dataset[entry.dataset] ** 0.5
                    targets.append(Target(image_index, collector.add_mask(mask), item.dataset, item.prompt_free,
                                          weight / views))
        _add_walks(collector, targets, walks, walk_max_gap, walk_end_weight)
        embeddings, earlies = _embed(collector.images, backbone, device, storage_dtype, batch_size, progress)
        masks = torch.from_numpy(np.stack(collector.masks)).to(device) if collector.masks else torch.zeros(0)
        return cls(embeddings, earlies, masks, targets)


def _add_walks(collector: _Collector, targets: list[Target], stacks, max_gap: int, end_weight: float = 1.0) -> None:
    """Walk targets; those where the structure has ended (the slice lacks the label: the walk must
    stop there, often with a neighbouring structure in the prompt's box) weigh `end_weight` times more."""
    if not stacks:
        return
    image_rows = [[collector.add_image(image) for image in stack.images] for stack in stacks]
    mask_rows: dict[tuple[int, int, int], int] = {}

    def mask_row(stack: int, row: int, label: int) -> int:
        key = (stack, row, label)
        if key not in mask_rows:
            mask_rows[key] = collector.add_mask(stacks[stack].labels[row] == label)
        return mask_rows[key]

    steps = walk_steps(list(stacks), max_gap)
    per_dataset: dict[str, int] = {}
    for step in steps:
        per_dataset[stacks[step.stack].dataset] = per_dataset.get(stacks[step.stack].dataset, 0) + 1
    for step in steps:
        dataset = stacks[step.stack].dataset
        ended = not (stacks[step.stack].labels[step.row] == step.label).any()
        weight = (end_weight if ended else 1.0) / per_dataset[dataset] ** 0.5
        targets.append(Target(image_rows[step.stack][step.row], mask_row(step.stack, step.row, step.label), dataset,
                              prompt_free=False, weight=weight, walk=True,
                              neighbour_image=image_rows[step.stack][step.neighbour],
                              neighbour_mask=mask_row(step.stack, step.neighbour, step.label)))


def _embed(images, backbone, device, storage_dtype, batch_size, progress):
    """All views' embeddings and early features, written into tensors allocated once: a
    concatenation at the end would hold every view twice (an 80 GB GPU ran out at 6,000 views)."""
    embeddings = earlies = None
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.cat([to_model_input(image, backbone, device)[0] for image in images[start:start + batch_size]])
            embedding, early = backbone.encode(batch)  # fp32, exactly as the predictor embeds
            if embeddings is None:
                embeddings = torch.empty((len(images), *embedding.shape[1:]), dtype=storage_dtype, device=device)
                earlies = torch.empty((len(images), *early.shape[1:]), dtype=storage_dtype, device=device)
            embeddings[start:start + len(batch)] = embedding
            earlies[start:start + len(batch)] = early
            if progress:
                progress(min(start + batch_size, len(images)), len(images))
    return embeddings, earlies


def _normalised(weights: list[float]) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    return array / array.sum() if array.size and array.sum() > 0 else array


def _resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(size_hw):
        return mask
    rows = (np.arange(size_hw[0]) * mask.shape[0] / size_hw[0]).astype(int)
    cols = (np.arange(size_hw[1]) * mask.shape[1] / size_hw[1]).astype(int)
    return mask[rows][:, cols]
