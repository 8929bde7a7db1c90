"""The Ray cohort engine: a pool of actors, each holding one predictor and reusing it study after study.

On a machine or cluster with GPUs each actor takes one GPU (so `workers` = the GPUs to use, default
all of them); without GPUs each takes `cpus_per_worker` CPUs and runs torch on that many threads.
Studies (all the rows of one output file) go to whichever actor is idle. Masks are bit-identical to a local run with the same torch
thread count (across thread counts, float rounding in the encoder can move a boundary voxel of a
propagated mask). An actor whose
process dies is restarted once and its study retried once (Ray's `max_restarts`/`max_task_retries`);
the rows of a study whose actor dies for good are failed rows, and the other actors go on. The image files and
the output folder must be at the same path on every node (a shared file system): actors read the
study and write its `.seg.nrrd` themselves, atomically.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from ..errors import DataError, InputError, first_line
from ..ray_session import RaySession
from ..model_spec import ModelSpec
from .study import run_job


class CohortWorker:
    """Actor body: one predictor, built once; `ready()` says whether building it failed."""

    def __init__(self, model: ModelSpec, out_dir: str, threads: int):
        import torch

        from ..errors import SegMoTEError

        torch.set_num_threads(threads)  # what Ray granted this actor, not every core of the node
        self.model, self.out_dir, self.error, self.notice = model, out_dir, "", ""
        try:
            self.predictor = model.build_predictor()
            self.notice = self.predictor.notice or ""
        except SegMoTEError as error:
            self.predictor, self.error = None, str(error)

    def ready(self) -> tuple[str, str]:
        return self.error, self.notice

    def run(self, job) -> list[dict]:
        return run_job(self.predictor, job, self.out_dir, self.model)


class RayCohortEngine:
    name = "ray"

    def __init__(self, model: ModelSpec, address: str | None = None, workers: int | None = None,
                 num_cpus: int | None = None, cpus_per_worker: int = 1):
        if workers is not None and workers < 1:
            raise InputError(f"--workers: expected a positive number of actors, got {workers}")
        if cpus_per_worker < 1:
            raise InputError(f"--cpus-per-worker: expected a positive number, got {cpus_per_worker}")
        self.cpus_per_worker = cpus_per_worker
        self.model = model
        self.session = RaySession(address=address, num_cpus=num_cpus)
        self.requested_workers = workers
        self.workers = 0
        self.notice = ""

    def __enter__(self):
        self.session.__enter__()
        return self

    def __exit__(self, *exc):
        return self.session.__exit__(*exc)

    def _actor_options(self) -> dict:
        wants_gpu = self.model.device in ("auto", "cuda") and self.session.gpus() > 0
        self.workers = self.requested_workers or (
            self.session.gpus() if wants_gpu else max(1, self.session.cpus() // self.cpus_per_worker))
        return {"num_cpus": self.cpus_per_worker, "num_gpus": 1 if wants_gpu else 0, "max_restarts": 1,
                "max_task_retries": 1}

    def run(self, jobs, out_dir) -> Iterator[list[dict]]:
        ray = self.session.ray
        options = self._actor_options()
        actor_class = ray.remote(CohortWorker).options(**options)
        actors = [actor_class.remote(self.model, str(out_dir), options["num_cpus"])
                  for _ in range(min(self.workers, len(jobs)) or 1)]
        try:
            for error, notice in ray.get([actor.ready.remote() for actor in actors]):
                if error:
                    raise InputError(error)
                self.notice = notice
            yield from _dispatch(ray, actors, jobs)
        finally:
            for actor in actors:  # free the GPUs now, not when the handles are collected
                ray.kill(actor)


def _dispatch(ray, actors: list, jobs) -> Iterator[list[dict]]:
    """Each idle actor gets the next study; outcomes in completion order."""
    idle, queue, pending = list(actors), deque(jobs), {}
    while queue or pending:
        while idle and queue:
            actor, job = idle.pop(), queue.popleft()
            pending[actor.run.remote(job)] = (actor, job)
        if not pending:
            raise DataError(f"every Ray worker of the cohort died; {len(queue)} studies were not segmented "
                            f"(rerun the same command to go on: finished structures are skipped)")
        ready, _ = ray.wait(list(pending), num_returns=1)
        for reference in ready:
            actor, job = pending.pop(reference)
            try:
                outcomes = ray.get(reference)
                idle.append(actor)
            except ray.exceptions.RayActorError as error:  # the actor died for good on this study
                first = first_line(error)
                reason = f"the Ray worker segmenting it died ({type(error).__name__}: {first})"
                outcomes = [{"line": row.line, "study": row.study, "name": row.name, "status": "failed",
                             "error": reason, "voxels": 0, "seconds": 0.0} for row in job.rows]
            yield outcomes
