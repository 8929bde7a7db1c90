"""Where the CPU runtime's time goes (BENCHMARKS.md, "The optimized CPU runtime": the profile of
the targets it misses).

1. ONNX Runtime's own profiler on the encoder, SAM's decoder (box) and the SegMoTE decoder (click
   with previous logits): time per operator type and per block of the graph, per call.
2. A walk of `--walk-slices` slices of the bench's tube volume with the default predictor (ONNX
   Runtime, shipped adapter, learned walk) under cProfile: time in the encoder, in the decoder and
   in everything else (slicing, intensity mapping, hashing, resizing, the walk's decisions).

    PYTHONPATH=. .venv/bin/python scripts/profile_cpu_runtime.py --threads 2 [--repeats 5] [--walk-slices 12]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def _profiled_session(path: Path, threads: int, folder: str):
    import onnxruntime as ort

    from SegMoTELib.cpu_runtime.onnx_model import session_options

    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(folder, path.stem)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _block(node_name: str, depth: int) -> str:
    """'/encoder/layers.1/blocks.0/attn/MatMul_3' → '/encoder/layers.1/blocks.0' at depth 3."""
    parts = [part for part in node_name.split("/") if part]
    return "/" + "/".join(parts[:depth]) if len(parts) > depth else "/" + "/".join(parts[:-1] or parts)


def profile_graph(path: Path, feeds: dict, threads: int, repeats: int, depth: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        session = _profiled_session(path, threads, folder)
        session.run(None, feeds)  # warm-up (its events are dropped below)
        started = time.perf_counter()
        for _ in range(repeats):
            session.run(None, feeds)
        wall = (time.perf_counter() - started) / repeats
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [event for event in events if event.get("name") == "model_run"]
    first_timed = runs[1]["ts"] if len(runs) > 1 else 0
    by_type, by_block = defaultdict(float), defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time") or event["ts"] < first_timed:
            continue
        seconds = event["dur"] / 1e6 / repeats
        by_type[event["args"]["op_name"]] += seconds
        by_block[_block(event["name"][: -len("_kernel_time")], depth)] += seconds
    return {"wall_s": wall, "kernels_s": sum(by_type.values()), "by_type": dict(by_type), "by_block": dict(by_block)}


def _table(title: str, result: dict, top: int) -> str:
    lines = [f"{title}: {result['wall_s'] * 1e3:.1f} ms per call, operators {result['kernels_s'] * 1e3:.1f} ms"]
    for name, key in (("operator type", "by_type"), ("graph block", "by_block")):
        ranked = sorted(result[key].items(), key=lambda item: -item[1])[:top]
        lines.append(f"  by {name}: " + ", ".join(
            f"{label} {seconds * 1e3:.1f} ms ({100 * seconds / result['kernels_s']:.0f} %)" for label, seconds in ranked))
    return "\n".join(lines)


def profile_walk(predictor, n_slices: int) -> dict:
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
    from SegMoTELib.segment3d import VolumeSegmenter
    from SegMoTELib.slice_prompt import SlicePrompt

    tube = tube_volume(n_slices=n_slices, seed=0)
    segmenter = VolumeSegmenter(predictor, tube.volume, mapping=BENCH_MAPPING)
    predictor.clear_cache()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    seed = segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial",
                                   slice_index=tube.seed_index)
    labelmap = segmenter.propagate(seed)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    onnx = type(predictor.onnx)

    def cumulative(function) -> float:
        code = function.__code__
        for (filename, line, name), (_, _, _, total, _) in stats.stats.items():
            if filename == code.co_filename and line == code.co_firstlineno and name == code.co_name:
                return total
        return 0.0

    encoder, decoder = cumulative(onnx._encode_with), cumulative(onnx.__call__)
    slices = int(labelmap.any(axis=(1, 2)).sum())
    return {"wall_s": wall, "slices": slices, "encoder_s": encoder, "decoder_s": decoder,
            "other_s": wall - encoder - decoder, "stops": [stop.reason for stop in segmenter.last_stops]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--depth", type=int, default=3, help="graph-block depth of node names (default 3)")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--walk-slices", type=int, default=12, help="slices of the profiled walk (0: no walk)")
    args = parser.parse_args(argv)
    import torch

    from SegMoTELib.benchmarks.data import prompt_slice
    from SegMoTELib.predictor import SegMoTEPredictor

    torch.set_num_threads(args.threads)
    print(f"load average at the start {os.getloadavg()[0]:.2f}; {args.threads} threads", flush=True)
    predictor = SegMoTEPredictor(device="cpu", runtime="onnx")
    if predictor.onnx is None:
        print(predictor.notice, file=sys.stderr)
        return 2
    folder = predictor.onnx.folder
    sample = prompt_slice(seed=0)
    predictor.set_image(sample.image)
    entry = predictor._current  # noqa: SLF001 — the cached embedding the graphs read
    embedding, terms = entry.embedding.numpy(), entry.early.numpy()
    images = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    first = predictor.predict(points=sample.click, labels=[1]).low_res_logits[None]
    from SegMoTELib.cpu_runtime.onnx_model import point_list

    box_coords, box_labels = point_list(None, torch.as_tensor(np.asarray(sample.box, np.float32)[None] * 0.5))
    click_coords, click_labels = point_list((torch.as_tensor(np.asarray(sample.clicks, np.float32)[None] * 0.5),
                                             torch.as_tensor(np.asarray(sample.click_labels, np.float32)[None])), None)
    graphs = {
        "encoder (with the SegMoTE image terms)": ("encoder.onnx", {"images": images}),
        "SAM decoder, box": ("base.onnx", {"embedding": embedding, "coords": box_coords, "labels": box_labels,
                                           "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                                           "has_mask_input": np.zeros(1, np.float32)}),
        "SegMoTE decoder, 3 clicks + previous logits": (
            "segmote.onnx", {"embedding": embedding, "image_terms": terms, "coords": click_coords,
                             "labels": click_labels, "mask_input": first.astype(np.float32),
                             "has_mask_input": np.ones(1, np.float32)}),
    }
    for title, (file, feeds) in graphs.items():
        print(_table(title, profile_graph(folder / file, feeds, args.threads, args.repeats, args.depth), args.top),
              flush=True)
    if args.walk_slices:
        walk = profile_walk(predictor, args.walk_slices)
        per = max(walk["slices"], 1)
        print(f"walk of {walk['slices']} slices (default predictor, learned walk; stops: {', '.join(walk['stops'])}): "
              f"{walk['wall_s']:.1f} s = {walk['wall_s'] / per:.2f} s per slice: encoder {walk['encoder_s'] / per:.2f} s, "
              f"decoder {walk['decoder_s'] / per * 1e3:.0f} ms, everything else {walk['other_s'] / per * 1e3:.0f} ms "
              f"per slice (under cProfile)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
