"""Timing with median and spread, interleaved comparisons, and the machine's description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    """Seconds per call over the repeats (after warm-up calls), and the process CPU seconds of each
    call (all threads: on a shared machine the better measure of what the code itself costs)."""

    seconds: list[float]
    cpu_seconds: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def quartiles(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.seconds[0], self.seconds[0]
        low, _, high = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return low, high

    def as_dict(self) -> dict:
        q1, q3 = self.quartiles()
        stats = {"median_s": self.median, "q1_s": q1, "q3_s": q3, "min_s": min(self.seconds),
                 "max_s": max(self.seconds), "repeats": len(self.seconds), "runs_s": self.seconds}
        if self.cpu_seconds:
            stats["cpu_median_s"] = statistics.median(self.cpu_seconds)
        return stats


def synchronizer(device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def measure_interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                        sync: Callable[[], None] = lambda: None) -> dict[str, Timing]:
    """Time each call `repeats` times, taking turns (A, B, C, A, B, C, ...), so that the load of a
    shared machine falls on every contender alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
        sync()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            sync()
            started, cpu_started = time.perf_counter(), time.process_time()
            call()
            sync()
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    return {name: Timing(seconds[name], cpu[name]) for name in calls}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device) -> dict:
    import numpy as np
    import torch

    info = {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "device": str(device)}
    if getattr(device, "type", "") == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2 ** 30, 1),
                    gpu_capability=f"{properties.major}.{properties.minor}", cuda=torch.version.cuda)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info
