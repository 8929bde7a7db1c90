"""Training samples with their frozen-encoder embeddings computed once.

The backbone is frozen, so every image is embedded a single time before training; each step then
runs only the decoder. Embeddings are kept on the training device (half precision on a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..preprocessing import ImageTransform, to_model_input
from .datasets import PairDataset


@dataclass
class Target:
    image_index: int
    mask: np.ndarray          # bool (input_size, input_size), padded like the model input
    valid_hw: tuple[int, int]
    dataset: str
    prompt_free: bool


class EmbeddingBank:
    def __init__(self, embeddings: torch.Tensor, early: torch.Tensor, targets: list[Target]):
        self.embeddings = embeddings
        self.early = early
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def build(cls, dataset: PairDataset, backbone, device, storage_dtype, batch_size: int = 32,
              max_images: int | None = None, shard: tuple[int, int] = (0, 1), progress=None) -> EmbeddingBank:
        rank, world = shard
        image_keys: dict[tuple[str, str], int] = {}
        images: list[np.ndarray] = []
        targets: list[Target] = []
        for position, entry in enumerate(dataset.entries):
            key = (str(entry.folder), entry.file)
            if key not in image_keys:
                if (max_images is not None and len(image_keys) >= max_images * world) or len(image_keys) % world != rank:
                    image_keys.setdefault(key, -1)
                    continue
                image_keys[key] = len(images)
                images.append(None)
            index = image_keys[key]
            if index < 0:
                continue
            item = dataset[position]
            images[index] = item.image
            transform = ImageTransform.for_image(*item.mask.shape, backbone.input_size)
            padded = np.zeros((backbone.input_size, backbone.input_size), dtype=bool)
            mask = _resize_mask(item.mask, transform.resized_hw)
            padded[: mask.shape[0], : mask.shape[1]] = mask
            if padded.any():
                targets.append(Target(index, padded, transform.resized_hw, item.dataset, item.prompt_free))
        embeddings, earlies = [], []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.cat([to_model_input(image, backbone, device)[0] for image in images[start:start + batch_size]])
                embedding, early = backbone.encode(batch)  # fp32, exactly as the predictor embeds
                embeddings.append(embedding.to(storage_dtype))
                earlies.append(early.to(storage_dtype))
                if progress:
                    progress(min(start + batch_size, len(images)), len(images))
        return cls(torch.cat(embeddings), torch.cat(earlies), targets)


def _resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(size_hw):
        return mask
    rows = (np.arange(size_hw[0]) * mask.shape[0] / size_hw[0]).astype(int)
    cols = (np.arange(size_hw[1]) * mask.shape[1] / size_hw[1]).astype(int)
    return mask[rows][:, cols]
