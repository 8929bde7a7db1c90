"""Evaluation sets, the Dice harness and `segmote evaluate` (SegMoTELib.evaluation)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, shared_path

from SegMoTELib.errors import InputError
from SegMoTELib.evaluation import (
    DecoderView,
    EvaluationReport,
    SampleResult,
    click_dice_curve,
    clicks_to_reach,
    decoder_views,
    dice_score,
    evaluate,
    evaluation_box,
)
from SegMoTELib.training.evalsets import detect_layout, iter_eval_samples
from SegMoTELib.training.simulated_user import error_regions


# --- evaluation sets --------------------------------------------------------------------------
def test_dev_eval_layouts_and_samples():
    dev = shared_path("dev_eval")
    assert detect_layout(dev / "medscribble") == "medscribble"
    assert detect_layout(dev / "ham10000") == "paired"
    assert detect_layout(dev / "biomedparse_demo") == "biomedparse"
    assert detect_layout(shared_path("train_pool")) == "train_pool"
    medscribble = list(iter_eval_samples(dev / "medscribble"))
    assert len(medscribble) == 17
    assert {s.dataset for s in medscribble} == {f"medscribble/{t}" for t in ("ACDC", "BTCV", "CHAOS", "SCD")}
    biomedparse = list(iter_eval_samples(dev / "biomedparse_demo"))
    assert len(biomedparse) == 56 and len({s.case for s in biomedparse}) == 19
    liver = next(s for s in biomedparse if s.case == "06_CT_abdomen" and s.target == "liver")
    assert liver.dataset == "biomedparse_demo/CT" and liver.image.shape == (512, 512, 3)
    for sample in medscribble + biomedparse + list(iter_eval_samples(dev / "ham10000")):
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3
        assert sample.mask.dtype == bool and sample.mask.shape == sample.image.shape[:2] and sample.mask.any()
    prompt_free = [(s.dataset, s.target) for s in iter_eval_samples(dev / "biomedparse_demo", prompt_free_only=True)]
    assert prompt_free == [("biomedparse_demo/X-Ray", "lung"), ("biomedparse_demo/dermoscopy", "melanoma")]


def test_train_pool_eval_samples_limit_and_prompt_free(tmp_path):
    jsrt = shared_path("train_pool", "jsrt_scr_chest_xray")
    samples = list(iter_eval_samples(jsrt, max_per_dataset=2))
    assert [(s.case, s.target) for s in samples] == [
        (case, target) for case in ("JPCLN001", "JPCLN002") for target in ("right_lung", "left_lung", "heart")]
    lungs = list(iter_eval_samples(jsrt, prompt_free_only=True, max_per_dataset=2))
    assert [s.target for s in lungs] == ["lungs", "lungs"]
    with pytest.raises(Exception, match="unknown layout"):
        detect_layout(tmp_path)


# --- Dice and boxes ---------------------------------------------------------------------------
def test_dice_score_by_hand_and_thin_box_widening():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :2] = True
    b[0, 1:4] = True
    assert dice_score(a, b) == pytest.approx(2 * 1 / 5)
    assert dice_score(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    row = np.zeros((10, 10), bool)
    row[9, 2:6] = True
    assert evaluation_box(row).tolist() == [2, 8, 5, 9]


# --- the harness with a scripted predictor ----------------------------------------------------
class ScriptedPredictor:
    """Predicts a 13×13 square around each positive click, minus squares around negative clicks."""

    def __init__(self, shape):
        self.shape = shape
        self.uses_adapter, self.box_decoder = True, "base"
        self.calls = []

    def set_image(self, image):
        self.image = image

    def predict(self, prompt=None, *, points=None, labels=None, box=None, mask_input=None, multimask=False,
                decoder=None):
        if prompt is not None:  # the prompt value, as the evaluation gives it
            points, labels, box, mask_input = (prompt.points_array(), prompt.labels_array(), prompt.pixel_box(),
                                               prompt.mask_input)
        self.calls.append(SimpleNamespace(points=points, labels=labels, box=box, mask_input=mask_input,
                                          decoder=decoder))
        mask = np.zeros(self.shape, bool)
        if box is not None:
            x0, y0, x1, y1 = np.asarray(box, int)
            mask[y0:y1 + 1, x0:x1 + 1] = True
        for (x, y), label in zip(np.asarray(points if points is not None else [], int).reshape(-1, 2),
                                 labels if labels is not None else []):
            mask[max(0, y - 6):y + 7, max(0, x - 6):x + 7] = bool(label)
        logits = np.full((1, 256, 256), len(self.calls), np.float32)
        return SimpleNamespace(masks=mask[None], low_res_logits=logits, scores=np.ones(1))


def test_click_refinement_clicks_on_errors_and_passes_previous_logits():
    gt = np.zeros((64, 64), bool)
    gt[10:50, 10:40] = True
    predictor = ScriptedPredictor(gt.shape)
    view = DecoderView(predictor, "segmote")
    curve = click_dice_curve(view, gt, clicks=5)
    assert len(curve) == 5 and curve[-1] > curve[0]
    first, *later = predictor.calls
    assert first.mask_input is None and first.labels.tolist() == [1]
    assert gt[int(first.points[0, 1]), int(first.points[0, 0])]
    previous_mask = np.zeros_like(gt)
    x, y = first.points[0].astype(int)
    previous_mask[max(0, y - 6):y + 7, max(0, x - 6):x + 7] = True
    for number, call in enumerate(later, start=1):
        assert call.mask_input is not None and call.mask_input[0, 0] == number  # the previous call's logits
        x, y = call.points[-1].astype(int)
        false_negative, false_positive = error_regions(gt, previous_mask)
        assert (false_negative if call.labels[-1] == 1 else false_positive)[y, x]
        previous_mask = ScriptedPredictor(gt.shape).predict(points=call.points, labels=call.labels).masks[0]
    assert all(call.decoder == "segmote" for call in predictor.calls)  # each call names its decoder


def test_evaluate_scores_both_decoders_and_aggregates():
    gt = np.zeros((32, 32), bool)
    gt[4:20, 6:30] = True
    samples = [SimpleNamespace(dataset=d, case=str(i), target="t", image=np.zeros((32, 32, 3), np.uint8), mask=gt)
               for i, d in enumerate(["a", "a", "b"])]
    predictor = ScriptedPredictor(gt.shape)
    report = evaluate(samples, decoder_views(predictor), prompt="box")
    assert report.decoders == ["segmote", "base"]
    assert {c.decoder for c in predictor.calls} == {"segmote", "base"}
    assert all(r.dice == {"segmote": 1.0, "base": 1.0} for r in report.samples)  # the scripted box is exact
    with pytest.raises(InputError, match="clicks"):
        evaluate(samples, decoder_views(predictor), prompt="click", clicks=0)
    with pytest.raises(InputError, match="adapter"):
        DecoderView(SimpleNamespace(uses_adapter=False), "segmote")


def test_report_per_dataset_macro_markdown_and_json():
    report = EvaluationReport("box", 1, ["segmote", "base"])
    report.samples = [SampleResult("a", "1", "t", {"segmote": 0.9, "base": 0.5}),
                      SampleResult("a", "2", "t", {"segmote": 0.7, "base": 0.7}),
                      SampleResult("b", "3", "t", {"segmote": 0.2, "base": 0.4})]
    rows = report.per_dataset()
    assert rows["a"]["n"] == 2 and rows["a"]["dice"]["segmote"] == pytest.approx(0.8)
    assert report.macro() == pytest.approx({"segmote": 0.5, "base": 0.5})  # mean of dataset means
    markdown = report.to_markdown()
    assert "| a | 2 | 80.0 | 60.0 |" in markdown and "**50.0**" in markdown
    data = json.loads(report.to_json())
    assert data["datasets"]["b"]["dice"]["base"] == pytest.approx(0.4) and data["n_targets"] == 3


# --- click curves and NoC ------------------------------------------------------------------------
def test_clicks_to_reach_counts_the_first_click_at_the_threshold_and_caps_at_the_clicks_evaluated():
    assert clicks_to_reach([0.5, 0.85, 0.95], 0.85) == 2  # reaching the threshold exactly counts
    assert clicks_to_reach([0.5, 0.85, 0.95], 0.90) == 3
    assert clicks_to_reach([0.91, 0.2], 0.90) == 1  # the first time, even if a later click loses it
    # never reached: the clicks evaluated (before: 20, as if 2 clicks given had been 20 needed)
    assert clicks_to_reach([0.5, 0.6], 0.85) == 2
    assert clicks_to_reach([0.1] * 24 + [0.99], 0.85, cap=20) == 20  # reached only after an explicit cap


def _strip(squares: int) -> np.ndarray:
    """A 13-pixel-high strip of `squares` 13×13 squares: the scripted predictor's click square
    covers one square exactly, so each click's Dice is a known fraction."""
    mask = np.zeros((40, 90), bool)
    mask[10:23, 5:5 + 13 * squares] = True
    return mask


def test_click_curves_and_noc_per_dataset_and_macro_on_constructed_masks():
    samples = [SimpleNamespace(dataset=d, case=str(i), target="t", image=np.zeros((40, 90, 3), np.uint8),
                               mask=_strip(n)) for i, (d, n) in enumerate([("a", 1), ("a", 2), ("b", 4)])]
    report = evaluate(samples, decoder_views(ScriptedPredictor((40, 90)), ["segmote"]), prompt="click", clicks=3)
    # one square: right at once; two: half, then the other half; four: 1, 2, 3 squares of 4
    curves = [s.curve["segmote"] for s in report.samples]
    assert curves == [pytest.approx(c) for c in ([1, 1, 1], [2 / 3, 1, 1], [2 / 5, 2 / 3, 6 / 7])]
    rows = report.per_dataset()
    assert rows["a"]["dice_per_click"]["segmote"] == pytest.approx([5 / 6, 1, 1])
    assert rows["a"]["noc"]["segmote"] == {"noc@85": 1.5, "noc@90": 1.5}
    assert rows["b"]["noc"]["segmote"] == {"noc@85": 3.0, "noc@90": 3.0}  # 6/7 = 85.7 %: never 90 in the 3 clicks
    macro = report.macro_curves()["segmote"]
    assert macro["dice_per_click"] == pytest.approx([(5 / 6 + 2 / 5) / 2, (1 + 2 / 3) / 2, (1 + 6 / 7) / 2])
    assert macro["noc"] == {"noc@85": 2.25, "noc@90": 2.25}
    data = json.loads(report.to_json())
    assert data["macro_curves"]["segmote"]["noc"] == {"noc@85": 2.25, "noc@90": 2.25} and data["noc_cap"] == 3
    assert [s["noc"]["segmote"] for s in data["samples"]] == [
        {"noc@85": 1, "noc@90": 1}, {"noc@85": 2, "noc@90": 2}, {"noc@85": 3, "noc@90": 3}]
    markdown = report.to_markdown()
    assert "| b | SegMoTE | 40.0 | 66.7 | 85.7 | 3.00 | 3.00 |" in markdown
    assert "| **macro average** | SegMoTE | **61.7** | **83.3** | **92.9** | **2.25** | **2.25** |" in markdown
    assert "within the 3 click(s) evaluated counts as 3" in markdown
    # the per-case table: one row per target and decoder, with the Dice after each click
    lines = report.to_csv().splitlines()
    assert lines[0] == "dataset,case,target,decoder,dice,dice_click_1,dice_click_2,dice_click_3,noc@85,noc@90"
    assert lines[3] == "b,2,t,segmote,0.857143,0.4,0.666667,0.857143,3,3"


def test_box_report_has_no_click_curves():
    report = EvaluationReport("box", 1, ["base"], [SampleResult("a", "1", "t", {"base": 0.9})])
    assert "Click curves" not in report.to_markdown() and "macro_curves" not in report.to_dict()


# --- the real model ---------------------------------------------------------------------------
PREDICTOR_MISSING = not (REPO / "SegMoTELib" / "predictor.py").exists()


@pytest.fixture(scope="module")
def base_predictor():
    if PREDICTOR_MISSING:
        pytest.skip("SegMoTELib/predictor.py is not written yet")
    pytest.importorskip("torch", reason="the predictor needs torch")
    from SegMoTELib.predictor import SegMoTEPredictor

    return SegMoTEPredictor(adapter=None, device="cpu", runtime="torch")


def test_box_dice_of_the_base_decoder_on_real_dev_eval_images(base_predictor):
    dev = shared_path("dev_eval")
    samples = [next(iter_eval_samples(dev / "medscribble" / "CHAOS")),
               next(iter_eval_samples(dev / "medscribble" / "ACDC")),
               next(iter_eval_samples(dev / "ham10000"))]
    report = evaluate(samples, decoder_views(base_predictor), prompt="box")
    assert report.decoders == ["base"]
    for result in report.samples:
        assert result.dice["base"] > 0.5, result


def test_segmote_and_base_views_share_one_embedding(base_predictor):
    from SegMoTELib.modeling import SegMoTEModel
    from SegMoTELib.predictor import SegMoTEPredictor

    predictor = SegMoTEPredictor(model=SegMoTEModel(base_predictor.model.backbone), device="cpu")
    sample = next(iter_eval_samples(shared_path("dev_eval", "medscribble", "CHAOS")))
    views = decoder_views(predictor)
    predictions = {}
    for name, view in views.items():
        view.set_image(sample.image)
        predictions[name] = view.predict(box=evaluation_box(sample.mask))
    assert {name: p.decoder for name, p in predictions.items()} == {"segmote": "segmote", "base": "base"}
    assert len(predictor._cache) == 1


def test_segmote_evaluate_command_writes_markdown_and_json(base_predictor, tmp_path):
    from SegMoTELib.cli import main

    ham = shared_path("dev_eval", "ham10000")
    assert main(["evaluate", str(ham), "--prompt", "box", "--adapter", "none", "--max-per-dataset", "1",
                 "--device", "cpu", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    data = json.loads((tmp_path / "out" / "evaluation_box.json").read_text())
    assert data["datasets"]["ham10000"]["n"] == 1 and data["macro"]["base"] > 0.5
    assert "| ham10000 | 1 |" in (tmp_path / "out" / "evaluation_box.md").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "evaluation_box.json", "evaluation_box.md", "evaluation_box_cases.csv"]
    cases = (tmp_path / "out" / "evaluation_box_cases.csv").read_text().splitlines()
    assert cases[0] == "dataset,case,target,decoder,dice" and len(cases) == 2 and cases[1].startswith("ham10000,")


def test_a_click_evaluation_writes_its_per_case_table_and_click_curve(base_predictor, tmp_path):
    from PIL import Image

    from SegMoTELib.cli import main

    ham = shared_path("dev_eval", "ham10000")
    assert main(["evaluate", str(ham), "--prompt", "click", "--clicks", "2", "--adapter", "none", "--max-per-dataset",
                 "2", "--device", "cpu", "-o", str(tmp_path / "out"), "--quiet"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation_click_2clicks.json", "evaluation_click_2clicks.md", "evaluation_click_2clicks_cases.csv",
        "evaluation_click_2clicks_curve.png"]
    cases = (out / "evaluation_click_2clicks_cases.csv").read_text().splitlines()
    assert cases[0].endswith("dice_click_1,dice_click_2,noc@85,noc@90") and len(cases) == 3
    for row in cases[1:]:
        assert all(int(noc) <= 2 for noc in row.split(",")[-2:])  # capped at the clicks evaluated
    assert Image.open(out / "evaluation_click_2clicks_curve.png").size == (600, 400)


def test_segmote_evaluate_command_rejects_bad_arguments(tmp_path, capsys):
    from SegMoTELib.cli import main

    assert main(["evaluate", str(tmp_path), "--adapter", "none"]) == 2
    assert "unknown layout" in capsys.readouterr().err
    ham = shared_path("dev_eval", "ham10000")
    assert main(["evaluate", str(ham), "--prompt", "auto", "--adapter", "none"]) == 2
    assert "needs an adapter" in capsys.readouterr().err
    assert main(["evaluate", str(ham), "--prompt", "click", "--clicks", "0"]) == 2
