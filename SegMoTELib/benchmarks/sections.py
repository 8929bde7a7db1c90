"""The measurements of `segmote bench`, one function per section; each returns rows.

A row: {"measurement", "kind" ("latency" | "throughput"), "work" (items per call, throughput
only), "unit", "results" {contender: Timing.as_dict()}, "detail", "target"}. Contenders of one row
are timed in turns in the same run (`measure_interleaved`).
"""

from __future__ import annotations

import time

import numpy as np

from ..slice_prompt import SlicePrompt
from .contenders import FAST, ONNX, OURS, REFERENCE, Contenders
from .timing import measure_interleaved, synchronizer


def _row(measurement: str, timings: dict, kind: str = "latency", work: int = 1, detail: str = "",
         target: str = "") -> dict:
    return {"measurement": measurement, "kind": kind, "work": work, "results": {k: t.as_dict() for k, t in timings.items()},
            "detail": detail, "target": target}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)


# --- encoder --------------------------------------------------------------------------------------
def encoder_latency(c: Contenders, image: np.ndarray, repeats: int, targets: dict) -> list[dict]:
    """One slice, image → cached embedding: ours through set_image (mapping, hashing, resize,
    encoder) with an empty cache; the reference through _image_tensor + image_encoder."""
    sync = synchronizer(c.device)

    def ours(predictor):
        def call():
            predictor.clear_cache()
            predictor.set_image(image)
        return call

    calls = {REFERENCE: lambda: c.reference.embed(c.reference.preprocess([image]))}
    calls.update({name: ours(predictor) for name, predictor in c.bases().items()})
    timings = measure_interleaved(calls, repeats, sync=sync)
    detail = ""
    if c.onnx_adapter is not None:  # with an adapter the ONNX encoder also makes the fused features' image terms
        with_terms = measure_interleaved({ONNX: ours(c.onnx_adapter)}, max(3, repeats // 2))[ONNX]
        detail = (f"ours, ONNX Runtime with the shipped adapter (the encoder also computes the SegMoTE "
                  f"fused features' image terms, which PyTorch computes at the first prompt): {with_terms.median:.2f} s")
    return [_row(f"encoder, one {image.shape[0]}×{image.shape[1]} slice → embedding", timings,
                 target=targets.get("encoder", ""), detail=detail)]


# --- prompt → mask --------------------------------------------------------------------------------
def prompt_latency(c: Contenders, sample, repeats: int, targets: dict) -> list[dict]:
    """Prompt → mask at the image's size, embedding cached. Box with SAM's decoder, box with the
    SegMoTE decoder (what the shipped adapter uses for boxes), click, 3-click refinement with the
    previous logits, prompt-free (the SegMoTE decoder). The reference is the LiteMedSAM decoder with
    the same prompt (prompt-free: the whole-image box, as predict_array)."""
    sync = synchronizer(c.device)
    image, hw = sample.image, sample.image.shape
    reference_embedding = c.reference.embed(c.reference.preprocess([image]))
    bases, adapters = c.bases(), c.adapters()
    for predictor in (*bases.values(), *adapters.values()):
        predictor.set_image(image)
    first = {name: predictor.predict(points=sample.click, labels=[1]).low_res_logits for name, predictor in adapters.items()}
    _, first_reference = c.reference.decode(reference_embedding, hw, points=sample.click, labels=[1])
    clicks, labels = sample.clicks, sample.click_labels

    def each(predictors, call):
        return {name: (lambda predictor=predictor, name=name: call(predictor, name)) for name, predictor in predictors.items()}

    cases = {
        "box (SAM decoder)": (lambda: c.reference.decode(reference_embedding, hw, box=sample.box),
                              each(bases, lambda p, _: p.predict(box=sample.box))),
        "box (SegMoTE decoder, the shipped adapter's choice for boxes)": (
            lambda: c.reference.decode(reference_embedding, hw, box=sample.box),
            each(adapters, lambda p, _: p.predict(box=sample.box, decoder="segmote"))),
        "one click (SegMoTE decoder)": (
            lambda: c.reference.decode(reference_embedding, hw, points=sample.click, labels=[1]),
            each(adapters, lambda p, _: p.predict(points=sample.click, labels=[1]))),
        "3-click refinement (+ previous logits) (SegMoTE decoder)": (
            lambda: c.reference.decode(reference_embedding, hw, points=clicks, labels=labels, mask_logits=first_reference),
            each(adapters, lambda p, name: p.predict(points=clicks, labels=labels, mask_input=first[name]))),
        "prompt-free (SegMoTE decoder)": (lambda: c.reference.decode(reference_embedding, hw),
                                          each(adapters, lambda p, _: p.predict_auto())),
    }
    rows = []
    for name, (reference, ours) in cases.items():
        timings = measure_interleaved({REFERENCE: reference, **ours}, repeats, warmup=3, sync=sync)
        rows.append(_row(f"prompt → mask, {name}", timings, target=targets.get("prompt", ""),
                         detail=_agreement({key: call().masks[0] for key, call in ours.items()})))
    return rows


def _agreement(masks: dict) -> str:
    """Mask Dice of each other path against PyTorch's default path."""
    default = masks.get(OURS)
    parts = [f"{name} vs default {dice(default, mask):.4f}" for name, mask in masks.items()
             if name != OURS and default is not None]
    return "mask Dice " + ", ".join(parts) if parts else ""


# --- the CPU runtime's background embedding of neighbour slices -------------------------------------
def background_neighbours(c: Contenders, sample, repeats: int) -> list[dict]:
    """ONNX Runtime on a CPU: what a user scrolling one slice and clicking waits for. (1) A click on
    the current slice while its two neighbours embed in the background (lowest OS priority, one
    thread) against an idle click; (2) moving to a neighbour embedded meanwhile: set_image + click,
    against a neighbour not embedded yet (the foreground encoder). Each repeat uses fresh slices."""
    predictor = c.onnx_adapter
    if predictor is None:
        return []
    rng = np.random.default_rng(7)

    def slices(count):  # distinct slices: the phantom slice with a little noise (new cache keys)
        noisy = sample.image.astype(np.int16) + rng.integers(-2, 3, size=(count, *sample.image.shape))
        return list(np.clip(noisy, 0, 255).astype(np.uint8))

    predictor.set_image(sample.image)

    def click():
        return predictor.predict(points=sample.click, labels=[1])

    idle = measure_interleaved({ONNX: click}, repeats, warmup=2)[ONNX]
    busy, ready, fresh = [], [], []
    for _ in range(repeats):
        predictor.set_image(sample.image)
        neighbours = slices(2)
        predictor.embed_in_background(neighbours)
        time.sleep(0.05)  # the background thread has started
        started = time.perf_counter()
        click()
        busy.append(time.perf_counter() - started)
        predictor._background.wait_until_idle(600)  # noqa: SLF001 — the user looks at the slice meanwhile
        started = time.perf_counter()
        predictor.set_image(neighbours[0])
        click()
        ready.append(time.perf_counter() - started)
        started = time.perf_counter()
        predictor.set_image(slices(1)[0])
        click()
        fresh.append(time.perf_counter() - started)
    from .timing import Timing

    return [
        _row("one click while the 2 neighbour slices embed in the background (ONNX Runtime)", {ONNX: Timing(busy)},
             detail=f"the same click on an idle engine: {idle.median * 1e3:.1f} ms", target="≤ 30 ms (2 cores)"),
        _row("scroll one slice + click: neighbour embedded in the background (ONNX Runtime)", {ONNX: Timing(ready)},
             detail=f"a slice not embedded yet (foreground encoder + click): {Timing(fresh).median:.2f} s"),
    ]


# --- embedding throughput ---------------------------------------------------------------------------
def embedding_throughput(c: Contenders, slices: np.ndarray, batch_size: int, repeats: int, targets: dict) -> list[dict]:
    """Slices/s embedding a volume's slices into the cache. Ours: embed_images (batched); the
    reference: its preprocessing per slice, then image_encoder on batches of the same size."""
    import torch

    sync = synchronizer(c.device)
    images = list(slices)

    def reference(dtype=None):
        def call():
            for start in range(0, len(images), batch_size):
                c.reference.embed(c.reference.preprocess(images[start:start + batch_size]), autocast_dtype=dtype)
        return call

    def ours(predictor):
        def call():
            predictor.clear_cache()
            predictor.embed_images(images, batch_size=batch_size)
        return call

    calls = {REFERENCE: reference(), **{name: ours(predictor) for name, predictor in c.bases().items()}}
    if c.device.type == "cuda":
        calls[f"{REFERENCE}, bf16"] = reference(torch.bfloat16)
    detail = ""
    if c.fast_base is not None and c.fast_base.compiled_encoder is not None:  # its one-off compilation, not timed
        started = time.perf_counter()
        calls[FAST]()
        sync()
        detail = f"ours, fast: first call (compiling the encoder) {time.perf_counter() - started:.1f} s, not in the figures"
    timings = measure_interleaved(calls, repeats, sync=sync)
    c.clear_caches()
    return [_row(f"embedding throughput, {len(images)} slices of {images[0].shape[0]}², batches of {batch_size}",
                 timings, kind="throughput", work=len(images), target=targets.get("embedding", ""), detail=detail)]


# --- 3D propagation ---------------------------------------------------------------------------------
def propagation(c: Contenders, tube, repeats: int, targets: dict) -> list[dict]:
    """One structure through the volume, embeddings not cached: ours = segment_slice (box on the
    middle slice) + VolumeSegmenter.propagate; the reference = the wheel's predict_array on every
    slice in turn, prompted with the box of the previous slice's mask."""
    from ..segment3d import VolumeSegmenter
    from .data import BENCH_MAPPING
    from .walk import reference_walk

    sync = synchronizer(c.device)
    segmenters = {name: VolumeSegmenter(predictor, tube.volume, mapping=BENCH_MAPPING)
                  for name, predictor in c.bases().items()}
    labelmaps = {}

    def ours(name):
        segmenter = segmenters[name]

        def call():
            segmenter.predictor.clear_cache()
            seed = segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial",
                                           slice_index=tube.seed_index)
            labelmaps[name] = segmenter.propagate(seed)
        return call

    def reference():
        labelmaps[REFERENCE] = reference_walk(c.reference, next(iter(segmenters.values())), tube)

    # On a GPU one untimed walk each first (CUDA graphs captured, a compiled encoder compiled); on a
    # CPU a walk takes minutes and has nothing to warm up.
    warmup = 1 if c.device.type == "cuda" else 0
    timings = measure_interleaved({REFERENCE: reference, **{name: ours(name) for name in segmenters}}, repeats,
                                  warmup=warmup, sync=sync)
    c.clear_caches()
    slices = {name: int(labelmap.any(axis=(1, 2)).sum()) for name, labelmap in labelmaps.items()}
    detail = "; ".join(f"{name}: {slices[name]} slices, Dice vs truth {dice(labelmaps[name], tube.truth):.3f}"
                       for name in labelmaps)
    detail += "".join(f"; {name} vs default Dice {dice(labelmaps[name], labelmaps[OURS]):.4f}"
                      for name in segmenters if name != OURS and OURS in labelmaps)
    if c.onnx_adapter is not None:
        detail += "; " + _default_walk(c.onnx_adapter, tube)
    shape = tube.volume.array.shape
    return [_row(f"3D propagation of one structure, {shape[0]} slices of {shape[1]}×{shape[2]}", timings,
                 detail=detail, target=targets.get("propagation", ""))]


def _default_walk(predictor, tube) -> str:
    """What a user of the defaults waits for: the shipped adapter on ONNX Runtime, its box decoder for
    the seed and the learned walk (the presence head on the SegMoTE decoder at every slice), timed once
    after the row's contenders."""
    from ..segment3d import VolumeSegmenter
    from .data import BENCH_MAPPING

    segmenter = VolumeSegmenter(predictor, tube.volume, mapping=BENCH_MAPPING)
    predictor.clear_cache()
    started = time.perf_counter()
    seed = segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial",
                                   slice_index=tube.seed_index)
    labelmap = segmenter.propagate(seed)
    seconds = time.perf_counter() - started
    predictor.clear_cache()
    stops = ", ".join(stop.reason for stop in segmenter.last_stops)
    return (f"the default predictor (ONNX Runtime, shipped adapter, learned walk): {seconds:.1f} s, "
            f"{int(labelmap.any(axis=(1, 2)).sum())} slices, Dice vs truth {dice(labelmap, tube.truth):.3f} "
            f"(stops: {stops})")


# --- curation -------------------------------------------------------------------------------------
def curation(n_slices: int, repeats: int, workers: int | None) -> tuple[list[dict], dict]:
    """The curation engineer's benchmark (`benchmarks.curation.benchmark_curation`), our stacks vs
    the per-slice scipy reference, one process each; their full table is returned as well."""
    from .curation import benchmark_curation

    result = benchmark_curation(n_slices=n_slices, size=256, repeats=repeats, workers=workers)
    rows = []
    for processes in sorted({stats["processes"] for stats in result["results"].values()}):
        suffix = f", {processes} process" + ("es" if processes > 1 else "")
        ours = result["results"].get(f"segmote (stacks){suffix}")
        reference = result["results"].get(f"reference scipy (per slice){suffix}")
        if ours is None or reference is None:
            continue
        timings = {REFERENCE: _rates_as_timing(reference["runs"], n_slices), OURS: _rates_as_timing(ours["runs"], n_slices)}
        rows.append(_row(f"curation metrics, {n_slices} slices of 256²{suffix}", timings, kind="throughput",
                         work=n_slices, detail="reference: per-slice scipy.ndimage (benchmarks/curation.py)"))
    return rows, result


def _rates_as_timing(rates: list[float], n_slices: int):
    from .timing import Timing

    return Timing([n_slices / rate for rate in rates])
