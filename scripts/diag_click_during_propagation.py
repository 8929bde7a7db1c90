"""Diagnostic (GPU): a click's latency during another session's propagation, against the walk's
background embedding chunk (PREFETCH_SLICES, set in the server child by `diag_hook`).

For each chunk size: a local server, a 300-slice propagation through it (no score floor, so the
walk crosses the volume) timed twice after a warm-up, then clicks of a second session (its slice
embedded) sent back to back while the propagation runs.
Run on the device as `BENCH=0 EVALS=0 EXTRA=scripts/diag_click_during_propagation.py bash scripts/gpu_eval.sh`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
from SegMoTELib.service.launcher import LocalEngine
from SegMoTELib.slice_prompt import SlicePrompt
from SegMoTELib.walk_rules import PropagationRules

DEVICE = os.environ.get("DEVICE", "cuda")
SLICES = int(os.environ.get("N", "300"))
CHUNKS = [int(c) for c in os.environ.get("CHUNKS", "64,16,4").split(",")]
OUT = Path(os.environ.get("OUT", "/tmp/out"))
HOOK = Path(__file__).resolve().parent / "diag_hook"


def main() -> None:
    tube = tube_volume(n_slices=SLICES)
    ys, xs = np.nonzero(tube.truth[tube.seed_index])
    click = tube.volume.ijk_to_ras_points([[xs[len(xs) // 2], ys[len(ys) // 2], tube.seed_index]])
    lines = []
    for chunk in CHUNKS:
        os.environ["DIAG_PREFETCH"] = str(chunk)
        engine = LocalEngine(options=["--device", DEVICE, "--fast", "--cache-mb", "16384",
                                      "--max-voxels", str(1 << 28)],
                             pythonpath=f"{HOOK}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        engine.start()
        try:
            client, other_client = engine.client(), engine.client()
            clicker = client.open_volume(tube.volume, BENCH_MAPPING)
            clicker.segment_slice(SlicePrompt.build("ras", points=click), "axial")
            idle = []
            for _ in range(10):
                started = time.perf_counter()
                clicker.segment_slice(SlicePrompt.build("ras", points=click), "axial")
                idle.append(time.perf_counter() - started)
            walls, busy = [], []
            for repeat in range(4):
                shifted = tube.volume.with_array(tube.volume.array + np.int16(repeat + 1), modality="CT")
                with other_client.open_volume(shifted, BENCH_MAPPING) as walker:
                    seed = walker.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial")
                    done = threading.Event()
                    wall = {}

                    def walk(walker=walker, seed=seed, done=done, wall=wall):
                        started = time.perf_counter()
                        walker.propagate(seed, rules=PropagationRules(decision="rules", min_score=0.0))
                        wall["s"] = time.perf_counter() - started
                        done.set()

                    thread = threading.Thread(target=walk)
                    thread.start()
                    while repeat >= 2 and not done.is_set():  # clicks during the last two walks only
                        started = time.perf_counter()
                        clicker.segment_slice(SlicePrompt.build("ras", points=click), "axial")
                        if not done.is_set():
                            busy.append(time.perf_counter() - started)
                        time.sleep(0.005)
                    thread.join()
                    walls.append(wall["s"])
            ms = lambda values: " ".join(f"{1000 * v:.1f}" for v in sorted(values))  # noqa: E731
            line = (f"chunk {chunk}: propagation walls, sorted (one is a warm-up) {ms(walls)} ms; idle click median "
                    f"{1000 * np.median(idle):.1f} ms; {len(busy)} clicks during the walks: median "
                    f"{1000 * np.median(busy):.1f}, p90 {1000 * np.percentile(busy, 90):.1f} ms; all: {ms(busy)}")
            print(line, flush=True)
            lines.append(line)
            clicker.close()
            client.close()
            other_client.close()
        finally:
            engine.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "diag_click_during_propagation.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
