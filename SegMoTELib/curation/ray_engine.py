"""Curation's measuring stage as Ray tasks: one task per work unit (64 pairs or one 3D study).

Tasks carry file paths and return metric records (a few kB), so the object store stays small; every
node reads the sources itself, so on a cluster the sources (and the output folder, for the driver)
must be at the same path on every node (a shared file system). The driver keeps at most
`2 × CPUs` tasks in flight and yields each result as it finishes; the pipeline journals it at once,
so a killed driver loses only the tasks in flight and a rerun does not recompute finished units.
A worker process that dies (killed, out of memory, its node lost) fails only its task, which Ray
runs again (`max_retries`); a task that raises is not retried (bad files are already reported as
errors by the task itself, so an exception here is a bug worth seeing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ..errors import DataError, first_line
from ..ray_session import RaySession

MAX_RETRIES = 3


class RayCurationEngine:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = MAX_RETRIES):
        self.session = RaySession(address=address, num_cpus=num_cpus)
        self.max_retries = int(max_retries)
        self._entered = False

    @property
    def workers(self) -> int:
        return self.session.cpus() if self._entered else 0

    def __enter__(self):
        if not self._entered:
            self.session.__enter__()
            self._entered = True
        return self

    def close(self) -> None:
        if self._entered:
            self.session.__exit__(None, None, None)
            self._entered = False

    def __exit__(self, *exc):
        self.close()
        return False

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator:
        self.__enter__()
        ray = self.session.ray
        remote = ray.remote(function).options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        queue = list(tasks)
        in_flight_limit = 2 * self.workers
        pending: dict = {}
        position = 0
        while position < len(queue) or pending:
            while position < len(queue) and len(pending) < in_flight_limit:
                pending[remote.remote(queue[position])] = position
                position += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for reference in ready:
                index = pending.pop(reference)
                try:
                    result = ray.get(reference)
                except ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None  # the task's own exception, as locally
                except ray.exceptions.RayError as error:
                    first = first_line(error) or type(error).__name__
                    raise DataError(f"curation task {index + 1} of {len(queue)} failed on Ray after "
                                    f"{self.max_retries} retries ({type(error).__name__}: {first}); finished "
                                    f"units are journalled: rerun the same command to resume") from error
                yield result
