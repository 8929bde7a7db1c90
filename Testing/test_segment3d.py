"""VolumeSegmenter: RAS prompts, propagation, 3D boxes.

Two kinds of tests:
- the walk's control flow (stop rules, ranges, progress, GPU prefetch, RAS ⇄ pixel flow) with a
  stand-in predictor that returns the phantom's true mask inside the prompt box — fast and exact;
- the real LiteMedSAM on real volumes (DeepLesion CT npz, pyradiomics MRI NRRD): a box on the
  middle slice of the ground truth, then propagation. Those assert only that the result is
  non-empty and where the box says; the 3D Dice is printed (run with -s) for the reports.
  The volumes are used whole (no crop): LiteMedSAM embeds every slice at 256², so cropping would
  not save time, and the walk visits only the lesion's slices plus one or two.
"""

from __future__ import annotations

import dataclasses
import glob

import numpy as np
import pytest
from conftest import dice, shared_path

from SegMoTELib.errors import InputError
from SegMoTELib.geometry import SliceRef, extract_slice, ras_to_slice_pixels, slice_pixels_to_ras
from SegMoTELib.intensity import IntensityMapping
from SegMoTELib.phantom import make_phantom
from SegMoTELib.slice_prompt import SlicePrompt
from SegMoTELib.predictor import Prediction
from SegMoTELib.segment3d import VolumeSegmenter
from SegMoTELib.walk_rules import PropagationRules, mask_box

AXIAL = 2  # the phantom's axial slices are along k


# --- a stand-in predictor: the true mask inside the box ---------------------------------------
class TruthInBoxPredictor:
    """Answers like a model whose mask is the ground truth clipped to the prompt box."""

    has_presence_head = False  # True: a learned walk reads `presence_of`

    def __init__(self, segmenter: VolumeSegmenter, truth_kji: np.ndarray, device: str = "cpu"):
        self.device = type("Device", (), {"type": device})()
        self.truth_of = {}
        for index in range(truth_kji.shape[0]):
            ref = SliceRef(AXIAL, index)
            self.truth_of[segmenter.slice_image(ref).tobytes()] = extract_slice(
                segmenter.volume.with_array(truth_kji.astype(np.uint8)), ref).astype(bool)
        self.current = None
        self.score_of = {}  # slice bytes -> predicted IoU to report (default 0.9)
        self.presence_of = {}  # slice bytes -> presence probability to report (default 0.9)
        self.shrink_at = set()  # slice bytes whose mask collapses to a few pixels
        self.elsewhere_at = set()  # slice bytes whose mask jumps to the air in the slice's corner
        self.swell_at = set()  # slice bytes whose mask fills the whole prompt box and more
        self.set_images, self.embedded, self.prompts = [], [], []

    def set_image(self, image, modality="auto", mapping=None):
        self.current = image.tobytes()
        self.set_images.append(self.current)

    def embed_images(self, images, modality="auto", mapping=None, batch_size=16, background=False):
        self.embedded.append([image.tobytes() for image in images])

    def predict(self, prompt=None, *, points=None, labels=None, box=None, mask_input=None, multimask=False,
                decoder=None):
        if prompt is not None:  # the prompt value, as segment_slice gives it
            points, labels, box, mask_input = (prompt.points_array(), prompt.labels_array(), prompt.pixel_box(),
                                               prompt.mask_input)
        self.prompts.append({"points": points, "labels": labels, "box": box, "mask_input": mask_input,
                             "decoder": decoder})
        truth = self.truth_of[self.current]
        mask = np.zeros_like(truth)
        if box is not None:
            x0, y0, x1, y1 = (int(v) for v in box)
            mask[y0:y1 + 1, x0:x1 + 1] = truth[y0:y1 + 1, x0:x1 + 1]
        else:
            mask = truth.copy()
        if self.current in self.shrink_at and mask.any():
            ys, xs = np.nonzero(mask)
            mask = np.zeros_like(mask)
            mask[ys[0], xs[0]] = True
        if self.current in self.swell_at and mask.any():
            ys, xs = np.nonzero(mask)
            grow = 3 * max(np.ptp(ys), np.ptp(xs))
            mask[max(ys.min() - grow, 0):ys.max() + grow, max(xs.min() - grow, 0):xs.max() + grow] = True
        if self.current in self.elsewhere_at and mask.any():
            moved = np.zeros_like(mask)
            moved.flat[:int(mask.sum())] = True  # same area, in the top rows: air outside the body
            mask = moved
        score = self.score_of.get(self.current, 0.9)
        presence = np.array([self.presence_of.get(self.current, 0.9)], np.float32) if self.has_presence_head else None
        return Prediction(masks=mask[None], scores=np.array([score], dtype=np.float32),
                          low_res_logits=np.zeros((1, 256, 256), np.float32), decoder="base", presence=presence)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=0)


def _fake(phantom, name="spleen", device="cpu"):
    segmenter = VolumeSegmenter(None, phantom.image, IntensityMapping(modality="CT", preset="abdomen"))
    fake = TruthInBoxPredictor(segmenter, phantom.mask(name), device=device)
    segmenter.predictor = fake
    return segmenter, fake


def _slices(labelmap) -> np.ndarray:
    return np.flatnonzero(labelmap.any(axis=(1, 2)))


def _box_corners_ras(volume, mask_kji, pad=0):
    """The 8 RAS corners of a mask's voxel bounding box (an ROI aligned with the volume)."""
    present = np.argwhere(mask_kji)
    low, high = present.min(axis=0)[::-1] - pad, present.max(axis=0)[::-1] + pad
    ijk = np.array([[i, j, k] for i in (low[0], high[0]) for j in (low[1], high[1]) for k in (low[2], high[2])], float)
    return volume.ijk_to_ras_points(ijk)


def _middle_box_seed(segmenter, truth):
    """Tight box of the truth on its middle slice, drawn on that slice (a flat ROI of 8 corners:
    two RAS corners would mean a RAS-aligned box, which an oblique volume's slice sees larger)."""
    present = _slices(truth)
    ref = SliceRef(AXIAL, int((present[0] + present[-1]) // 2))
    x0, y0, x1, y1 = mask_box(extract_slice(segmenter.volume.with_array(truth.astype(np.uint8)), ref).astype(bool))
    rectangle = slice_pixels_to_ras(segmenter.volume, ref, [[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    corners = np.concatenate([rectangle, rectangle])
    return ref, (x0, y0, x1, y1), segmenter.segment_slice(SlicePrompt.build("ras", box=corners))


# --- control flow with the stand-in ------------------------------------------------------------
def test_box_on_a_slice_reaches_the_predictor_as_the_same_pixel_box(phantom):
    segmenter, fake = _fake(phantom)
    ref, box, seed = _middle_box_seed(segmenter, phantom.mask("spleen"))
    assert seed.ref == ref
    np.testing.assert_array_equal(fake.prompts[-1]["box"], box)
    assert seed.labelmap[ref.index].any() and _slices(seed.labelmap).tolist() == [ref.index]


def test_click_in_ras_lands_on_its_pixel(phantom):
    segmenter, fake = _fake(phantom)
    ref = SliceRef(AXIAL, 40)
    click = slice_pixels_to_ras(phantom.image, ref, [[60.4, 101.6]])
    result = segmenter.segment_slice(SlicePrompt.build("ras", points=click, labels=[1]))
    assert result.ref == ref
    np.testing.assert_array_equal(fake.prompts[-1]["points"], [[60, 102]])  # rounded, not truncated
    np.testing.assert_array_equal(fake.prompts[-1]["labels"], [1])


def test_propagation_follows_the_organ_to_both_ends_and_stops(phantom):
    truth = phantom.mask("spleen")
    segmenter, _ = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    reports = []
    labelmap = segmenter.propagate(seed, progress=lambda done, total: reports.append((done, total)))
    assert _slices(labelmap).tolist() == _slices(truth).tolist()
    assert dice(labelmap, truth) > 0.95
    # the bar starts at the whole volume and ends where the walk ends: slices segmented, not the volume
    assert reports[0] == (1, phantom.labels.shape[0])
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert [total for _, total in reports] == sorted((total for _, total in reports), reverse=True)
    # the kept slices, plus in each direction the empty slice (the hand rules cross no doubtful slice
    # outside a 3D box)
    visited = len(_slices(truth)) + 2
    assert reports[-1] == (visited, visited) < (phantom.labels.shape[0], phantom.labels.shape[0])


def test_slice_range_bounds_the_walk(phantom):
    truth = phantom.mask("spleen")
    segmenter, _ = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    labelmap = segmenter.propagate(seed, slice_range=(seed.ref.index - 2, seed.ref.index + 3))
    assert _slices(labelmap).tolist() == list(range(seed.ref.index - 2, seed.ref.index + 4))
    with pytest.raises(InputError, match="slice_range"):
        segmenter.propagate(seed, slice_range=(0, seed.ref.index - 1))


def test_walk_stops_at_a_collapsed_mask_and_at_a_doubtful_one(phantom):
    truth = phantom.mask("spleen")
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    above, below = seed.ref.index + 4, seed.ref.index - 3
    fake.shrink_at.add(segmenter.slice_image(SliceRef(AXIAL, above)).tobytes())
    fake.score_of[segmenter.slice_image(SliceRef(AXIAL, below)).tobytes()] = 0.3
    labelmap = segmenter.propagate(seed, rules=PropagationRules(min_score=0.5, min_area_ratio=0.2, patience=0))
    assert _slices(labelmap).tolist() == list(range(below + 1, above))
    assert [(s.direction, s.last_index, s.reason) for s in segmenter.last_stops] == [
        (+1, above - 1, "area collapse"), (-1, below + 1, "score")]
    # the same walk with the rules relaxed goes on past both slices (the one-pixel mask's box is
    # then a point, so growth back to the organ must be allowed too)
    relaxed = segmenter.propagate(seed, rules=PropagationRules(min_score=0.2, min_area_ratio=0.0, max_area_growth=None,
                                                               max_centroid_shift=None))
    assert _slices(relaxed)[0] < below and _slices(relaxed)[-1] >= above


def test_walk_stops_where_the_mask_moves_to_other_tissue(phantom):
    truth = phantom.mask("spleen")
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    jump = seed.ref.index + 3
    fake.elsewhere_at.add(segmenter.slice_image(SliceRef(AXIAL, jump)).tobytes())
    labelmap = segmenter.propagate(seed, rules=PropagationRules(patience=0))
    assert _slices(labelmap)[-1] == jump - 1
    assert segmenter.last_stops[0].reason == "centroid jump"  # same area, far from the previous mask
    by_brightness = segmenter.propagate(seed, rules=PropagationRules(max_centroid_shift=None, patience=0))
    assert _slices(by_brightness)[-1] == jump - 1 and segmenter.last_stops[0].reason == "brightness"
    unchecked = segmenter.propagate(seed, rules=PropagationRules(max_centroid_shift=None, max_intensity_shift=None,
                                                                 patience=0))
    assert unchecked[jump].any() and not (unchecked[jump] & truth[jump]).any()


def test_brightness_is_compared_slice_to_slice_so_a_slow_drift_does_not_stop_the_walk(phantom):
    truth = phantom.mask("spleen")
    present = _slices(truth)
    drifting = phantom.image.array.astype(np.float32)
    for k in present:  # a bias-field-like drift: 12 HU (about 8 grey levels) brighter on each slice
        drifting[k][truth[k]] += 12.0 * (k - present[0])
    segmenter = VolumeSegmenter(None, phantom.image.with_array(drifting), IntensityMapping(modality="CT", preset="abdomen"))
    segmenter.predictor = TruthInBoxPredictor(segmenter, truth)
    _, _, seed = _middle_box_seed(segmenter, truth)
    slice_to_slice = segmenter.propagate(seed, rules=PropagationRules(grey_reference="previous"))
    assert _slices(slice_to_slice).tolist() == present.tolist()
    segmenter.propagate(seed)  # by default the seed's grey is the reference
    assert "brightness" in {stop.reason for stop in segmenter.last_stops}


def test_walk_stops_where_the_mask_swells_into_a_neighbour(phantom):
    truth = phantom.mask("spleen")
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    swell = seed.ref.index - 2
    fake.swell_at.add(segmenter.slice_image(SliceRef(AXIAL, swell)).tobytes())
    labelmap = segmenter.propagate(seed, rules=PropagationRules(max_centroid_shift=None, max_intensity_shift=None,
                                                                patience=0))
    assert _slices(labelmap)[0] == swell + 1 and segmenter.last_stops[1].reason == "area growth"
    legacy = segmenter.propagate(seed, rules=dataclasses.replace(PropagationRules.legacy(), max_intensity_shift=None))
    assert legacy[swell].sum() > 2.5 * labelmap[swell + 1].sum()


def test_each_next_slice_gets_the_previous_box_and_a_click_at_its_deepest_pixel(phantom):
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, phantom.mask("spleen"))
    segmenter.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1), rules=PropagationRules(use_point=True))
    prompt = fake.prompts[-1]
    x, y = prompt["points"][0].astype(int)
    assert prompt["labels"].tolist() == [1] and seed.mask2d[y, x]
    inner = seed.mask2d.copy()  # the deepest pixel: no outside pixel closer than the mask's half-width
    for _ in range(3):
        inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    assert inner[y, x]
    np.testing.assert_array_equal(prompt["box"], _grown(seed.mask2d, 0.02))
    segmenter.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1))
    assert fake.prompts[-1]["points"] is None  # by default the box alone (the shipped adapter's training)
    # an adapter trained on walk prompts declares them; the walk then follows its metadata
    fake.model = type("Model", (), {"metadata": {"propagation": {"use_point": True, "use_logits": True}}})()
    segmenter.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1))
    assert fake.prompts[-1]["points"] is not None and fake.prompts[-1]["mask_input"] is not None
    assert PropagationRules.for_predictor(fake, use_logits=False).use_logits is False  # the caller's word wins


def _grown(mask2d, margin):
    x0, y0, x1, y1 = mask_box(mask2d)
    grow = int(round(margin * max(mask2d.shape)))
    return [max(x0 - grow, 0), max(y0 - grow, 0), min(x1 + grow, mask2d.shape[1] - 1), min(y1 + grow, mask2d.shape[0] - 1)]


def test_refinement_pass_prompts_inner_slices_with_both_neighbours(phantom):
    truth = phantom.mask("spleen")
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, truth)
    plain = segmenter.propagate(seed)
    walked = len(fake.prompts)
    refined = segmenter.propagate(seed, rules=PropagationRules(refine=True))
    second_pass = fake.prompts[2 * walked - 1:]
    inner = len(_slices(plain)) - 3  # every kept slice but the seed and the two ends
    assert len(second_pass) == inner and all(p["mask_input"] is not None for p in second_pass)
    np.testing.assert_array_equal(refined, plain)  # the stand-in scores both answers alike: the first stays


def test_logits_of_the_previous_slice_are_passed_on_request(phantom):
    segmenter, fake = _fake(phantom)
    _, _, seed = _middle_box_seed(segmenter, phantom.mask("spleen"))
    segmenter.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1), rules=PropagationRules(use_logits=True))
    assert fake.prompts[-1]["mask_input"] is not None and fake.prompts[-1]["box"] is not None
    segmenter.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1))
    assert fake.prompts[-1]["mask_input"] is None


def test_box3d_stays_inside_the_box_and_its_slices(phantom):
    truth = phantom.mask("left kidney")
    segmenter, _ = _fake(phantom, "left kidney")
    # a box cut short: two slices less at each end, and 5 voxels less on one side
    present = np.argwhere(truth)
    low, high = present.min(axis=0) + [2, 0, 0], present.max(axis=0) - [2, 0, 5]
    ijk = np.array([[i, j, k] for i in (low[2], high[2]) for j in (low[1], high[1]) for k in (low[0], high[0])], float)
    labelmap = segmenter.segment_box3d(phantom.image.ijk_to_ras_points(ijk))
    inside = np.zeros_like(truth)
    inside[low[0]:high[0] + 1, low[1]:high[1] + 1, low[2]:high[2] + 1] = True
    assert labelmap.any() and not (labelmap & ~inside).any()
    assert _slices(labelmap).tolist() == list(range(low[0], high[0] + 1))
    assert dice(labelmap, truth & inside) > 0.95


def test_box3d_trusting_the_box_walks_to_its_ends_through_a_doubtful_slice(phantom):
    truth = phantom.mask("left kidney")
    segmenter, fake = _fake(phantom, "left kidney")
    present = _slices(truth)
    doubtful = present[-2]
    fake.score_of[segmenter.slice_image(SliceRef(AXIAL, doubtful)).tobytes()] = 0.3
    corners = _box_corners_ras(phantom.image, truth)
    trusted = segmenter.segment_box3d(corners, rules=PropagationRules(trust_box=True, patience=0))
    assert _slices(trusted).tolist() == present.tolist()  # the box says where the kidney ends
    impatient = segmenter.segment_box3d(corners, rules=PropagationRules(patience=0))
    assert _slices(impatient)[-1] == doubtful - 1 and segmenter.last_stops[0].reason == "score"
    # by default the walk crosses one doubtful slice: the slice beyond it passes, so both are kept
    default = segmenter.segment_box3d(corners)
    assert _slices(default)[-1] == present[-1] and default[doubtful].any()


def test_box3d_learned_walk_tries_each_doubted_slice_afresh_and_goes_on_to_the_box_end(phantom):
    """Two slices in a row where the organ looks absent (an artefact) end a learned walk that may cross
    one; inside a 3D box, the first is prompted afresh with the box and skipped, and the walk goes on:
    the slices beyond the gap, to the box's last one, are kept."""
    truth = phantom.mask("spleen")
    segmenter, fake = _fake(phantom)
    fake.has_presence_head = True
    present = _slices(truth)
    top = int(present[-1])
    for index in (top - 3, top - 2):
        fake.presence_of[segmenter.slice_image(SliceRef(AXIAL, index)).tobytes()] = 0.1
    corners = _box_corners_ras(phantom.image, truth)
    learned = PropagationRules(decision="learned", presence_threshold=0.5)
    stopped = segmenter.segment_box3d(corners, rules=learned.replace(sweep_box=False))
    upward = next(stop for stop in segmenter.last_stops if stop.direction > 0)
    assert _slices(stopped)[-1] == top - 4 and upward.reason == "presence"
    swept = segmenter.segment_box3d(corners, rules=learned)
    assert _slices(swept).tolist() == [i for i in present if i != top - 3]
    upward = next(stop for stop in segmenter.last_stops if stop.direction > 0)
    assert upward.reason == "end of range" and upward.last_index == top


def test_gpu_prefetches_the_walk_in_batches_and_cpu_embeds_lazily(phantom):
    truth = phantom.mask("spleen")
    for device, expect_batches in (("cuda", True), ("cpu", False)):
        segmenter, fake = _fake(phantom, device=device)
        _, _, seed = _middle_box_seed(segmenter, truth)
        segmenter.propagate(seed)
        if expect_batches:
            walked = {image for batch in fake.embedded for image in batch}
            assert len(fake.embedded) == 2  # one batch upwards, one downwards
            assert set(fake.set_images[1:]) <= walked
        else:
            assert fake.embedded == []


def test_bad_prompts_and_rules_are_refused(phantom):
    segmenter, _ = _fake(phantom)
    with pytest.raises(InputError, match="outside the volume"):
        segmenter.segment_slice(SlicePrompt.build("ras", points=[[1e4, 0.0, 0.0]]))
    with pytest.raises(InputError, match="prompt"):
        segmenter.segment_slice(SlicePrompt("ras"))
    with pytest.raises(InputError, match="slice_index"):
        segmenter.segment_auto("axial", slice_index=999)
    with pytest.raises(InputError, match="min_score"):
        PropagationRules(min_score=1.5)
    with pytest.raises(InputError, match="min_area_ratio"):
        PropagationRules(min_area_ratio=1.0)
    with pytest.raises(InputError, match="max_intensity_shift"):
        PropagationRules(max_intensity_shift=0.0)
    with pytest.raises(InputError, match="volume"):
        VolumeSegmenter(None, np.zeros((4, 4, 4)))


def test_whole_volume_is_mapped_with_one_window(phantom):
    segmenter = VolumeSegmenter(None, phantom.image, IntensityMapping(modality="CT", preset="abdomen"))
    assert segmenter.display.array.dtype == np.uint8
    # abdomen window (400, 40): -160 HU and below -> 0, 240 HU and above -> 255, on every slice alike
    hu = phantom.image.array
    assert np.all(segmenter.display.array[hu <= -160] == 0) and np.all(segmenter.display.array[hu >= 240] == 255)
    pixels = ras_to_slice_pixels(phantom.image, SliceRef(AXIAL, 10), phantom.image.ijk_to_ras_points([[5, 7, 10]]))
    x, y = np.rint(pixels[0]).astype(int)
    assert segmenter.slice_image(SliceRef(AXIAL, 10))[y, x] == segmenter.display.array[10, 7, 5]


# --- the real model on real volumes -----------------------------------------------------------
def _npz_cases():
    return sorted(glob.glob(str(shared_path("volumes", "medsam2_deeplesion_npz") / "data" / "*" / "*.npz")))


def _pyradiomics_case(name):
    from SegMoTELib.io import read_labelmap, read_volume

    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    return read_volume(folder / f"{name}_image.nrrd"), read_labelmap(folder / f"{name}_label.nrrd")


def _real_cases():
    from SegMoTELib.io import read_npz_case

    for path in _npz_cases():
        image, labels = read_npz_case(path)
        yield path.rsplit("/", 1)[-1], image, labels.array > 0
    for name in ("brain1", "breast1"):
        image, labels = _pyradiomics_case(name)
        yield name, image, labels.array > 0


@pytest.mark.parametrize("case", ["CT_Lesion_000001", "CT_Lesion_000015", "brain1", "breast1"])
def test_propagation_from_a_middle_slice_box_on_real_volumes(base_predictor, case):
    name, image, truth = next(c for c in _real_cases() if c[0].startswith(case))
    assert _slices(truth).size > 1
    segmenter = VolumeSegmenter(base_predictor, image)
    ref, box, seed = _middle_box_seed(segmenter, truth)
    labelmap = segmenter.propagate(seed)
    assert seed.area > 0 and labelmap[ref.index].any()
    # where the box says: the seed mask within the box; the walk near the lesion, not elsewhere
    x0, y0, x1, y1 = box
    assert not seed.mask2d[:, :x0].any() and not seed.mask2d[:, x1 + 1:].any()
    assert not seed.mask2d[:y0].any() and not seed.mask2d[y1 + 1:].any()
    present = _slices(truth)
    assert _slices(labelmap)[0] >= present[0] - 2 and _slices(labelmap)[-1] <= present[-1] + 2
    box3d = segmenter.segment_box3d(_box_corners_ras(image, truth))
    assert box3d.any() and not (box3d & ~_bounding_box(truth)).any()
    print(f"\n{name}: 3D Dice, middle-slice box + propagation {dice(labelmap, truth):.3f} "
          f"(slices {_slices(labelmap).tolist()} vs truth {present.tolist()}); 3D box {dice(box3d, truth):.3f}")


def _bounding_box(mask):
    present = np.argwhere(mask)
    low, high = present.min(axis=0), present.max(axis=0)
    box = np.zeros_like(mask)
    box[low[0]:high[0] + 1, low[1]:high[1] + 1, low[2]:high[2] + 1] = True
    return box


def test_box3d_on_the_phantom_with_the_real_model(base_predictor):
    """A coarser phantom (5 mm slices, fewer embeddings); rotated, flipped grid end to end."""
    coarse = make_phantom(seed=2, shape=(28, 176, 208), spacing=(1.5, 1.5, 5.0))
    truth = coarse.mask("spleen")
    segmenter = VolumeSegmenter(base_predictor, coarse.image, IntensityMapping(modality="CT", preset="abdomen"))
    labelmap = segmenter.segment_box3d(_box_corners_ras(coarse.image, truth))
    score = dice(labelmap, truth)
    print(f"\nphantom spleen (5 mm slices), 3D box: Dice {score:.3f}")
    assert score > 0.8
