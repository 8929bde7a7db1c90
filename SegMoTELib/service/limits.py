"""What one engine service accepts: sizes, sessions, idle time, embedding memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import InputError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServiceLimits:
    max_upload_bytes: int = 1024 * MIB       # one compressed voxel upload
    max_voxels: int = 512 * 512 * 1024       # voxels of one session's volume (RGB pixels count once)
    max_sessions: int = 16                   # open sessions at once
    idle_seconds: float = 1800.0             # a session untouched this long is closed
    embedding_cache_bytes: int = 2048 * MIB  # all sessions' cached slice embeddings together (LRU)
    results_per_session: int = 32            # slice results kept for refinement and propagation

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise InputError(f"{name}: expected a positive limit, got {value}")

    def describe(self) -> dict:
        return asdict(self)
