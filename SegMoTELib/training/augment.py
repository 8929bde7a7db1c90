"""Image–mask augmentation for the embedding bank (the frozen encoder sees each view once).

A view is a random flip, 90° rotation, scale-and-crop (zoom in up to `max_zoom`, keeping at least
part of the object), and an intensity change (contrast, brightness, gamma). The same geometric
change is applied to every mask of the image. Intensity changes are done on the 8-bit image, as
a different window or scanner would give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ViewParameters:
    flip: bool
    rotations: int
    crop: tuple[int, int, int, int] | None  # y0, x0, y1, x1 of the original, or None
    contrast: float
    brightness: float
    gamma: float


def draw_view(rng: np.random.Generator, shape: tuple[int, int], union_mask: np.ndarray, max_zoom: float = 1.5
              ) -> ViewParameters:
    height, width = shape
    crop = None
    if rng.random() < 0.5:
        zoom = rng.uniform(1.0, max_zoom)
        crop_h, crop_w = max(8, int(height / zoom)), max(8, int(width / zoom))
        ys, xs = np.nonzero(union_mask)
        # centre the crop near a random object pixel so the view keeps some of the object
        pick = rng.integers(len(ys)) if len(ys) else None
        cy = ys[pick] if pick is not None else height // 2
        cx = xs[pick] if pick is not None else width // 2
        y0 = int(np.clip(cy - rng.integers(0, crop_h), 0, height - crop_h))
        x0 = int(np.clip(cx - rng.integers(0, crop_w), 0, width - crop_w))
        crop = (y0, x0, y0 + crop_h, x0 + crop_w)
    return ViewParameters(flip=bool(rng.random() < 0.5), rotations=int(rng.integers(4)), crop=crop,
                          contrast=float(rng.uniform(0.75, 1.3)), brightness=float(rng.uniform(-20, 20)),
                          gamma=float(np.exp(rng.uniform(np.log(0.7), np.log(1.5)))))


def _geometry(array: np.ndarray, view: ViewParameters, size_hw: tuple[int, int] | None, nearest: bool) -> np.ndarray:
    if view.crop is not None:
        y0, x0, y1, x1 = view.crop
        array = array[y0:y1, x0:x1]
        if size_hw is not None:
            resample = Image.NEAREST if nearest else Image.BILINEAR
            array = np.asarray(Image.fromarray(array).resize((size_hw[1], size_hw[0]), resample))
    if view.flip:
        array = array[:, ::-1]
    return np.ascontiguousarray(np.rot90(array, view.rotations))


def apply_view(image: np.ndarray, masks: list[np.ndarray], view: ViewParameters):
    """(image, masks) of the view; the crop is resized back to the original size."""
    size = image.shape[:2]
    out = _geometry(image, view, size, nearest=False).astype(np.float32)
    out = (out - 127.5) * view.contrast + 127.5 + view.brightness
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** view.gamma
    new_masks = [_geometry(mask.astype(np.uint8), view, size, nearest=True).astype(bool) for mask in masks]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), new_masks
