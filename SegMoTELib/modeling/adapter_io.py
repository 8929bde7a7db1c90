"""Saving and loading adapter files: the adapter's own parameters plus a header.

Header: format name and version, backbone id, adapter configuration, and (for the
adapter+decoder and decoder training modes) the fine-tuned SAM decoder weights. Files load with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import CheckpointError, InputError
from .config import AdapterConfig

FORMAT_NAME = "segmote-adapter"
FORMAT_VERSION = 1


def save_adapter(path: str | Path, adapter_state: dict, config: AdapterConfig, backbone: str,
                 decoder_state: dict | None = None, metadata: dict | None = None, half: bool = False) -> Path:
    import torch

    def convert(state):
        return {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().contiguous()
                for k, v in state.items()}

    payload = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "backbone": backbone,
        "config": config.to_dict(), "adapter": convert(adapter_state),
        "decoder": convert(decoder_state) if decoder_state is not None else None,
        "metadata": metadata or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; an adapter file is meant to be shared
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def read_adapter(path: str | Path, expected_backbone: str | None = None) -> dict:
    """The adapter file's payload, after checking its header."""
    from ..backbones.checkpoints import load_weights_file, verify_checkpoint

    path = verify_checkpoint(path, None, "adapter", argument="adapter")
    payload = load_weights_file(path, "SegMoTE adapter", "an adapter file written by 'segmote train' (.pt)",
                                argument="adapter")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"adapter: {path} is not a SegMoTE adapter file (no '{FORMAT_NAME}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"adapter: {path} has format version {payload.get('format_version')}, this SegMoTE reads version {FORMAT_VERSION}"
        )
    if expected_backbone is not None and payload.get("backbone") != expected_backbone:
        raise CheckpointError(
            f"adapter: {path} was trained for backbone {payload.get('backbone')!r}, not {expected_backbone!r}"
        )
    try:
        payload["config"] = AdapterConfig.from_dict(payload["config"])
    except (InputError, TypeError) as error:
        raise CheckpointError(f"adapter: {path} has an invalid configuration: {error}") from None
    return payload


# --- the walk head add-on: a presence head fitted on an adapter that has none -----------------------
WALK_HEAD_FORMAT = "segmote-walk-head"


def _sha256(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_walk_head(path: str | Path, head_state: dict, walk: dict, adapter_path: str | Path) -> Path:
    """A presence head (`modeling/presence.py`) and its calibrated walk settings, for the adapter file
    it was fitted on (named by its sha256, so it never attaches to another)."""
    import torch

    payload = {"format": WALK_HEAD_FORMAT, "format_version": FORMAT_VERSION, "adapter_sha256": _sha256(adapter_path),
               "head": {k: v.detach().half().cpu().contiguous() for k, v in head_state.items()}, "walk": walk}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def read_walk_head(path: str | Path, adapter_path: str | Path) -> dict:
    """The add-on's payload, after checking that it was fitted on `adapter_path`."""
    from ..backbones.checkpoints import load_weights_file

    payload = load_weights_file(Path(path), "SegMoTE walk head", "a walk head written by training/walk_head.py",
                                argument="walk head")
    if not isinstance(payload, dict) or payload.get("format") != WALK_HEAD_FORMAT:
        raise CheckpointError(f"walk head: {path} is not a SegMoTE walk head file (no '{WALK_HEAD_FORMAT}' header)")
    if payload.get("adapter_sha256") != _sha256(adapter_path):
        raise CheckpointError(f"walk head: {path} was fitted on another adapter than {adapter_path}")
    return payload
