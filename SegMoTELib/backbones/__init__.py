"""Backbone registry: names from Resources/models.json → frozen `Backbone` modules."""

from __future__ import annotations

from pathlib import Path

from ..errors import BackboneError
from ..resources import load_manifest

DEFAULT_BACKBONE = "litemedsam"


def backbone_names() -> list[str]:
    return list(load_manifest()["backbones"])


def backbone_spec(name: str) -> dict:
    specs = load_manifest()["backbones"]
    if name not in specs:
        raise BackboneError(f"backbone: unknown backbone {name!r}; expected one of {', '.join(specs)}")
    return specs[name]


def load_backbone(name: str = DEFAULT_BACKBONE, checkpoint: str | Path | None = None):
    """Build the frozen backbone `name` on the CPU (callers move it to their device)."""
    spec = backbone_spec(name)
    if spec["builder"] == "litemedsam":
        from .litemedsam import build

        return build(spec, checkpoint)
    from .sam import build

    return build(name, spec, checkpoint)
