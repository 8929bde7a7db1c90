"""Verifying and safely loading checkpoint files (sha256, weights_only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import CheckpointError, one_line


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path: str | Path, expected_sha256: str | None, what: str, argument: str = "checkpoint") -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{argument}: {path} is a folder; expected the {what} file itself")
    if not path.is_file():
        raise CheckpointError(f"{argument}: {what} file {path} does not exist")
    if expected_sha256:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"{argument}: {path} is not the expected {what} file "
                f"(sha256 {actual}, expected {expected_sha256}); it is corrupt or a different model"
            )
    return path


# What torch's weights-only unpickler says when a pickle names code (a class, a function) rather
# than when its bytes are garbage ("Unsupported operand"): torch/_weights_only_unpickler.py.
_FOREIGN_OBJECT_SIGNS = ("Unsupported global", "unsupported GLOBAL", "Trying to call reduce", "Can only create new object",
                         "Can only build Tensor", "Unsupported class")


def load_weights_file(path: str | Path, what: str, expected: str, argument: str = "checkpoint"):
    """`torch.load(weights_only=True)` of `path`; any failure is one line naming the file, saying
    it is not a valid `what` file and what was `expected`.

    torch's own text is not passed on: it spans several lines and advises `weights_only=False`,
    which is wrong for a corrupt file and dangerous for a malicious one (it runs the pickle's code).
    """
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": two lines before our one
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        text = str(error)
        if any(sign in text for sign in _FOREIGN_OBJECT_SIGNS):
            reason = "it holds Python objects besides weights, which are never loaded because they could run code"
        elif isinstance(error, MemoryError):
            reason = "not enough memory to read it"
        else:
            reason = "it is corrupt, truncated or not a PyTorch weights file"
    raise CheckpointError(f"{argument}: {path} is not a valid {what} file ({reason}); expected {expected}")


def load_state_dict(path: str | Path, what: str, argument: str = "checkpoint") -> dict:
    """Weights-only load; unwraps {'model': ...} / {'state_dict': ...} containers."""
    state = load_weights_file(path, what, f"the PyTorch state dict of {what}", argument)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{argument}: {path} does not hold a state dict for {what}")
    return state


def load_into(module, state: dict, path: str | Path, what: str) -> None:
    missing, unexpected = [], []
    try:
        result = module.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as error:  # shape mismatches
        raise CheckpointError(f"checkpoint: {path} does not match the {what} architecture: "
                              f"{one_line(error, 400)}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint: {path} does not match the {what} architecture "
            f"(missing {len(missing)} keys, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})"
        )
