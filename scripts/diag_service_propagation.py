"""Diagnostic (GPU): where does the engine service lose time in a 300-slice propagation?

In one process, no server and no HTTP: the walk on the predictor itself, then on the service's
`SessionPredictor` (device gate, one `host.call` per slice, key bookkeeping); each repeat shifts the
voxels so that nothing is cached; then a cProfile of one propagation of each. Run on the device as
`BENCH=0 EVALS=0 EXTRA=scripts/diag_service_propagation.py bash scripts/gpu_eval.sh`
(DEVICE, N, REPEATS in the environment change the device, slice count and repeats).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
from SegMoTELib.modeling.speed import fast_options
from SegMoTELib.predictor import SegMoTEPredictor
from SegMoTELib.segment3d import VolumeSegmenter
from SegMoTELib.service.gate import BATCH
from SegMoTELib.service.host import EngineHost

DEVICE = os.environ.get("DEVICE", "cuda")
SLICES = int(os.environ.get("N", "300"))
REPEATS = int(os.environ.get("REPEATS", "4"))


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def segmenter_on(source, tube, shift: int) -> VolumeSegmenter:
    shifted = tube.volume.with_array(tube.volume.array + np.int16(shift), modality="CT")
    return VolumeSegmenter(source, shifted, BENCH_MAPPING)


def main() -> None:
    tube = tube_volume(n_slices=SLICES)
    predictor = SegMoTEPredictor(device=DEVICE, cache_size=SLICES + 16, **fast_options(DEVICE))
    host = EngineHost(predictor, 16384 << 20)
    worker = ThreadPoolExecutor(1)
    shift = 0
    for repeat in range(REPEATS):
        for name in ("direct", "host"):
            shift += 1
            predictor.clear_cache()
            source = predictor if name == "direct" else host.session_predictor(set(), BATCH)
            segmenter = segmenter_on(source, tube, shift)
            seed = worker.submit(segmenter.segment_slice, "axial", box_ras=tube.seed_box_ras).result()
            sync()
            started = time.perf_counter()
            mask = worker.submit(segmenter.propagate, seed).result()
            sync()
            print(repeat, name, f"{time.perf_counter() - started:.3f} s", int(mask.sum()), "voxels", flush=True)
    for name, source in (("host", host.session_predictor(set(), BATCH)), ("direct", predictor)):
        shift += 1
        predictor.clear_cache()
        segmenter = segmenter_on(source, tube, shift)
        seed = segmenter.segment_slice("axial", box_ras=tube.seed_box_ras)
        profile = cProfile.Profile()
        profile.enable()
        segmenter.propagate(seed)
        sync()
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(30)
        print(f"--- profile: {name}\n{text.getvalue()}")


if __name__ == "__main__":
    main()
