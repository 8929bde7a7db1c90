"""Curation throughput: the local process engine vs local Ray with 1, 2, 4 workers, same input.

Headless; prints one JSON object (also written to --json FILE). Times only the measuring stage
(the part the engines run; Ray's start-up is reported separately), with export and plots off, and
checks that every run's manifest is byte-identical to the first one's.

    .venv/bin/python scripts/bench_curation_engines.py ../shared/data/train_pool --workers 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _run(sources, out: Path, engine, target: int) -> dict:
    from SegMoTELib.curation import run_curation

    summary = run_curation(sources, target, out, engine=engine, progress=False, export=False, plots=False,
                           workers=max(1, getattr(engine, "workers", 1) or 1))
    timing = summary["timing"]
    return {"engine": timing["engine"], "workers": timing["workers"], "units": timing["units"],
            "slices": timing["slices_measured"], "measure_seconds": round(timing["measure_seconds"], 3),
            "slices_per_second": round(timing["slices_per_second"], 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--target", type=int, default=1000)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=("local", "ray"))
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)

    from SegMoTELib.curation.engine import LocalCurationEngine
    from SegMoTELib.curation.ray_engine import RayCurationEngine

    results, reference = [], None
    with tempfile.TemporaryDirectory(prefix="segmote-bench-engines-") as scratch:
        for engine_name in args.engines:
            for workers in args.workers:
                out = Path(scratch) / f"{engine_name}-{workers}"
                if engine_name == "local":
                    row = _run(args.sources, out, LocalCurationEngine(workers), args.target)
                else:
                    started = time.perf_counter()
                    with RayCurationEngine(num_cpus=workers) as engine:
                        startup = time.perf_counter() - started
                        row = _run(args.sources, out, engine, args.target)
                    row["ray_start_seconds"] = round(startup, 2)
                row["load_average_1min"] = round(os.getloadavg()[0], 1)
                manifest = (out / "manifest.csv").read_bytes()
                reference = reference or manifest
                row["manifest_identical"] = manifest == reference
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
    report = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} logical CPUs)",
              "python": platform.python_version(), "sources": args.sources, "runs": results}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if all(row["manifest_identical"] for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
