"""Curation metrics, gates and score against independent computations (OpenCV, skimage, scipy).

Border conventions under test (documented in SegMoTELib/curation/metrics.py): Laplacian and
Sobel with BORDER_REFLECT_101 (OpenCV's default), dilation/erosion ignoring outside pixels
(OpenCV's default morphology border), entropy over the 256-bin histogram of the whole slice.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import shared_path
from PIL import Image
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import shannon_entropy

from SegMoTELib.curation import (GATE_NAMES, METRIC_NAMES, QCConfig, evaluate_gates, metrics_batch,
                                 quality_score, records_from_volume, slice_metrics)
from SegMoTELib.curation.metrics import to_grey
from SegMoTELib.errors import InputError


def opencv_metrics(grey: np.ndarray, mask: np.ndarray) -> dict:
    """Straightforward OpenCV/skimage computation of every metric of one slice."""
    mask_u8 = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    band = (cv2.dilate(mask_u8, kernel) - cv2.erode(mask_u8, kernel)).astype(bool)
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    laplacian = cv2.Laplacian(grey, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    return {"mean": grey.astype(np.float64).mean(), "std": grey.astype(np.float64).std(),
            "fg_ratio": mask.mean(), "n_components": int(sk_label(mask, connectivity=2).max()),
            "sharpness": laplacian.var(), "contrast": grey.astype(np.float64).std(),
            "entropy": shannon_entropy(grey, base=2),
            "boundary_gradient": np.hypot(gx, gy)[band].mean() if band.any() else 0.0}


def scipy_metrics(grey: np.ndarray, mask: np.ndarray) -> dict:
    """The same with scipy.ndimage only (mode="mirror" is reflect-101)."""
    pixels = grey.astype(np.float64)
    square = np.ones((3, 3), bool)
    band = ndimage.binary_dilation(mask, square) & ~ndimage.binary_erosion(mask, square, border_value=1)
    magnitude = np.hypot(ndimage.sobel(pixels, 1, mode="mirror"), ndimage.sobel(pixels, 0, mode="mirror"))
    counts = np.unique(grey, return_counts=True)[1] / grey.size
    return {"sharpness": ndimage.laplace(pixels, mode="mirror").var(),
            "n_components": ndimage.label(mask, structure=square)[1],
            "entropy": float(-(counts * np.log2(counts)).sum()),
            "boundary_gradient": magnitude[band].mean() if band.any() else 0.0}


@pytest.fixture(scope="module")
def real_pairs():
    """About 120 real slices from every modality of train_pool: grey, mask (one per label)."""
    pool = shared_path("train_pool")
    pairs = []
    for dataset in sorted(p for p in pool.iterdir() if p.is_dir()):
        for image_path in sorted((dataset / "images").glob("*.png"))[:2]:
            with Image.open(image_path) as opened:
                image = np.asarray(opened if opened.mode in ("L", "RGB") else opened.convert("RGB"))
            labels = np.asarray(Image.open(dataset / "masks" / image_path.name))
            for value in np.unique(labels)[1:]:
                pairs.append((image_path.name, to_grey(image), labels == value))
    assert len(pairs) > 100
    return pairs


def _compare(ours: dict, reference: dict, where: str):
    for name, expected in reference.items():
        assert ours[name] == pytest.approx(expected, rel=1e-9, abs=1e-9), f"{name} of {where}"


def test_every_metric_matches_opencv_and_scipy_on_real_slices(real_pairs):
    shapes = {}
    for index, (_, grey, _mask) in enumerate(real_pairs):
        shapes.setdefault(grey.shape, []).append(index)
    for indices in shapes.values():
        batch = metrics_batch(np.stack([real_pairs[i][1] for i in indices]), np.stack([real_pairs[i][2] for i in indices]))
        for position, index in enumerate(indices):
            name, grey, mask = real_pairs[index]
            ours = {metric: batch[metric][position] for metric in METRIC_NAMES}
            _compare(ours, opencv_metrics(grey, mask), name)
            _compare(ours, scipy_metrics(grey, mask), name)


def test_slice_metrics_converts_rgb_with_601_luma():
    path = next(shared_path("train_pool").glob("ham10000*/images/*.png"))
    rgb = np.asarray(Image.open(path).convert("RGB"))
    luma = np.rint(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.uint8)
    grey = to_grey(rgb)
    assert np.array_equal(grey, luma)
    assert np.abs(grey.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 1
    mask = np.asarray(Image.open(path.parent.parent / "masks" / path.name)) > 0
    single = slice_metrics(rgb, mask)
    _compare(single, opencv_metrics(luma, mask), path.name)
    assert isinstance(single["n_components"], int)


def test_step_edge_has_the_hand_computed_values():
    # Left half 0, right half 100; mask = right half, touching the right image border.
    image = np.zeros((32, 64), np.uint8)
    image[:, 32:] = 100
    mask = np.zeros((32, 64), bool)
    mask[:, 32:] = True
    metrics = slice_metrics(image, mask)
    assert metrics["mean"] == 50 and metrics["std"] == 50 and metrics["contrast"] == 50
    assert metrics["entropy"] == pytest.approx(1.0)
    assert metrics["fg_ratio"] == 0.5 and metrics["n_components"] == 1
    # Laplacian: +100 in column 31, -100 in column 32, 0 elsewhere (reflect-101 adds nothing).
    assert metrics["sharpness"] == pytest.approx(2 * 100**2 / 64)
    # Band = columns 31 and 32 only (no band along the image border), where |Sobel| = 4 * 100.
    assert metrics["boundary_gradient"] == pytest.approx(400.0)


def test_constant_image_fails_the_std_gate():
    metrics = slice_metrics(np.full((64, 64), 128, np.uint8), np.pad(np.ones((20, 20), bool), 22))
    assert metrics["std"] == 0 and metrics["sharpness"] == 0 and metrics["entropy"] == 0
    passed, failures = evaluate_gates(metrics)
    assert not passed and failures == ["std=0 < 6"]


def _dots(count: int, size: int = 128) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    positions = [(r, c) for r in range(2, size - 2, 4) for c in range(2, size - 2, 4)][:count]
    for r, c in positions:
        mask[r, c] = True
    assert len(positions) == count
    return mask


def test_301_separate_dots_fail_the_component_gate_and_300_pass():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    config = QCConfig(fg_ratio_min=0.0)  # isolate the component gate: dots are a tiny foreground
    for count, should_pass in ((300, True), (301, False)):
        metrics = slice_metrics(image, _dots(count))
        assert metrics["n_components"] == count
        passed, failures = evaluate_gates(metrics, config)
        assert passed is should_pass
        if not should_pass:
            assert failures == ["n_components=301 > 300"]


def test_one_percent_foreground_fails_the_fg_gate():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[40:50, 40:50] = True  # 100 of 10,000 pixels
    metrics = slice_metrics(image, mask)
    assert metrics["fg_ratio"] == 0.01
    passed, failures = evaluate_gates(metrics)
    assert not passed and failures == ["fg_ratio=0.01 < 0.02"]
    mask[40:50, 40:60] = True  # 2 %: exactly on the inclusive bound
    assert evaluate_gates(slice_metrics(image, mask))[0]


def test_mean_gate_and_configured_thresholds():
    image = np.full((50, 50), 2, np.uint8)
    image[::2] = 12  # mean 7, std 5
    mask = np.zeros((50, 50), bool)
    mask[10:30, 10:30] = True
    metrics = slice_metrics(image, mask)
    assert evaluate_gates(metrics)[1] == ["std=5 < 6"]
    assert evaluate_gates(metrics, QCConfig(std_min=5.0))[0]
    assert evaluate_gates(metrics, QCConfig(std_min=5.0, mean_min=8))[1] == ["mean=7 < 8"]


def test_score_is_the_weighted_tanh_sum():
    metrics = {"sharpness": 150.0, "contrast": 30.0, "entropy": 5.0, "boundary_gradient": 12.0}
    expected = 0.3 * np.tanh(150 / 200) + 0.3 * np.tanh(30 / 40) + 0.2 * np.tanh(5 / 6) + 0.2 * np.tanh(12 / 20)
    assert quality_score(metrics) == pytest.approx(expected)
    config = QCConfig(weight_sharpness=1.0, weight_contrast=0, weight_entropy=0, weight_gradient=0, scale_sharpness=50)
    assert quality_score(metrics, config) == pytest.approx(np.tanh(3.0))


def test_bad_arguments_raise_input_errors():
    with pytest.raises(InputError, match="mask"):
        slice_metrics(np.zeros((8, 8), np.uint8), np.full((8, 8), 2))
    with pytest.raises(InputError, match="shape"):
        slice_metrics(np.zeros((8, 8), np.uint8), np.zeros((8, 9), bool))
    with pytest.raises(InputError, match="uint8"):
        slice_metrics(np.zeros((8, 8), np.float32), np.zeros((8, 8), bool))
    with pytest.raises(InputError, match="tau"):
        QCConfig(tau=0)


def test_records_from_a_real_volume_match_slice_metrics():
    import SimpleITK as sitk

    from SegMoTELib.intensity import to_uint8

    folder = shared_path("volumes", "totalseg_tests", "tests", "reference_files")
    volume = to_uint8(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_ct_sm.nii.gz"))), modality="CT")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    for axis in (0, 2):
        records = records_from_volume(volume, labels, axis, "totalseg", "example", "CT")
        expected_pairs = {(s, int(v)) for s in range(labels.shape[axis])
                          for v in np.unique(np.take(labels, s, axis=axis)) if v}
        assert {(r["slice_index"], r["label"]) for r in records} == expected_pairs
        for record in records[:: max(1, len(records) // 40)]:
            image = np.take(volume, record["slice_index"], axis=axis)
            mask = np.take(labels, record["slice_index"], axis=axis) == record["label"]
            _compare({k: record[k] for k in METRIC_NAMES}, opencv_metrics(image, mask), record["record_id"])
            assert record["passed"] == all(record[gate] for gate in GATE_NAMES)
            assert record["score"] == pytest.approx(quality_score(record))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), height=st.integers(2, 40), width=st.integers(2, 40), count=st.integers(1, 40),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))
def test_random_stacks_match_opencv(data, height, width, count, density, seed):
    """Any sizes, empty/full masks, masks touching the border, stacks across chunk boundaries."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, height, width), dtype=np.uint8)
    if data.draw(st.booleans()):
        images = (images // 64 * 64).astype(np.uint8)  # flat regions and ties
    masks = rng.random((count, height, width)) < density
    masks[rng.random(count) < 0.2] = False
    masks[rng.random(count) < 0.1] = True
    batch = metrics_batch(images, masks)
    for k in range(count):
        _compare({name: batch[name][k] for name in METRIC_NAMES}, opencv_metrics(images[k], masks[k]), f"mask {k}")
