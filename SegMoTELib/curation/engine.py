"""Where curation's measuring stage runs: the engine interface and the local (process pool) engine.

An engine maps a picklable module-level function over tasks and yields the results as they finish,
in any order; the pipeline journals each result as it arrives and puts records back in unit order,
so the outputs do not depend on the engine or on completion order. Engines:
- `LocalCurationEngine(workers)`: processes on this machine (the default; no extra dependency);
- `ray_engine.RayCurationEngine(...)`: Ray tasks on an embedded local Ray or on a cluster (`segmote[ray]`).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator


class LocalCurationEngine:
    """`workers` processes of this machine (one: in this process, no pool)."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = int(workers)

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator:
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield function(task)
            return
        with pool_context().Pool(min(self.workers, len(tasks)), initializer=worker_ignores_sigint) as pool:
            yield from pool.imap_unordered(function, tasks)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pool_context():
    # fork is fastest but unsafe once torch or Ray (threads, gRPC) is loaded: inside Slicer, the
    # trainer, or a driver that ran its measuring on Ray and now exports.
    if sys.platform.startswith("linux") and "torch" not in sys.modules and "ray" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def worker_ignores_sigint() -> None:
    # Ctrl-C goes to the whole process group: the parent alone handles it (terminates the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_engine(engine: str = "local", workers: int | None = None, address: str | None = None,
                num_cpus: int | None = None):
    """The engine named by `segmote curate --engine` (Ray is imported only for "ray")."""
    if engine == "local":
        import os

        return LocalCurationEngine(int(workers or os.cpu_count() or 1))
    if engine == "ray":
        from .ray_engine import RayCurationEngine

        return RayCurationEngine(address=address, num_cpus=num_cpus)
    from ..errors import InputError

    raise InputError(f"engine: expected 'local' or 'ray', got {engine!r}")
