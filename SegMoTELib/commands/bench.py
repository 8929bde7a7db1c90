"""`segmote bench`: speed of our predictor against the reference LiteMedSAM pipeline (one run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError

HELP = "time encoder, prompt → mask, embedding, 3D propagation and curation against reference LiteMedSAM"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _thread_counts(text: str) -> tuple[int, ...]:
    counts = tuple(sorted({_positive(part.strip()) for part in text.split(",") if part.strip()}))
    if not counts:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 2 or 1,2, got {text!r}")
    return counts


SWEEP_SECTIONS = ("encoder", "prompt")  # what the smaller thread counts of a sweep run


def configure(parser: argparse.ArgumentParser) -> None:
    from ..benchmarks import SECTIONS

    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and slices: a fast run")
    parser.add_argument("--threads", type=_thread_counts, default=None, metavar="N[,N...]",
                        help="CPU threads of torch and ONNX Runtime; a comma list is a sweep (the largest count "
                             "runs every section, the others the encoder and prompt rows). Default: 1,2 on a CPU "
                             "device, 2 otherwise")
    parser.add_argument("--repeats", type=_positive, default=None, help="latency repeats (default 10 CPU, 20 GPU)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="encoder precision of the fast path (auto: fp16 on CUDA, fp32 elsewhere)")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="fast path without prompt → mask CUDA graphs")
    parser.add_argument("--no-compile", action="store_true", help="fast path without the compiled encoder (CUDA)")
    parser.add_argument("--embed-slices", type=_positive, default=None, help="slices embedded (default 300 GPU, 8 CPU)")
    parser.add_argument("--volume-slices", type=_positive, default=None,
                        help="slices of the propagation volume (default 300 GPU, 100 CPU)")
    parser.add_argument("--batch-size", type=_positive, default=None, help="embedding batch (default 64 GPU, 4 CPU)")
    parser.add_argument("--curation-slices", type=_positive, default=None, help="curation slices (default 1024)")
    parser.add_argument("--only", default=None, help=f"comma list of sections: {', '.join(SECTIONS)}; with --server: "
                                                     f"prompts, propagation, during, gil")
    parser.add_argument("--runtime", default="all", type=str.lower, choices=("all", "torch", "onnx", "auto"),
                        help="our runtimes to time beside the reference: all (default: PyTorch, and ONNX Runtime on a "
                             "CPU), torch or onnx; with --server the runtime of both sides (auto by default)")
    parser.add_argument("--server", action="store_true",
                        help="instead: click, box and propagation through a local `segmote serve` against in-process "
                             "(same model, same run), and a click from a worker beside an emulated Slicer GUI thread")
    parser.add_argument("-o", "--out", default=None, help="write the full result as JSON here")
    parser.add_argument("--markdown", default=None,
                        help="write the Markdown table here (default: beside --out, same name with .md)")


def _sections(text: str | None, server: bool = False) -> tuple[str, ...]:
    from ..benchmarks import SECTIONS as BENCH_SECTIONS
    from ..benchmarks.server import SECTIONS as SERVER_SECTIONS

    SECTIONS = SERVER_SECTIONS if server else BENCH_SECTIONS
    if not text:
        return SECTIONS
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise InputError(f"--only: unknown section(s) {unknown or text!r}; expected some of {', '.join(SECTIONS)}")
    return names


def _write(path: Path, text: str) -> None:
    from ..io import atomic_output

    with atomic_output(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")


def run(args) -> int:
    if args.server:
        return _run_server_bench(args)
    from ..benchmarks import BenchConfig, run_benchmarks
    from ..benchmarks.report import format_markdown, format_sweep
    from ..device import select_device

    sections = _sections(args.only)
    out, markdown_path = _outputs(args)
    counts = args.threads or ((1, 2) if select_device(args.device).type == "cpu" else (2,))
    results, tables = [], []
    for count in sorted(counts, reverse=True):  # the full run first
        chosen = sections if count == max(counts) else tuple(name for name in sections if name in SWEEP_SECTIONS)
        if not chosen:
            continue
        config = BenchConfig(device=args.device, quick=args.quick, repeats=args.repeats, threads=count,
                             precision=args.precision, cuda_graphs=False if args.no_cuda_graphs else None,
                             compile_encoder=False if args.no_compile else None,
                             embed_slices=args.embed_slices, volume_slices=args.volume_slices,
                             batch_size=args.batch_size, curation_slices=args.curation_slices, sections=chosen,
                             runtimes=args.runtime)
        print(f"--- {count} thread{'s' if count > 1 else ''}: {', '.join(chosen)}", flush=True)
        results.append(run_benchmarks(config, log=lambda message: print(message, flush=True)))
        tables.append(format_markdown(results[-1]))
    if len(results) == 1:
        _publish(results[0], tables[0], out, markdown_path)
    else:
        headed = [f"#### {result['settings']['threads']} thread{'s' if result['settings']['threads'] > 1 else ''}\n\n"
                  f"{table}" for result, table in zip(results, tables)]
        ordered = sorted(results, key=lambda result: result["settings"]["threads"])
        headed.append(f"#### Thread sweep\n\n{format_sweep(ordered)}")
        _publish({"runs": results}, "\n\n".join(headed), out, markdown_path)
    return 0


def _publish(result: dict, markdown: str, out: Path | None, markdown_path: Path | None) -> None:
    print(markdown)
    if out is not None:
        _write(out, json.dumps(result, indent=2, default=str))
    if markdown_path is not None:
        _write(markdown_path, markdown + "\n")


def _outputs(args) -> tuple[Path | None, Path | None]:
    out = Path(args.out) if args.out else None
    markdown_path = Path(args.markdown) if args.markdown else (out.with_suffix(".md") if out else None)
    for path in (out, markdown_path):
        if path is not None and not path.parent.is_dir():
            raise InputError(f"--out/--markdown: the folder {path.parent} does not exist")
    return out, markdown_path


def _run_server_bench(args) -> int:
    from ..benchmarks.server import format_markdown, run_service_benchmark

    out, markdown_path = _outputs(args)
    result = run_service_benchmark(device=args.device, quick=args.quick, repeats=args.repeats,
                                   volume_slices=args.volume_slices, threads=max(args.threads or (2,)),
                                   runtime="auto" if args.runtime == "all" else args.runtime,
                                   log=lambda message: print(message, flush=True),
                                   sections=_sections(args.only, server=True))
    _publish(result, format_markdown(result), out, markdown_path)
    return 0
