"""Locating the files of `Resources/` (model manifest, shipped adapters).

They live beside `SegMoTELib/` in a source checkout and in the Slicer build (both install the two
folders side by side); `SEGMOTE_RESOURCES` overrides for unusual layouts.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from .errors import CheckpointError

MANIFEST_NAME = "models.json"


def resources_dir() -> Path:
    override = os.environ.get("SEGMOTE_RESOURCES")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here / "Resources", here.parent / "Resources"]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise CheckpointError(
        f"cannot find the SegMoTE Resources folder with {MANIFEST_NAME} (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); set SEGMOTE_RESOURCES to its path"
    )


@lru_cache(maxsize=1)
def load_manifest() -> dict:
    path = resources_dir() / MANIFEST_NAME
    with path.open() as handle:
        return json.load(handle)
