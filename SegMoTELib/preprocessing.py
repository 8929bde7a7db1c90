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
        scale = input_size / max(height, width)
        return cls((height, width), (int(height * scale + 0.5), int(width * scale + 0.5)), input_size)

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

        upscaled = F.interpolate(low_res_logits, size=(self.input_size, self.input_size), mode="bilinear",
                                 align_corners=False)
        cropped = upscaled[..., : self.resized_hw[0], : self.resized_hw[1]]
        return F.interpolate(cropped, size=self.original_hw, mode="bilinear", align_corners=False)


def as_rgb_uint8(image: np.ndarray, modality: str = "auto", mapping: IntensityMapping | None = None) -> np.ndarray:
    """Any 2D grey image or (H, W, 3) RGB image → (H, W, 3) uint8, through the shared intensity mapping."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]  # RGBA screenshots: the alpha channel carries no anatomy
    if image.ndim == 2:
        grey = to_uint8(image, mapping or IntensityMapping(modality=modality))
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
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
    """(H, W, 3) uint8 → (1, 3, S, S) float tensor on `device` and the image's transform."""
    import torch
    import torch.nn.functional as F

    transform = ImageTransform.for_image(rgb.shape[0], rgb.shape[1], backbone.input_size)
    tensor = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float()
    if tensor.shape[-2:] != transform.resized_hw:
        # Pixel-area averaging when shrinking, as LiteMedSAM's own pipeline (cv2.INTER_AREA) did in
        # training: a wider anti-aliasing filter blurs small lesions and costs Dice on real slices.
        shrinking = transform.resized_hw[0] < rgb.shape[0]
        mode = {"mode": "area"} if shrinking else {"mode": "bilinear", "align_corners": False}
        tensor = F.interpolate(tensor, size=transform.resized_hw, **mode)
    tensor = backbone.normalize(tensor, transform.resized_hw)
    pad_h = backbone.input_size - transform.resized_hw[0]
    pad_w = backbone.input_size - transform.resized_hw[1]
    return F.pad(tensor, (0, pad_w, 0, pad_h)), transform
