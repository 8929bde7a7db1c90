"""Diagnostic (GPU): where a propagation through `segmote serve` loses time against in-process.

Runs, in one process and on one tube volume (N slices):
  1. in-process propagations on the bench's persistent worker thread, no server running;
  2. in-process propagations each on a fresh thread (as a server job runs);
  3. a local server (hooked by `diag_hook/sitecustomize.py`: each job's compute time, a cProfile
     of the job thread, the decoder's CUDA-graph count and failures, and on the job named by
     DIAG_TORCH_PROFILE a torch profiler table), propagations through it, with `py-spy dump`
     samples of the server during one of them when py-spy can attach;
  4. in-process again with the server alive and idle.
Run on the device as `BENCH=0 EVALS=0 EXTRA=scripts/diag_server_job.py bash scripts/gpu_eval.sh`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
from SegMoTELib.modeling.speed import fast_options
from SegMoTELib.predictor import SegMoTEPredictor
from SegMoTELib.segment3d import VolumeSegmenter
from SegMoTELib.slice_prompt import SlicePrompt
from SegMoTELib.service.launcher import LocalEngine

DEVICE = os.environ.get("DEVICE", "cuda")
SLICES = int(os.environ.get("N", "300"))
OUT = Path(os.environ.get("OUT", "/tmp/out"))
HOOK = Path(__file__).resolve().parent / "diag_hook"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def graph_state(predictor) -> str:
    graphs = predictor.decoder_graphs
    if graphs is None:
        return "no graphs"
    return f"{len(graphs.graphs._graphs)} graphs, failures {graphs.failures}"  # noqa: SLF001


def in_process(predictor, tube, shift: int, runner) -> tuple[float, int, list]:
    shifted = tube.volume.with_array(tube.volume.array + np.int16(shift), modality="CT")
    predictor.clear_cache()
    segmenter = VolumeSegmenter(predictor, shifted, BENCH_MAPPING)
    seed = runner(lambda: segmenter.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial"))
    sync()
    time.sleep(0.3)
    started = time.perf_counter()
    mask = runner(lambda: segmenter.propagate(seed))
    sync()
    return time.perf_counter() - started, int(mask.sum()), segmenter.last_stops


def on_fresh_thread(function):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", function()))
    thread.start()
    thread.join()
    return box["value"]


def py_spy_dumps(pid: int, count: int, log) -> None:
    spy = shutil.which("py-spy") or "/tmp/site/bin/py-spy"
    for index in range(count):
        time.sleep(0.4)
        try:
            done = subprocess.run([spy, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as error:
            log(f"--- py-spy dump {index}: {error}")
            return
        log(f"--- py-spy dump {index} (rc {done.returncode})\n{done.stdout[-6000:]}{done.stderr[-1500:]}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    tube = tube_volume(n_slices=SLICES)
    options = fast_options(DEVICE)
    predictor = SegMoTEPredictor(device=DEVICE, cache_size=SLICES + 16, **options)
    worker = ThreadPoolExecutor(1)

    def persistent(function):
        return worker.submit(function).result()

    shift = 0
    for name, runner, repeats in (("in-process, persistent worker, no server", persistent, 3),
                                  ("in-process, fresh thread, no server", on_fresh_thread, 2)):
        for _ in range(repeats):
            shift += 1
            seconds, voxels, stops = in_process(predictor, tube, shift, runner)
            log(f"{name}: {seconds:.3f} s, {voxels} voxels, stops {stops}; {graph_state(predictor)}")

    job_dir = OUT / "server_jobs"
    job_dir.mkdir(exist_ok=True)
    os.environ["DIAG_JOB_DIR"] = str(job_dir)
    os.environ.setdefault("DIAG_TORCH_PROFILE", "3")
    engine = LocalEngine(options=["--device", DEVICE, "--fast", "--cache-mb", "16384",
                                  "--max-voxels", str(max(tube.volume.array.size, 1 << 28))],
                         pythonpath=f"{HOOK}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    engine.start()
    try:
        client = engine.client()
        for repeat in range(4):
            shift += 1
            shifted = tube.volume.with_array(tube.volume.array + np.int16(shift), modality="CT")
            with client.open_volume(shifted, BENCH_MAPPING) as remote:
                seed = remote.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial")
                time.sleep(0.3)
                spy = None
                if repeat == 1:
                    spy = threading.Thread(target=py_spy_dumps, args=(engine.process.pid, 4, log))
                    spy.start()
                started = time.perf_counter()
                mask = remote.propagate(seed)
                seconds = time.perf_counter() - started
                if spy is not None:
                    spy.join()
            log(f"server job {repeat + 1}: client {seconds:.3f} s, {int(mask.sum())} voxels")
        for _repeat in range(2):
            shift += 1
            seconds, voxels, stops = in_process(predictor, tube, shift, persistent)
            log(f"in-process, server idle: {seconds:.3f} s, {voxels} voxels; {graph_state(predictor)}")
        client.close()
    finally:
        engine.stop()
    for path in sorted(job_dir.glob("*")):
        log(f"=== {path.name}\n{path.read_text()[-12000:]}")
    (OUT / "diag_server_job.txt").write_text("\n".join(lines))
    (OUT / "diag_server_job.json").write_text(json.dumps({"lines": lines}))


if __name__ == "__main__":
    main()
