"""Where curation's measuring stage runs: the engine interface and the local (process pool) engine.

An engine maps a picklable module-level function over tasks and yields the results as they finish,
in any order; the pipeline journals each result as it arrives and puts records back in unit order,
so the outputs do not depend on the engine or on completion order. Engines:
- `LocalCurationEngine(workers)`: processes on this machine (the default; no extra dependency). A
  worker that dies (killed, e.g. by the out-of-memory killer) ends the run with a `DataError`
  naming what happened, instead of the endless wait of a `multiprocessing.Pool`, which replaces
  the dead process but never returns its task; finished units are journalled, so a rerun resumes;
- `ray_engine.RayCurationEngine(...)`: Ray tasks on an embedded local Ray or on a cluster (`segmote[ray]`).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import DataError


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
        pool = ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=pool_context(),
                                   initializer=worker_ignores_sigint)
        finished = 0
        try:
            pending = {pool.submit(function, task) for task in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise DataError(f"a curation worker process died (killed, e.g. by the system when memory "
                                        f"ran out) with {len(tasks) - finished} of {len(tasks)} work units unfinished; "
                                        f"finished units are journalled: rerun the same command to resume "
                                        f"(fewer --workers use less memory)") from None
                    finished += 1
                    yield result
        finally:
            _stop(pool)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the pool's processes now: after an error or Ctrl-C their work would be thrown away, and
    a shutdown that waits would wait for it."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


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
