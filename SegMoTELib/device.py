"""Choosing the torch device: auto (cuda, then mps, then cpu) or an explicit override."""

from __future__ import annotations

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(requested: str | None = "auto"):
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = requested.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise InputError(f"device: unknown device {requested!r}; expected one of {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' was requested but no CUDA GPU is available to torch")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device: 'mps' was requested but Apple MPS is not available to torch")
    return torch.device(requested)
