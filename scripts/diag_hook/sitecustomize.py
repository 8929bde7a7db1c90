"""Diagnostic hook for `scripts/diag_server_job.py` (put first on a server child's PYTHONPATH).

When DIAG_JOB_DIR is set: each engine job's compute time, a cProfile of its thread, the decoder's
CUDA-graph state and the process's threads go to DIAG_JOB_DIR/job_N.txt; the job numbered
DIAG_TORCH_PROFILE also gets a torch profiler table. DIAG_PREFETCH sets the walk's background
embedding chunk. Not used by the product.
"""

import os

if os.environ.get("DIAG_PREFETCH"):  # the walk's background embedding chunk, in slices
    import SegMoTELib.segment3d as _segment3d

    _segment3d.PREFETCH_SLICES = int(os.environ["DIAG_PREFETCH"])

if os.environ.get("DIAG_JOB_DIR"):
    import cProfile
    import io
    import itertools
    import pstats
    import threading
    import time
    from pathlib import Path

    from SegMoTELib.commands import serve as _serve
    from SegMoTELib.service import jobs as _jobs

    _state = {"predictor": None}
    _counter = itertools.count(1)
    _build_app = _serve.build_app

    def _recording_build_app(predictor, *args, **kwargs):
        _state["predictor"] = predictor
        return _build_app(predictor, *args, **kwargs)

    _serve.build_app = _recording_build_app
    _original_run = _jobs.Job._run

    def _graph_state():
        graphs = getattr(_state["predictor"], "decoder_graphs", None)
        if graphs is None:
            return "no graphs"
        return f"{len(graphs.graphs._graphs)} graphs, failures {graphs.failures}"

    def _run(self):
        import torch

        number = next(_counter)
        work, timing = self._work, {}

        def timed(progress):
            started = time.perf_counter()
            try:
                return work(progress)
            finally:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timing["work"] = time.perf_counter() - started

        self._work = timed
        profile = cProfile.Profile()
        torch_table = ""
        started = time.perf_counter()
        if number == int(os.environ.get("DIAG_TORCH_PROFILE", "-1")):
            from torch.profiler import ProfilerActivity, profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as recorder:
                profile.enable()
                _original_run(self)
                profile.disable()
            torch_table = recorder.key_averages().table(sort_by="cpu_time_total", row_limit=40)
        else:
            profile.enable()
            _original_run(self)
            profile.disable()
        total = time.perf_counter() - started
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(45)
        threads = ", ".join(sorted(t.name for t in threading.enumerate()))
        Path(os.environ["DIAG_JOB_DIR"], f"job_{number}.txt").write_text(
            f"job {number} ({self.description}): work {timing.get('work', -1):.3f} s, with the mask encoding "
            f"{total:.3f} s, state {self.state}, {self.done}/{self.total} slices\n{_graph_state()}\n"
            f"threads: {threads}\n{text.getvalue()}\n{torch_table}\n")

    _jobs.Job._run = _run
