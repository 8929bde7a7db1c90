"""Benchmark inputs made on the spot (no files needed): a phantom CT slice with organ masks, and a
long CT-like volume with one tube-shaped structure to propagate through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..intensity import IntensityMapping, to_uint8
from ..volume import Volume

TUBE_PERIOD = 300
BENCH_MAPPING = IntensityMapping(modality="CT", preset="abdomen")  # a fixed window: no volume percentiles


@dataclass(frozen=True)
class PromptSlice:
    """A 512² phantom CT slice in 8 bits and the prompts the latency benchmark uses."""

    image: np.ndarray      # uint8 (H, W)
    truth: np.ndarray      # bool (H, W): the liver
    box: np.ndarray        # x0, y0, x1, y1 (inclusive pixels) around the liver
    click: np.ndarray      # (1, 2) x, y inside the liver, near its centroid
    clicks: np.ndarray     # (3, 2): two inside, one outside
    click_labels: np.ndarray


def _inner_point(mask: np.ndarray) -> np.ndarray:
    """The mask pixel nearest its centroid (inside even for a concave shape)."""
    ys, xs = np.nonzero(mask)
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return np.array([xs[nearest], ys[nearest]], dtype=np.float64)


def prompt_slice(size: int = 512, seed: int = 0) -> PromptSlice:
    from ..phantom import make_phantom

    phantom = make_phantom(seed=seed, shape=(8, size, size), spacing=(384.0 / size, 384.0 / size, 2.5))
    middle = phantom.image.array.shape[0] // 2
    image = to_uint8(phantom.image.array[middle], BENCH_MAPPING)
    truth = phantom.labels[middle] == phantom.label_of("liver")
    ys, xs = np.nonzero(truth)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
    inside = _inner_point(truth)
    second = _inner_point(truth & (np.arange(truth.shape[0])[:, None] > inside[1]))
    outside = np.array([min(box[2] + 12, size - 1), inside[1]])
    clicks = np.stack([inside, second, outside])
    return PromptSlice(image, truth, box, inside[None], clicks, np.array([1, 1, 0]))


@dataclass(frozen=True)
class TubeVolume:
    volume: Volume          # int16 Hounsfield units, [k, j, i]
    truth: np.ndarray       # bool [k, j, i]: the tube
    seed_index: int         # the axial slice prompted first
    seed_box_ras: np.ndarray  # (2, 3) opposite RAS corners of a box around the tube on that slice


def tube_volume(n_slices: int = 300, size: int = 512, seed: int = 0) -> TubeVolume:
    """A body-like ellipse (soft tissue, fat rim, a bright 'spine'), air around it and one tube (a
    contrast-filled vessel, 190 HU) that wanders and changes calibre along the slices."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    centre = size / 2.0
    body = ((xx - centre) / (0.42 * size)) ** 2 + ((yy - centre) / (0.32 * size)) ** 2 < 1
    fat = body & ~(((xx - centre) / (0.39 * size)) ** 2 + ((yy - centre) / (0.29 * size)) ** 2 < 1)
    spine = ((xx - centre) / (0.05 * size)) ** 2 + ((yy - centre - 0.18 * size) / (0.045 * size)) ** 2 < 1
    base = np.full((size, size), -1000.0, np.float32)
    base[body] = 45.0
    base[fat] = -90.0
    base[spine] = 600.0
    # one period over TUBE_PERIOD slices whatever n_slices: a short volume is a stretch of the same tube
    phase = (2.0 * np.pi / TUBE_PERIOD) * np.arange(n_slices, dtype=np.float32)
    cx = centre - 0.12 * size + 0.06 * size * np.sin(phase)
    cy = centre - 0.02 * size + 0.05 * size * np.cos(1.5 * phase)
    radius = 0.035 * size * (1.0 + 0.25 * np.sin(2.0 * phase))
    array = np.empty((n_slices, size, size), np.int16)
    truth = np.empty((n_slices, size, size), bool)
    for k in range(n_slices):
        tube = (xx - cx[k]) ** 2 + (yy - cy[k]) ** 2 < radius[k] ** 2
        hu = base.copy()
        hu[tube] = 190.0
        hu += rng.normal(0.0, 12.0, hu.shape).astype(np.float32)
        array[k] = np.clip(np.rint(hu), -1024, 3071)
        truth[k] = tube
    spacing = (384.0 / size, 384.0 / size, 1.0)
    volume = Volume(array, np.zeros(3), spacing, np.eye(3), modality="CT")
    middle = n_slices // 2
    js, is_ = np.nonzero(truth[middle])
    margin = max(1, round(0.006 * size))  # 3 pixels at 512²
    corners_ijk = np.array([[is_.min() - margin, js.min() - margin, middle],
                            [is_.max() + margin, js.max() + margin, middle]], float)
    return TubeVolume(volume, truth, middle, volume.ijk_to_ras_points(corners_ijk))


def volume_slices_uint8(tube: TubeVolume) -> np.ndarray:
    """The axial slices mapped to 8 bits (N, H, W): what the embedding benchmark embeds."""
    return to_uint8(tube.volume.array, BENCH_MAPPING)
