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



# Logit given to a seed mask's inside (minus outside). LiteMedSAM's decoder refines its own previous
# low-res logits, which stay within about ±4 on real slices (left lung of the dev chest X-ray: ±3.6);
# a seed on that scale is refined like one: on that image, a click in a missing third of the lung
# with the incomplete mask as seed reached Dice 0.97 for ±2 and ±4, 0.96 for ±8, 0.93 for ±20
# (an unseeded click: 0.83). Testing/test_seed_mask.py keeps the choice honest.
SEED_MASK_LOGIT = 4.0


def mask_to_prompt_logits(mask2d, transform: ImageTransform, size: int = 256) -> np.ndarray:
    """A binary mask in image pixels (H, W) as a dense prompt: low-res logits (size, size) float32.

    The inverse of `ImageTransform.logits_to_image`: the mask is resized like the image (longest side
    to the model's input size), padded like it, brought to the decoder's low-res grid, and mapped to
    ±SEED_MASK_LOGIT (partial pixels on the edge in between). This is how a segment made by any tool
    seeds the model as the previous prediction would.
    """
    import torch
    import torch.nn.functional as F

    mask = np.asarray(mask2d, dtype=bool)
    if mask.shape != tuple(transform.original_hw):
        raise InputError(f"seed_mask: expected the slice's shape {tuple(transform.original_hw)}, got {mask.shape}")
    pixels = _resized(torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None], transform.resized_hw)
    pad_h = transform.input_size - transform.resized_hw[0]
    pad_w = transform.input_size - transform.resized_hw[1]
    pixels = _resized(F.pad(pixels, (0, pad_w, 0, pad_h)), (size, size))
    fraction = pixels[0, 0].clamp(0.0, 1.0).numpy()
    return ((2.0 * fraction - 1.0) * SEED_MASK_LOGIT).astype(np.float32)


def _resized(pixels, size_hw):
    """(1, 1, h, w) float tensor at `size_hw`: pixel-area averaging when shrinking, bilinear otherwise."""
    import torch.nn.functional as F

    if tuple(pixels.shape[-2:]) == tuple(size_hw):
        return pixels
    if size_hw[0] <= pixels.shape[-2] and size_hw[1] <= pixels.shape[-1]:
        return F.interpolate(pixels, size=tuple(size_hw), mode="area")
    return F.interpolate(pixels, size=tuple(size_hw), mode="bilinear", align_corners=False)


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
