"""Verifying and safely loading checkpoint files (sha256, weights_only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import CheckpointError


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path: str | Path, expected_sha256: str | None, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {what} file {path} does not exist")
    if expected_sha256:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"checkpoint: {path} is not the expected {what} file "
                f"(sha256 {actual}, expected {expected_sha256}); it is corrupt or a different model"
            )
    return path


def load_state_dict(path: str | Path, what: str) -> dict:
    """torch.load with weights_only=True; unwraps {'model': ...} / {'state_dict': ...} containers."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"checkpoint: cannot read {what} file {path}: {error.__class__.__name__}: {error}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint: {path} does not hold a state dict for {what}")
    return state


def load_into(module, state: dict, path: str | Path, what: str) -> None:
    missing, unexpected = [], []
    try:
        result = module.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as error:  # shape mismatches
        raise CheckpointError(f"checkpoint: {path} does not match the {what} architecture: {str(error)[:400]}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint: {path} does not match the {what} architecture "
            f"(missing {len(missing)} keys, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})"
        )
