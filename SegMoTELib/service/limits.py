"""What one engine service accepts: sizes, sessions, idle time, embedding memory, time per request.

Each limit names the `segmote serve` option that sets it, so a refusal can say which one refused.
`max_upload_bytes` and `max_voxels` may be None (no cap): Slicer's local engine is the user's own
process and takes whatever volume the user loaded; a server shared over a network keeps its caps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import InputError

MIB = 1024 * 1024

# The option of `segmote serve` behind each limit (named in refusals and in /v1/info).
OPTIONS = {"max_upload_bytes": "--max-upload-mb", "max_voxels": "--max-voxels", "max_sessions": "--max-sessions",
           "idle_seconds": "--idle-timeout", "embedding_cache_bytes": "--cache-mb",
           "results_per_session": None, "max_request_bytes": "--max-request-kb", "max_points": "--max-points",
           "request_seconds": "--request-budget"}


@dataclass(frozen=True)
class ServiceLimits:
    max_upload_bytes: int | None = 1024 * MIB  # one compressed voxel upload (None: no cap)
    max_voxels: int | None = 512 * 512 * 1024  # voxels of one session's volume, RGB pixels count once (None: no cap)
    max_sessions: int = 16                     # open sessions at once
    idle_seconds: float = 1800.0               # a session untouched this long is closed
    embedding_cache_bytes: int = 2048 * MIB    # all sessions' cached slice embeddings together (LRU)
    results_per_session: int = 32              # slice results kept for refinement and propagation
    max_request_bytes: int = 1 * MIB           # any request body but a voxel upload (JSON prompts)
    max_points: int = 128                      # prompt points (and box corners) of one request
    request_seconds: float = 300.0             # time budget of one request: waiting for the device and computing

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is None and name in ("max_upload_bytes", "max_voxels"):
                continue
            if not value > 0:
                raise InputError(f"{name}: expected a positive limit, got {value}")

    def describe(self) -> dict:
        """The limits as /v1/info reports them (None: no cap), with the option behind each."""
        return {**asdict(self), "options": {name: option for name, option in OPTIONS.items() if option}}

    def refusal_hint(self, name: str) -> str:
        """"(this server's --max-voxels)": which setting refused, for a refusal's message."""
        option = OPTIONS.get(name)
        return f"this server's {option}" if option else "this server's limit"
