"""Quality metrics of 2D slices and their binary masks, vectorised over stacks (N, H, W).

Definitions (docs/CURATION.md), all on the 8-bit grey slice and its binary mask:

- ``mean`` μ, ``std`` σ (population, ddof = 0) and ``contrast`` C (= σ, the global std) and
  ``entropy`` H (Shannon, bits) all come from the exact 256-bin histogram of the whole slice.
- ``fg_ratio`` R_FG: foreground pixels / all pixels.
- ``n_components`` C_N: connected components of the mask, 8-connectivity.
- ``sharpness`` S: population variance of the 3×3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] (what
  ``cv2.Laplacian(ksize=1)`` and ``scipy.ndimage.laplace`` apply) over every pixel.
- ``boundary_gradient`` G: mean Sobel magnitude sqrt(gx² + gy²), with OpenCV's unnormalised
  3×3 kernels (``cv2.Sobel(ksize=3)``: [-1,0,1; -2,0,2; -1,0,1]), over the band
  ``dilate(mask, 3×3) − erode(mask, 3×3)``; 0 when the band is empty (empty or full mask).

Borders: the Laplacian and Sobel filters extend the image by reflection without repeating the
edge pixel (``BORDER_REFLECT_101``, OpenCV's default; ``mode="mirror"`` in scipy.ndimage,
``mode="reflect"`` in numpy.pad). Dilation and erosion look only at neighbours inside the image
(OpenCV's default morphology border; ``binary_erosion(border_value=1)``), so a mask touching the
image edge has no band along that edge.

Speed: each step is a whole-stack numpy operation on int16/uint8 buffers, in chunks of
`CHUNK` slices so the buffers stay in cache; the Sobel filter is evaluated only on band pixels,
and connected components are labelled in one `scipy.ndimage.label` call on a mosaic of the masks'
bounding boxes (the per-call overhead of `label` would dominate slice-by-slice).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError

METRIC_NAMES = ("mean", "std", "fg_ratio", "n_components", "sharpness", "contrast", "entropy",
                "boundary_gradient")
CHUNK = 16
LUMA_601 = (0.299, 0.587, 0.114)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_GREY_LEVELS = np.arange(256, dtype=np.float64)


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 as is; (H, W, 3|4) uint8 RGB(A) → ITU-R 601 luma, rounded to nearest."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"image: expected uint8 pixels for curation statistics, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float64)
        luma = rgb[..., 0] * LUMA_601[0] + rgb[..., 1] * LUMA_601[1] + rgb[..., 2] * LUMA_601[2]
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    raise InputError(f"image: expected a grey (H, W) or RGB (H, W, 3) image, got shape {image.shape}")


def as_binary_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """A bool array from bool or 0/1 input; anything else is an InputError (not silently > 0)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "uif":
        raise InputError(f"{name}: expected a binary mask, got dtype {mask.dtype}")
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(str(v) for v in values[:8])
        raise InputError(f"{name}: expected a binary mask (bool or 0/1), found values {shown}")
    return mask.astype(bool)


def slice_metrics(image_u8: np.ndarray, mask_bool: np.ndarray) -> dict:
    """Metrics of one slice (grey or RGB uint8) and its binary mask, as plain Python numbers."""
    grey = to_grey(image_u8)
    mask = as_binary_mask(mask_bool)
    if grey.shape != mask.shape:
        raise InputError(f"mask: shape {mask.shape} differs from the image shape {grey.shape}")
    batch = metrics_batch(grey[None], mask[None])
    return {name: (int(values[0]) if name == "n_components" else float(values[0]))
            for name, values in batch.items()}


def metrics_batch(images_u8: np.ndarray, masks_bool: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of a stack of slices (N, H, W) uint8 and their masks (N, H, W) bool."""
    images = np.asarray(images_u8)
    if images.ndim == 4:
        images = np.stack([to_grey(image) for image in images])
    masks = as_binary_mask(masks_bool, "masks")
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(f"images: expected a (N, H, W) uint8 stack, got shape {images.shape} dtype {images.dtype}")
    if masks.shape != images.shape:
        raise InputError(f"masks: shape {masks.shape} differs from the images' shape {images.shape}")
    return metrics_for_masks(images, masks, np.arange(images.shape[0]))


def metrics_for_masks(images: np.ndarray, masks: np.ndarray, image_of_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of M masks (M, H, W) drawn on N images (N, H, W): mask m lies on image_of_mask[m].

    Image statistics are computed once per image even when several labels share it.
    """
    image_of_mask = np.asarray(image_of_mask, dtype=np.intp)
    count, height, width = images.shape
    if height < 2 or width < 2:
        raise InputError(f"images: slices must be at least 2×2 pixels, got {height}×{width}")
    if image_of_mask.size and (image_of_mask.min() < 0 or image_of_mask.max() >= count):
        raise InputError("image_of_mask: index outside the image stack")
    result = {name: np.zeros(len(image_of_mask), dtype=np.int64 if name == "n_components" else np.float64)
              for name in METRIC_NAMES}
    for start in range(0, count, CHUNK):
        stop = min(start + CHUNK, count)
        selected = np.flatnonzero((image_of_mask >= start) & (image_of_mask < stop))
        if selected.size == 0:
            continue
        chunk_images = images[start:stop]
        image_stats = _image_statistics(chunk_images)
        padded = _pad_reflect101(chunk_images)
        image_stats["sharpness"] = _laplacian_variance(padded)
        local = image_of_mask[selected] - start
        for name, values in image_stats.items():
            result[name][selected] = values[local]
        mask_stats = _mask_statistics(padded, _take(masks, selected), local)
        for name, values in mask_stats.items():
            result[name][selected] = values
    return result


def _take(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """array[indices] without a copy when the indices are one contiguous run."""
    if indices.size and indices[-1] - indices[0] + 1 == indices.size:
        return array[indices[0]:indices[-1] + 1]
    return array[indices]


def _image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, std, contrast and entropy from each slice's exact 256-bin histogram."""
    pixels = images.shape[1] * images.shape[2]
    # One bincount per slice: offsetting slices into one call would need an intp copy of the stack.
    histograms = np.stack([np.bincount(image.ravel(), minlength=256) for image in images]).astype(np.float64)
    mean = histograms @ _GREY_LEVELS / pixels
    variance = (histograms * (_GREY_LEVELS[None, :] - mean[:, None]) ** 2).sum(axis=1) / pixels
    std = np.sqrt(variance)
    probabilities = histograms / pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probabilities > 0, probabilities * np.log2(probabilities), 0.0)
    return {"mean": mean, "std": std, "contrast": std.copy(), "entropy": -terms.sum(axis=1) + 0.0}


def _pad_reflect101(images: np.ndarray) -> np.ndarray:
    """int16 copy of the stack with a one-pixel reflect-101 border (d c b | a b c d)."""
    count, height, width = images.shape
    padded = np.empty((count, height + 2, width + 2), dtype=np.int16)
    padded[:, 1:-1, 1:-1] = images
    padded[:, 0, 1:-1] = images[:, 1]
    padded[:, -1, 1:-1] = images[:, -2]
    padded[:, :, 0] = padded[:, :, 2]
    padded[:, :, -1] = padded[:, :, -3]
    return padded


def _laplacian_variance(padded: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian, from exact integer sums."""
    height, width = padded.shape[1] - 2, padded.shape[2] - 2
    laplacian = np.add(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1])
    laplacian += padded[:, 1:-1, :-2]
    laplacian += padded[:, 1:-1, 2:]
    laplacian -= 4 * padded[:, 1:-1, 1:-1]  # |value| ≤ 1020: int16 is exact
    # Σ Laplacian telescopes to the border: along each axis Σ_i (P[i-1] + P[i+1] - 2 P[i]) =
    # P[first] + P[last] - P[second] - P[second-to-last] of the padded line (no full pass needed).
    p = padded
    total = (_line_sum(p[:, 0, 1:-1]) + _line_sum(p[:, -1, 1:-1]) - _line_sum(p[:, 1, 1:-1]) - _line_sum(p[:, -2, 1:-1])
             + _line_sum(p[:, 1:-1, 0]) + _line_sum(p[:, 1:-1, -1]) - _line_sum(p[:, 1:-1, 1]) - _line_sum(p[:, 1:-1, -2]))
    if width * 1020**2 < 2**31:
        # Row sums of squares fit int32 (≤ width·1020²); summing rows in int64 keeps it exact.
        squares = np.einsum("nij,nij->ni", laplacian, laplacian, dtype=np.int32).sum(axis=1, dtype=np.int64)
    else:
        as_float = laplacian.astype(np.float64)
        squares = np.einsum("nij,nij->n", as_float, as_float)
    pixels = height * width
    return squares / pixels - (total / pixels) ** 2


def _line_sum(line: np.ndarray) -> np.ndarray:
    return line.sum(axis=1, dtype=np.int64)


def _mask_statistics(padded_images: np.ndarray, masks: np.ndarray, image_index: np.ndarray) -> dict[str, np.ndarray]:
    """Foreground ratio, components and boundary gradient of M masks on their padded images."""
    count, height, width = masks.shape
    result = {"fg_ratio": np.zeros(count), "n_components": np.zeros(count, dtype=np.int64),
              "boundary_gradient": np.zeros(count)}
    mosaic = BoxMosaic(masks)
    if mosaic.present.size == 0:
        return result
    present = mosaic.present
    result["fg_ratio"][present] = mosaic.foreground / (height * width)
    result["n_components"][present] = mosaic.count_components()
    owner, row, column = mosaic.band_pixels()
    padded_width = width + 2
    centre = (image_index[present][owner] * ((height + 2) * padded_width)
              + (row + 1) * padded_width + (column + 1))
    gradient_sum = _band_gradient_sum(padded_images.ravel(), centre, padded_width, owner, present.size)
    band_size = np.bincount(owner, minlength=present.size)
    result["boundary_gradient"][present] = np.divide(gradient_sum, band_size, out=np.zeros(present.size),
                                                     where=band_size > 0)
    return result


def _band_gradient_sum(flat: np.ndarray, centre: np.ndarray, row_stride: int, owner: np.ndarray, count: int) -> np.ndarray:
    """Σ Sobel magnitude over the given pixels (flat indices of the padded stack), per owner."""
    def at(offset):
        return flat[centre + offset].astype(np.int32)

    up_left, up, up_right = at(-row_stride - 1), at(-row_stride), at(-row_stride + 1)
    left, right = at(-1), at(1)
    down_left, down, down_right = at(row_stride - 1), at(row_stride), at(row_stride + 1)
    gx = (up_right + 2 * right + down_right) - (up_left + 2 * left + down_left)
    gy = (down_left + 2 * down + down_right) - (up_left + 2 * up + up_right)
    magnitude = np.sqrt((gx * gx + gy * gy).astype(np.float64))
    return np.bincount(owner, weights=magnitude, minlength=count)


class BoxMosaic:
    """The non-empty masks of a stack, cropped to their bounding boxes and stacked in one image.

    Each block is a mask's box grown by `MARGIN` = 2 pixels, followed by one empty separator row;
    blocks are left-aligned. The band (dilate − erode) lies within one pixel of the box and its 3×3
    neighbourhoods within two. Inside the image the margin holds the real (background) pixels;
    outside it, copies of the edge rows/columns, so a 3×3 min/max there equals the min/max over
    in-image neighbours (this module's morphology border); copied edge pixels never join two
    components, and only the box ± 1 inside the image can hold band pixels. Work scales with the
    boxes' area rather than the slices', and `ndimage.label` runs once for all masks.
    """

    MARGIN = 2

    def __init__(self, masks: np.ndarray):
        count, self.height, self.width = masks.shape
        rows = masks.any(axis=2)
        columns = masks.any(axis=1)
        self.present = np.flatnonzero(rows.any(axis=1))
        if self.present.size == 0:
            return
        rows, columns = rows[self.present], columns[self.present]
        margin = self.MARGIN
        self.top = rows.argmax(axis=1)
        self.left = columns.argmax(axis=1)
        self.bottom = bottom = self.height - rows[:, ::-1].argmax(axis=1)
        self.right = right = self.width - columns[:, ::-1].argmax(axis=1)
        block_heights = bottom - self.top + 2 * margin
        block_widths = right - self.left + 2 * margin
        self.starts = np.concatenate(([0], np.cumsum(block_heights + 1)[:-1]))
        self.image = np.zeros((int((block_heights + 1).sum()), int(block_widths.max())), dtype=bool)
        self.row_owner = np.repeat(np.arange(self.present.size), block_heights + 1)
        self.foreground = np.zeros(self.present.size, dtype=np.int64)
        for k, m in enumerate(self.present):  # one slice copy per mask, no per-pixel Python
            start, height, width = self.starts[k], block_heights[k], block_widths[k]
            self.image[start:start + height, :width] = _block(masks[m], self.top[k] - margin, self.left[k] - margin,
                                                              height, width)
            self.foreground[k] = np.count_nonzero(masks[m, self.top[k]:bottom[k], self.left[k]:right[k]])

    def count_components(self) -> np.ndarray:
        """8-connected components per mask, from one `ndimage.label` call.

        `label` numbers components in raster order of their first pixel, and blocks are stacked
        vertically, so each block's labels form one consecutive run: its count is its largest
        label minus the previous block's largest.
        """
        labels, total = ndimage.label(self.image, structure=_EIGHT_CONNECTED)
        highest = np.maximum.reduceat(labels.ravel(), self.starts * self.image.shape[1])
        counts = np.diff(np.concatenate(([0], highest)))
        if total != highest[-1] or (counts <= 0).any():  # guards the raster-order property
            raise RuntimeError("scipy.ndimage.label no longer numbers components in raster order")
        return counts

    def band_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(block, image row, image column) of every band pixel: in-image 3×3 neighbourhood not uniform."""
        as_int = self.image.view(np.uint8)
        rows = as_int[:, :-2] + as_int[:, 1:-1]
        rows += as_int[:, 2:]
        box = rows[:-2] + rows[1:-1]
        box += rows[2:]
        box -= 1
        mosaic_row, mosaic_column = np.nonzero(box < 8)  # 0 < count < 9, as one unsigned compare
        mosaic_row += 1  # box[0, 0] is mosaic pixel (1, 1)
        owner = self.row_owner[mosaic_row]
        image_row = mosaic_row - self.starts[owner] - self.MARGIN + self.top[owner]
        image_column = mosaic_column + 1 - self.MARGIN + self.left[owner]
        # Keep the box ± 1 inside the image: drops copied margin pixels outside the image and the
        # separator row, whose neighbourhood reaches into the next block.
        inside = ((image_row >= np.maximum(self.top[owner] - 1, 0))
                  & (image_row <= np.minimum(self.bottom[owner], self.height - 1))
                  & (image_column >= np.maximum(self.left[owner] - 1, 0))
                  & (image_column <= np.minimum(self.right[owner], self.width - 1)))
        return owner[inside], image_row[inside], image_column[inside]


def _block(mask: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """mask[top:top+height, left:left+width], out-of-image rows/columns copying the edge ones."""
    if top >= 0 and left >= 0 and top + height <= mask.shape[0] and left + width <= mask.shape[1]:
        return mask[top:top + height, left:left + width]
    rows = np.clip(np.arange(top, top + height), 0, mask.shape[0] - 1)
    columns = np.clip(np.arange(left, left + width), 0, mask.shape[1] - 1)
    return mask[np.ix_(rows, columns)]
