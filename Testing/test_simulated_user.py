"""Prompt simulation (SegMoTELib.training.simulated_user) on constructed and real masks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image
from scipy import ndimage

from SegMoTELib.errors import InputError
from SegMoTELib.training.simulated_user import (
    central_click,
    central_half,
    deepest_error_click,
    depth_map,
    error_regions,
    first_click,
    jittered_box,
    refinement_click,
    tight_box,
)


def disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[1]) ** 2 + (xx - center[0]) ** 2 <= radius**2


def rectangle(shape, x0, y0, x1, y1):
    mask = np.zeros(shape, bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def ring():
    return disk((128, 128), (64, 64), 40) & ~disk((128, 128), (64, 64), 25)


def real_masks():
    """Binary targets of real train_pool masks: multi-label MRI, X-ray lungs, ultrasound, dermoscopy."""
    pool = shared_path("train_pool")
    files = [("acdc_cardiac_mri", "10005.png"), ("jsrt_scr_chest_xray", "JPCLN001.png"),
             ("busi_breast_us", "benign_1.png"), ("ham10000_skin_lesion", "ISIC_0024340.png"),
             ("curvas_abdomen_ct", None)]
    masks = []
    for dataset, name in files:
        folder = pool / dataset / "masks"
        path = folder / name if name else sorted(folder.glob("*.png"))[0]
        labels = np.array(Image.open(path))
        masks += [labels == value for value in np.unique(labels) if value]
    return masks


# --- boxes ------------------------------------------------------------------------------------
def test_tight_box_is_inclusive_pixel_extent():
    assert tight_box(rectangle((50, 60), 7, 3, 20, 11)) == (7.0, 3.0, 20.0, 11.0)


def test_jittered_box_stays_within_one_percent_of_the_side_and_inside_the_image():
    shape = (200, 300)
    masks = [rectangle(shape, 40, 30, 120, 90), rectangle(shape, 0, 0, 299, 5), rectangle(shape, 150, 100, 150, 100)]
    rng = np.random.default_rng(1)
    for mask in masks:
        tx0, ty0, tx1, ty1 = tight_box(mask)
        moved = set()
        for _ in range(300):
            x0, y0, x1, y1 = jittered_box(mask, rng)
            assert 0 <= x0 <= x1 <= 299 and 0 <= y0 <= y1 <= 199
            assert abs(x0 - tx0) <= 3.0 + 1e-9 and abs(x1 - tx1) <= 3.0 + 1e-9  # 1 % of width 300
            assert abs(y0 - ty0) <= 2.0 + 1e-9 and abs(y1 - ty1) <= 2.0 + 1e-9  # 1 % of height 200
            moved.add((round(x0, 6), round(y1, 6)))
        assert len(moved) > 100  # it really jitters


def test_jittered_box_without_jitter_is_the_tight_box_and_seeded_runs_repeat():
    mask = disk((64, 64), (30, 20), 9)
    assert jittered_box(mask, 0, jitter=0.0) == tight_box(mask)
    assert jittered_box(mask, 5) == jittered_box(mask, 5)
    assert jittered_box(mask, 5) != jittered_box(mask, 6)


def test_jittered_box_on_real_masks():
    rng = np.random.default_rng(0)
    for mask in real_masks():
        height, width = mask.shape
        tight = np.array(tight_box(mask))
        box = np.array(jittered_box(mask, rng))
        assert np.all(np.abs(box - tight) <= 0.01 * np.array([width, height, width, height]) + 1e-9)


# --- first click ------------------------------------------------------------------------------
def test_first_click_lies_in_the_central_half_of_a_disk():
    mask = disk((100, 100), (50, 40), 20)
    region = central_half(mask)
    assert abs(region.sum() - mask.sum() / 2) <= 0.05 * mask.sum()
    rng = np.random.default_rng(3)
    clicks = {first_click(mask, rng) for _ in range(400)}
    for x, y in clicks:
        assert mask[y, x] and region[y, x]
        assert np.hypot(x - 50, y - 40) <= 20 / np.sqrt(2) + 1.0  # the inner half of a disk's area
    assert len(clicks) > 50


def test_first_click_on_a_ring_is_on_the_ring_not_at_its_empty_centroid():
    mask = ring()
    rng = np.random.default_rng(0)
    for _ in range(200):
        x, y = first_click(mask, rng)
        assert mask[y, x] and central_half(mask)[y, x]


def test_first_click_on_real_masks_is_among_the_half_nearest_the_centroid():
    rng = np.random.default_rng(7)
    for mask in real_masks():
        ys, xs = np.nonzero(mask)
        distances = np.hypot(ys - ys.mean(), xs - xs.mean())
        median = np.sort(distances)[int(np.ceil(distances.size / 2)) - 1]
        for _ in range(20):
            x, y = first_click(mask, rng)
            assert mask[y, x]
            assert np.hypot(y - ys.mean(), x - xs.mean()) <= median + 1e-9


# --- central click ----------------------------------------------------------------------------
def test_central_click_is_the_deepest_pixel():
    assert central_click(disk((80, 80), (33, 47), 15)) == (33, 47)
    mask = ring()
    x, y = central_click(mask)
    assert mask[y, x]
    assert depth_map(mask)[y, x] == depth_map(mask).max()


def test_central_click_on_real_masks_is_inside_and_maximally_deep():
    for mask in real_masks():
        x, y = central_click(mask)
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        assert mask[y, x] and depth[y, x] == depth.max()


def test_depth_counts_the_image_border_as_outside():
    mask = np.ones((9, 9), bool)
    assert depth_map(mask)[0, 0] == 1.0 and depth_map(mask)[4, 4] == 5.0
    assert central_click(mask) == (4, 4)


# --- refinement clicks ------------------------------------------------------------------------
def test_refinement_click_is_positive_in_missed_object():
    gt = rectangle((100, 100), 10, 10, 70, 70)
    pred = rectangle((100, 100), 10, 10, 40, 70)  # right part of the object missed
    rng = np.random.default_rng(0)
    false_negative, _ = error_regions(gt, pred)
    for _ in range(100):
        x, y, label = refinement_click(gt, pred, rng)
        assert label == 1 and false_negative[y, x]
        assert depth_map(false_negative)[y, x] >= 0.5 * depth_map(false_negative).max()


def test_refinement_click_is_negative_in_the_larger_extra_region():
    gt = disk((120, 120), (40, 40), 15)
    pred = gt | rectangle((120, 120), 70, 70, 110, 110)  # a large false positive, nothing missed
    pred[40, 40] = False  # one missed pixel: fewer false negatives than false positives
    rng = np.random.default_rng(1)
    _, false_positive = error_regions(gt, pred)
    for _ in range(100):
        x, y, label = refinement_click(gt, pred, rng)
        assert label == 0 and false_positive[y, x]


def test_refinement_click_none_when_prediction_is_perfect_and_errors_on_bad_shapes():
    gt = disk((50, 50), (25, 25), 10)
    assert refinement_click(gt, gt.copy(), 0) is None
    assert deepest_error_click(gt, gt.copy()) is None
    with pytest.raises(InputError, match="pred_mask"):
        refinement_click(gt, gt[:40], 0)
    with pytest.raises(InputError, match="mask"):
        first_click(np.zeros((10, 10), bool), 0)
    with pytest.raises(InputError, match="2D"):
        central_click(np.ones((2, 3, 4), bool))


def test_refinement_click_on_real_masks_under_and_over_segmented():
    rng = np.random.default_rng(11)
    for gt in real_masks():
        shrunk = ndimage.binary_erosion(gt, iterations=3)
        grown = ndimage.binary_dilation(gt, iterations=3)
        if (gt & ~shrunk).any():
            x, y, label = refinement_click(gt, shrunk, rng)
            assert label == 1 and gt[y, x] and not shrunk[y, x]
        x, y, label = refinement_click(gt, grown, rng)
        assert label == 0 and grown[y, x] and not gt[y, x]


# --- deepest error click ----------------------------------------------------------------------
def test_deepest_error_click_picks_the_largest_connected_region():
    gt = rectangle((100, 100), 5, 5, 30, 30) | rectangle((100, 100), 50, 50, 95, 95)
    pred = np.zeros_like(gt)  # both squares missed: the bigger one (46 px side) must be chosen
    assert deepest_error_click(gt, pred) == (72, 72, 1)
    # A false positive larger than any false-negative region wins, with label 0.
    pred = gt | rectangle((100, 100), 0, 40, 45, 99)
    pred &= ~rectangle((100, 100), 10, 10, 12, 12)  # a small miss
    x, y, label = deepest_error_click(gt, pred)
    assert label == 0 and pred[y, x] and not gt[y, x]


def test_deepest_error_click_on_real_masks_lands_on_the_error_with_the_right_label():
    for gt in real_masks():
        height, width = gt.shape
        shifted = np.zeros_like(gt)
        shifted[:, 6:] = gt[:, : width - 6]  # the prediction is the object moved 6 px right
        click = deepest_error_click(gt, shifted)
        assert click is not None
        x, y, label = click
        false_negative, false_positive = error_regions(gt, shifted)
        assert (false_negative if label == 1 else false_positive)[y, x]
        # The chosen region is the largest connected error region.
        region = false_negative if label == 1 else false_positive
        labels, _ = ndimage.label(region, np.ones((3, 3)))
        chosen_size = (labels == labels[y, x]).sum()
        for error in (false_negative, false_positive):
            other, count = ndimage.label(error, np.ones((3, 3)))
            if count:
                assert chosen_size >= np.bincount(other.ravel())[1:].max()
