"""Starting or joining Ray for `--engine ray` (curation, cohort segmentation).

Ray is optional (`pip install segmote[ray]`) and imported only here, when an engine asks for it.
- No address: an embedded local Ray is started for the run (`address="local"`: never a cluster that
  happens to run on this machine), limited to `num_cpus` CPUs, with no dashboard and a modest object
  store (the tasks pass file paths and metric records, not pixels), and shut down afterwards. A
  watchdog (`ray_watchdog.py`) ends its processes if this process is killed first.
- An address (`HOST:6379`, `ray://HOST:10001` or `auto`): that running cluster is joined; its
  resources are the cluster's, and it is left running.
- Ray already initialised in this process (a test fixture, a notebook): used as it is, left running.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys

from .errors import InputError, first_line

DEFAULT_NUM_CPUS = 2
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray: Ray is not installed; install it with `pip install segmote[ray]` "
                         "(or use --engine local)") from None
    return ray


class RaySession:
    """Context manager: Ray ready inside the block; started here → shut down on leaving."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None):
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
            raise InputError(f"--num-cpus: expected a positive whole number, got {num_cpus!r}")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.started_here = False
        self.ray = None
        self._watchdog = None

    def __enter__(self):
        ray = self.ray = import_ray()
        if ray.is_initialized():
            return self
        if self.address:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise InputError(f"--address: cannot join the Ray cluster at {self.address} "
                                 f"({first_line(error) or type(error).__name__})"
                                 ) from None
        else:
            self._watchdog = _start_watchdog()
            ray.init(address="local", num_cpus=self.num_cpus or DEFAULT_NUM_CPUS, num_gpus=self.num_gpus,
                     include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                     logging_level=logging.WARNING, log_to_driver=True)
        self.started_here = True
        return self

    def cpus(self) -> int:
        """CPUs Ray can schedule tasks on (the cluster's, when joined)."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def gpus(self) -> int:
        return int(self.ray.cluster_resources().get("GPU", 0))

    def __exit__(self, *exc):
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False
        _stop_watchdog(self._watchdog)
        self._watchdog = None
        return False


def _start_watchdog():
    """The watchdog of a Ray started here (None where it cannot run: Windows)."""
    import os

    if sys.platform.startswith("win"):
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_watchdog.py")  # stdlib only
    return subprocess.Popen([sys.executable, script, str(os.getpid())], stdin=subprocess.PIPE, close_fds=True)


def _stop_watchdog(watchdog) -> None:
    if watchdog is None:
        return
    try:
        watchdog.stdin.write(b"stop")
        watchdog.stdin.close()
    except OSError:
        pass
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        watchdog.kill()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on a cluster that does not answer (ray.init would retry for minutes)."""
    where = address.split("://", 1)[-1]
    host, _, port = where.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto" or a form Ray resolves itself
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise InputError(f"--address: no Ray cluster answers at {address} ({error.strerror or error}); start one "
                         f"with `ray start --head` there, or leave --address out for a local Ray") from None
