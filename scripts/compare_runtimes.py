"""Accuracy of the optimized CPU runtime against PyTorch fp32: the same evaluations on both runtimes,
compared target by target (issue 21, item 3; MODEL_CARD.md, "CPU runtime").

For each runtime (torch, onnx), on the CPU, it runs
  segmote evaluate DEV_EVAL --prompt box                     (tight box; SegMoTE and base decoders)
  segmote evaluate DEV_EVAL --prompt click --clicks 5        (a click + 4 correction clicks)
  segmote evaluate DEV_EVAL --prompt auto                    (prompt-free targets)
  segmote evaluate-3d VOLUMES3D --split holdout [...]        (click + propagation, 3D box, oracle)
writing each report under OUT/<runtime>/, then compares the per-target Dice: mean difference
(optimized − PyTorch, Dice points), the worst target, and the targets worse by more than 3 points.
The bounds: mean difference within ±0.5 points and no target worse by more than 3 points; the
exit status is 1 when a comparison breaks them.

    PYTHONPATH=. .venv/bin/python scripts/compare_runtimes.py --out runtime_eval \\
        --dev-eval ../shared/data/dev_eval --volumes ../shared/data/volumes3d [--max-structures 2]
    (a subset: --volumes ../shared/data/volumes3d/acdc_cine_mri ../shared/data/volumes3d/chaos_t2_mri)

A 2-core CPU takes about 10-20 minutes per runtime for dev_eval and about a minute per hold-out
structure; `--skip-3d` / `--skip-2d` run one part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUNTIMES = ("torch", "onnx")
MEAN_BOUND, TARGET_BOUND = 0.5, 3.0  # Dice points


def _run(arguments: list[str]) -> None:
    from SegMoTELib.cli import main

    print("segmote " + " ".join(arguments), flush=True)
    status = main(arguments)
    if status != 0:
        raise SystemExit(f"segmote {arguments[0]} failed (exit status {status})")


DEV_EVAL_SETS = ("medscribble", "ham10000", "biomedparse_demo")  # the 78 targets of MODEL_CARD.md


def evaluate_2d(dev_eval: str, out: Path, runtime: str, clicks: int, max_per_dataset: int | None) -> None:
    data = [str(Path(dev_eval) / name) for name in DEV_EVAL_SETS]
    limit = ["--max-per-dataset", str(max_per_dataset)] if max_per_dataset else []
    common = ["--device", "cpu", "--runtime", runtime, "--quiet", *limit]
    _run(["evaluate", *data, "--prompt", "box", "--out", str(out / runtime), *common])
    _run(["evaluate", *data, "--prompt", "click", "--clicks", str(clicks), "--out", str(out / runtime), *common])
    _run(["evaluate", *data, "--prompt", "auto", "--out", str(out / runtime), *common])


def evaluate_3d(volumes: list[str], out: Path, runtime: str, max_structures: int | None, structures: str | None) -> None:
    extra = (["--max-structures", str(max_structures)] if max_structures else []) + \
        (["--structures", structures] if structures else [])
    _run(["evaluate-3d", *volumes, "--split", "holdout", "--device", "cpu", "--runtime", runtime, "--quiet",
          "--out", str(out / runtime), *extra])


def _targets_2d(report: dict) -> dict[tuple, float]:
    """(decoder, dataset, case, target) → Dice of one 2D report."""
    return {(decoder, s["dataset"], s["case"], s["target"]): dice
            for s in report["samples"] for decoder, dice in s["dice"].items()}


def _targets_3d(report: dict) -> dict[tuple, float]:
    """(method, dataset, case, structure) → Dice of one 3D report."""
    return {(method, s["dataset"], s["case"], s["name"]): score["dice"]
            for s in report["structures"] for method, score in s["scores"].items()}


def compare(reference: dict[tuple, float], optimized: dict[tuple, float]) -> dict:
    """Per group (decoder or method): n, mean Dice of each runtime, mean and worst difference (points)."""
    groups: dict[str, list[tuple]] = {}
    for key in sorted(set(reference) & set(optimized)):
        groups.setdefault(key[0], []).append(key)
    summary = {}
    for group, keys in groups.items():
        differences = [100 * (optimized[key] - reference[key]) for key in keys]
        worst = min(range(len(keys)), key=lambda index: differences[index])
        summary[group] = {
            "n": len(keys), "torch": 100 * sum(reference[k] for k in keys) / len(keys),
            "onnx": 100 * sum(optimized[k] for k in keys) / len(keys),
            "mean_difference": sum(differences) / len(keys), "worst_difference": differences[worst],
            "worst_target": " / ".join(keys[worst][1:]),
            "worse_than_bound": [" / ".join(k[1:]) for k, d in zip(keys, differences) if d < -TARGET_BOUND],
            "within_bounds": abs(sum(differences) / len(keys)) <= MEAN_BOUND and min(differences) >= -TARGET_BOUND,
        }
    missing = sorted(set(reference) ^ set(optimized))
    if missing:
        summary["_unmatched"] = [" / ".join(map(str, key)) for key in missing]
    return summary


def _markdown(comparisons: dict) -> str:
    lines = ["| evaluation | decoder / method | n | PyTorch Dice % | ONNX Runtime Dice % | mean difference (points) | "
             "worst target (points) | within bounds |", "|---|---|---:|---:|---:|---:|---|---|"]
    for name, summary in comparisons.items():
        for group, row in summary.items():
            if group.startswith("_"):
                continue
            lines.append(f"| {name} | {group} | {row['n']} | {row['torch']:.2f} | {row['onnx']:.2f} | "
                         f"{row['mean_difference']:+.3f} | {row['worst_difference']:+.2f} ({row['worst_target']}) | "
                         f"{'yes' if row['within_bounds'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the reports and comparison.md/json")
    parser.add_argument("--dev-eval", default="../shared/data/dev_eval")
    parser.add_argument("--volumes", nargs="+", default=["../shared/data/volumes3d"],
                        help="volumes3d or some of its dataset folders (their hold-out cases are scored)")
    parser.add_argument("--clicks", type=int, default=5, help="clicks per target (default 5: one + 4 corrections)")
    parser.add_argument("--max-per-dataset", type=int, default=None)
    parser.add_argument("--max-structures", type=int, default=None, help="3D: at most N structures per volume")
    parser.add_argument("--structures", default=None, help="3D: comma list of label values or names")
    parser.add_argument("--skip-2d", action="store_true")
    parser.add_argument("--skip-3d", action="store_true")
    parser.add_argument("--compare-only", action="store_true", help="only compare reports already in --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.compare_only:
        for runtime in RUNTIMES:
            if not args.skip_2d:
                evaluate_2d(args.dev_eval, out, runtime, args.clicks, args.max_per_dataset)
            if not args.skip_3d:
                evaluate_3d(args.volumes, out, runtime, args.max_structures, args.structures)
    reports = {"box": ("evaluation_box.json", _targets_2d),
               f"{args.clicks} clicks": (f"evaluation_click_{args.clicks}clicks.json", _targets_2d),
               "prompt-free": ("evaluation_auto.json", _targets_2d),
               "3D hold-out": ("evaluation3d.json", _targets_3d)}
    comparisons = {}
    for name, (file, targets) in reports.items():
        paths = [out / runtime / file for runtime in RUNTIMES]
        if all(path.is_file() for path in paths):
            reference, optimized = (targets(json.loads(path.read_text())) for path in paths)
            comparisons[name] = compare(reference, optimized)
    if not comparisons:
        print(f"no pair of reports in {out}", file=sys.stderr)
        return 2
    (out / "comparison.json").write_text(json.dumps(comparisons, indent=2))
    table = _markdown(comparisons)
    (out / "comparison.md").write_text(table)
    print(table)
    ok = all(row["within_bounds"] for summary in comparisons.values() for group, row in summary.items()
             if not group.startswith("_"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
