"""Cohort throughput of `segmote batch` on Ray with 1, 2, ... workers (GPUs), headless, JSON out.

Builds `--studies` procedural CT phantoms (SegMoTELib.phantom: no data needed on the machine) as
.nii.gz with a cohort.csv whose rows box the liver through all its slices (3D box: one embedding
per slice), then runs the cohort once per `--workers` value on one Ray (each worker an actor with
one predictor, one GPU each when there are GPUs) and prints one JSON object (also --json FILE).
Each configuration writes into a fresh folder, so nothing is skipped; the masks of every
configuration are checked equal to the first one's.

    python scripts/bench_cohort.py --studies 32 --workers 1 2 --device cuda --fast --json $OUT/cohort.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_cohort(folder: Path, studies: int, shape=None) -> tuple[Path, int]:
    from SegMoTELib.io import write_volume
    from SegMoTELib.phantom import make_phantom

    rows, slices = [], 0
    for seed in range(studies):
        phantom = make_phantom(seed=seed, **({"shape": tuple(shape)} if shape else {}))
        image = folder / f"phantom_{seed:03d}.nii.gz"
        write_volume(phantom.image, image)
        present = np.argwhere(phantom.mask("liver"))
        low, high = present.min(axis=0), present.max(axis=0)  # k, j, i
        slices += int(high[0] - low[0] + 1)
        corners = phantom.image.ijk_to_ras_points([low[::-1], high[::-1]])
        rows.append((image.name, "ras-box:" + ",".join(f"{v:.3f}" for v in corners.ravel()), "liver"))
    table = folder / "cohort.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "name"])
        writer.writerows(rows)
    return table, slices


def _gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:  # noqa: BLE001 - only a label
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=32)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--adapter", default="default")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--shape", nargs=3, type=int, default=None, metavar=("K", "J", "I"),
                        help="phantom voxels (default: the phantom's 56 x 176 x 208); small for a CPU smoke run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from SegMoTELib.cohort import read_cohort, run_cohort
    from SegMoTELib.model_spec import ModelSpec
    from SegMoTELib.cohort.ray_actors import RayCohortEngine
    from SegMoTELib.io import read_labelmap
    from SegMoTELib.ray_session import RaySession

    model = ModelSpec(adapter=None if args.adapter == "none" else args.adapter, device=args.device, fast=args.fast)
    runs, reference = [], None
    with tempfile.TemporaryDirectory(prefix="segmote-bench-cohort-") as scratch:
        started = time.perf_counter()
        table, slices = _make_cohort(Path(scratch), args.studies, args.shape)
        build_seconds = time.perf_counter() - started
        rows = read_cohort(table).rows
        with RaySession(address=args.address, num_cpus=args.num_cpus or os.cpu_count()) as session:
            gpus = session.gpus()
            for workers in args.workers:
                out = Path(scratch) / f"out-{workers}"
                with RayCohortEngine(model, address=args.address, workers=workers) as engine:
                    summary = run_cohort(rows, out, engine, progress=False)
                masks = [read_labelmap(out / row.output_name()).array for row in rows if
                         (out / row.output_name()).is_file()]
                reference = reference if reference is not None else masks
                run = {"workers": workers, "gpus_in_cluster": gpus, "studies": summary["written"],
                       "failed": summary["failed"], "slices": slices, "seconds": round(summary["seconds"], 2),
                       "studies_per_second": round(summary["written"] / summary["seconds"], 3),
                       "slices_per_second": round(slices / summary["seconds"], 1),
                       "masks_identical_to_first": len(masks) == len(reference) and
                       all(np.array_equal(a, b) for a, b in zip(masks, reference))}
                runs.append(run)
                print(json.dumps(run), file=sys.stderr)
    report = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, GPU {_gpu_name()}", "device": args.device,
              "fast": args.fast, "studies": args.studies, "phantom_build_seconds": round(build_seconds, 1),
              "runs": runs}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if all(run["failed"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
