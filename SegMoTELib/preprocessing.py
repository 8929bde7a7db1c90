"""Image → model input (resize the longest side, normalise, pad) and coordinates between the two."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .intensity import IntensityMapping, to_uint8


@dataclass(frozen=True)
class ImageTransform:
    """Geometry of one image's resize: original (H, W) → resized (h, w) inside a square input."""

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_size: int

    @classmethod
    def for_image(cls, height: int, width: int, input_size: int) -> ImageTransform:
        """The longest side becomes `input_size`; the other keeps the aspect ratio but never less
        than one model pixel (a 2 x 5000 strip would otherwise shrink to 0 rows)."""
        scale = input_size / max(height, width)
        resized = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
        return cls((height, width), resized, input_size)

    @property
    def scale_xy(self) -> np.ndarray:
        return np.array([self.resized_hw[1] / self.original_hw[1], self.resized_hw[0] / self.original_hw[0]])

    def points_to_input(self, points_xy: np.ndarray) -> np.ndarray:
        return np.asarray(points_xy, dtype=np.float64) * self.scale_xy

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        return np.asarray(boxes, dtype=np.float64) * np.tile(self.scale_xy, 2)

    def logits_to_image(self, low_res_logits):
        """Low-res logits (B, K, s, s) → logits at the original image size (B, K, H, W)."""
        import torch.nn.functional as F

        upscaled = low_res_logits
        if tuple(upscaled.shape[-2:]) != (self.input_size, self.input_size):
            # (an interpolation to the same size is the identity: skipped, the values are equal)
            upscaled = F.interpolate(low_res_logits, size=(self.input_size, self.input_size), mode="bilinear",
                                     align_corners=False)
        cropped = upscaled[..., : self.resized_hw[0], : self.resized_hw[1]]
        if tuple(cropped.shape[-2:]) == tuple(self.original_hw):
            return cropped
        return F.interpolate(cropped, size=self.original_hw, mode="bilinear", align_corners=False)


def as_rgb_uint8(image: np.ndarray, modality: str = "auto", mapping: IntensityMapping | None = None) -> np.ndarray:
    """Any 2D grey image or (H, W, 3) RGB image → (H, W, 3) uint8, through the shared intensity mapping."""
    pixels = as_model_uint8(image, modality, mapping)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


def as_model_uint8(image: np.ndarray, modality: str = "auto", mapping: IntensityMapping | None = None) -> np.ndarray:
    """Like `as_rgb_uint8`, but a grey image stays (H, W): the three equal channels are made on the
    model's device (a third of the bytes to hash, copy and upload)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]  # RGBA screenshots: the alpha channel carries no anatomy
    if image.ndim == 2:
        rgb = to_uint8(image, mapping or IntensityMapping(modality=modality))
    elif image.ndim == 3 and image.shape[2] == 3:
        rgb = to_uint8(image, mapping or IntensityMapping(modality="RGB"))
    else:
        raise InputError(f"image: expected shape (H, W) or (H, W, 3), got {image.shape}")
    if min(rgb.shape[:2]) < 2:
        raise InputError(f"image: too small to segment ({rgb.shape[0]}×{rgb.shape[1]} pixels)")
    if int(rgb.max()) == int(rgb.min()):
        raise InputError(f"image: the image is constant (every pixel is {int(rgb.min())}); there is nothing to segment")
    return np.ascontiguousarray(rgb)


def to_model_input(rgb: np.ndarray, backbone, device):
    """(H, W, 3) uint8 (or (H, W) grey) → (1, 3, S, S) float tensor on `device` and the image's transform."""
    tensor, transform = to_model_inputs([rgb], backbone, device)
    return tensor, transform[0]


def to_model_inputs(images: list[np.ndarray], backbone, device):
    """Images of one shape, (H, W, 3) or (H, W) uint8 → (N, 3, S, S) float tensor on `device` and
    their transforms: one upload and one resize for the batch; each image's values are those of
    `to_model_input` on it alone."""
    import torch
    import torch.nn.functional as F

    shape = images[0].shape
    if any(image.shape != shape for image in images):
        raise InputError(f"images: a batch needs images of one shape, got {sorted({i.shape for i in images})}")
    transform = ImageTransform.for_image(shape[0], shape[1], backbone.input_size)
    stacked = np.stack(images) if len(images) > 1 else images[0][None]
    pixels = torch.from_numpy(stacked)
    if device.type == "cuda":
        pixels = pixels.pin_memory().to(device, non_blocking=True)
    else:
        pixels = pixels.to(device)
    pixels = pixels.unsqueeze(1).expand(-1, 3, -1, -1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
    tensor = pixels.float()
    if tensor.shape[-2:] != transform.resized_hw:
        # Pixel-area averaging when shrinking, as LiteMedSAM's own pipeline (cv2.INTER_AREA) did in
        # training: a wider anti-aliasing filter blurs small lesions and costs Dice on real slices.
        shrinking = transform.resized_hw[0] < shape[0]
        mode = {"mode": "area"} if shrinking else {"mode": "bilinear", "align_corners": False}
        tensor = F.interpolate(tensor, size=transform.resized_hw, **mode)
    tensor = backbone.normalize(tensor, transform.resized_hw)
    pad_h = backbone.input_size - transform.resized_hw[0]
    pad_w = backbone.input_size - transform.resized_hw[1]
    return F.pad(tensor, (0, pad_w, 0, pad_h)), [transform] * len(images)


SEED_LOGIT = 10.0  # |logit| of a mask given as a dense prompt: confident, as the model's own masks are


def mask_to_low_res_logits(mask2d: np.ndarray, low_res: int = 256) -> np.ndarray:
    """A binary slice mask (H, W) as low-res logits (low_res, low_res) float32: the dense prompt a
    prediction's `low_res_logits` would be (the longest side fills the grid, padding bottom/right,
    as `ImageTransform.logits_to_image` reads it back), +SEED_LOGIT inside, -SEED_LOGIT outside."""
    mask = np.asarray(mask2d, dtype=bool)
    if mask.ndim != 2 or not mask.size:
        raise InputError(f"mask: expected a 2D slice mask, got shape {mask.shape}")
    height, width = mask.shape
    scale = low_res / max(height, width)
    rows = max(1, int(height * scale + 0.5))
    cols = max(1, int(width * scale + 0.5))
    # nearest neighbour: the source pixel under each low-res pixel's centre
    source_rows = np.minimum(((np.arange(rows) + 0.5) * height / rows).astype(np.int64), height - 1)
    source_cols = np.minimum(((np.arange(cols) + 0.5) * width / cols).astype(np.int64), width - 1)
    logits = np.full((low_res, low_res), -SEED_LOGIT, dtype=np.float32)
    logits[:rows, :cols] = np.where(mask[np.ix_(source_rows, source_cols)], SEED_LOGIT, -SEED_LOGIT)
    return logits
