"""`run_benchmarks(config)`: every section of `segmote bench` in one run, as one JSON-able dict."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import InputError, first_line

SECTIONS = ("encoder", "prompt", "embedding", "propagation", "curation")

# The targets, shown beside the figures (ratios and absolute times are read off the table).
TARGETS = {
    "cpu": {"encoder": "≤ 0.5 s (2 cores)", "prompt": "≤ 30 ms (2 cores)", "propagation": "≤ 60 s for 100 slices (2 cores)"},
    "cuda": {"prompt": "≤ 2 ms", "embedding": "≥ 2,000 slices/s, 5× the reference in bf16",
             "propagation": "≤ 1 s for 300 slices"},
}


@dataclass
class BenchConfig:
    device: str = "auto"
    quick: bool = False
    repeats: int | None = None          # latency repeats (default 10, quick 3)
    threads: int | None = 2             # CPU threads for torch (None: leave torch's default)
    precision: str = "auto"             # the fast path's encoder precision: auto = fp16 on CUDA, fp32 elsewhere
    cuda_graphs: bool | None = None     # the fast path's decoder graphs: auto = on CUDA
    compile_encoder: bool | None = None  # the fast path's compiled encoder (batches): auto = on CUDA
    embed_slices: int | None = None     # default 300 on CUDA, 8 on CPU (quick: 64 / 2)
    volume_slices: int | None = None    # default 300 on CUDA, 100 on CPU (quick: 300 / 6)
    batch_size: int | None = None       # default 64 on CUDA, 4 on CPU
    curation_slices: int | None = None  # default 1024 (quick 256)
    sections: tuple[str, ...] = SECTIONS
    runtimes: str = "all"               # ours: "all" (PyTorch, + ONNX Runtime on a CPU), "torch", "onnx" or "auto"
    seed: int = 0
    resolved: dict = field(default_factory=dict)

    def resolve(self, device) -> None:
        gpu = device.type == "cuda"
        quick = self.quick

        def pick(value, gpu_full, cpu_full, gpu_quick, cpu_quick):
            if value is not None:
                return int(value)
            return (gpu_quick if gpu else cpu_quick) if quick else (gpu_full if gpu else cpu_full)

        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise InputError(f"sections: unknown {sorted(unknown)}; expected some of {', '.join(SECTIONS)}")
        self.resolved = {
            "device": str(device),
            "threads": self.threads,
            "repeats": pick(self.repeats, 20, 10, 5, 3),
            "embed_repeats": pick(None, 5, 2, 3, 1),
            "volume_repeats": pick(None, 3, 1, 2, 1),
            "embed_slices": pick(self.embed_slices, 300, 8, 64, 2),
            "volume_slices": pick(self.volume_slices, 300, 100, 300, 6),
            "batch_size": pick(self.batch_size, 64, 4, 64, 2),
            "curation_slices": pick(self.curation_slices, 1024, 1024, 256, 256),
            "curation_repeats": 3 if quick else 5,
            # fp16, not bf16, on GPUs: same speed, and SegMoTE's masks stay those of fp32 (bf16's 8-bit
            # mantissa flips the expert routing: prompt-free masks agreed 0.89 on dev_eval, fp16 0.99)
            "precision": ("fp16" if gpu else "fp32") if self.precision == "auto" else self.precision,
            "cuda_graphs": gpu if self.cuda_graphs is None else bool(self.cuda_graphs),
            "compile_encoder": gpu if self.compile_encoder is None else bool(self.compile_encoder),
        }


def run_benchmarks(config: BenchConfig, log: Callable[[str], None] = print) -> dict:
    import torch

    from ..device import select_device
    from .contenders import build_contenders
    from .timing import machine_info

    device = select_device(config.device)
    if config.threads and device.type == "cpu":
        torch.set_num_threads(int(config.threads))
    config.resolve(device)
    settings = config.resolved
    started = time.perf_counter()
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    allocator = False
    if device.type == "cpu":  # process-wide, so every contender (the reference too) runs with it
        from ..modeling.speed import keep_freed_memory

        allocator = keep_freed_memory()
    log(f"loading the models on {device} ...")
    contenders = build_contenders(device, settings["precision"], settings["cuda_graphs"], settings["compile_encoder"],
                                  runtimes=config.runtimes)
    result = {"machine": machine_info(device), "config": {k: v for k, v in asdict(config).items() if k != "resolved"},
              "settings": settings, "fast_path": contenders.fast_label, "adapter": contenders.adapter_kind,
              "allocator_tuned": allocator, "rows": [], "curation": None, "errors": [], "notes": contenders.notes,
              "load_at_start": load_at_start}
    inputs = _Inputs(config, settings, log)
    for name in config.sections:
        log(f"{name} ...")
        try:  # one failing section must not cost the others (a GPU run is expensive)
            result["rows"] += _SECTION_RUNNERS[name](contenders, inputs, settings, TARGETS.get(device.type, {}), result)
        except Exception as error:  # noqa: BLE001 — reported in the result and the table
            log(traceback.format_exc())
            result["errors"].append(f"{name}: {type(error).__name__}: {first_line(error, 300)}")
    graphs = [p.decoder_graphs for p in (contenders.fast_base, contenders.fast_adapter) if p is not None and p.decoder_graphs]
    result["cuda_graph_failures"] = sorted({reason for g in graphs for reason in g.failures})
    compiled = contenders.fast_base.compiled_encoder if contenders.fast_base is not None else None
    result["compile_failure"] = compiled.failure if compiled is not None else None
    result["machine"] = machine_info(device)  # the load average at the end
    result["wall_seconds"] = time.perf_counter() - started
    return result


class _Inputs:
    """The generated inputs, made once on first use."""

    def __init__(self, config: BenchConfig, settings: dict, log):
        self.config, self.settings, self.log = config, settings, log
        self._prompt_slice = None
        self._tubes: dict[int, object] = {}

    def prompt_slice(self):
        from . import data

        if self._prompt_slice is None:
            self.log("  making the phantom slice ...")
            self._prompt_slice = data.prompt_slice(seed=self.config.seed)
        return self._prompt_slice

    def tube(self, n_slices: int):
        from . import data

        if n_slices not in self._tubes:
            self.log(f"  making the {n_slices}-slice tube volume ...")
            self._tubes.clear()  # hundreds of MB each: keep one
            self._tubes[n_slices] = data.tube_volume(n_slices=n_slices, seed=self.config.seed)
        return self._tubes[n_slices]


def _encoder(contenders, inputs, settings, targets, result):
    from . import sections

    return sections.encoder_latency(contenders, inputs.prompt_slice().image, max(3, settings["repeats"] // 2), targets)


def _prompt(contenders, inputs, settings, targets, result):
    from . import sections

    rows = sections.prompt_latency(contenders, inputs.prompt_slice(), settings["repeats"], targets)
    return rows + sections.background_neighbours(contenders, inputs.prompt_slice(), max(3, settings["repeats"] // 2))


def _embedding(contenders, inputs, settings, targets, result):
    import numpy as np

    from . import data, sections

    count = settings["embed_slices"]
    tube = inputs.tube(max(count, settings["volume_slices"]))
    slices = np.ascontiguousarray(data.volume_slices_uint8(tube)[:count])
    return sections.embedding_throughput(contenders, slices, settings["batch_size"], settings["embed_repeats"], targets)


def _propagation(contenders, inputs, settings, targets, result):
    from . import sections

    return sections.propagation(contenders, inputs.tube(settings["volume_slices"]), settings["volume_repeats"], targets)


def _curation(contenders, inputs, settings, targets, result):
    from . import sections

    rows, result["curation"] = sections.curation(settings["curation_slices"], settings["curation_repeats"], None)
    return rows


_SECTION_RUNNERS = {"encoder": _encoder, "prompt": _prompt, "embedding": _embedding,
                    "propagation": _propagation, "curation": _curation}
