"""Locating the files of `Resources/` (model manifest, shipped adapters).

They live beside `SegMoTELib/` in a source checkout and in the Slicer build (both install the two
folders side by side); `SEGMOTE_RESOURCES` overrides for unusual layouts. A manifest that cannot
be used (an override without one, invalid JSON, no backbone table) is one clear error naming the
file, never a silent fallback to another folder or a JSON traceback.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from .errors import CheckpointError

MANIFEST_NAME = "models.json"
OVERRIDE_VARIABLE = "SEGMOTE_RESOURCES"


def resources_dir() -> Path:
    override = os.environ.get(OVERRIDE_VARIABLE)
    if override:  # an explicit choice: a wrong one is an error, not a reason to look elsewhere
        folder = Path(override).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"{OVERRIDE_VARIABLE}: {folder} is not a folder; set it to the Resources folder "
                                  f"that holds {MANIFEST_NAME}, or unset it")
        if not (folder / MANIFEST_NAME).is_file():
            raise CheckpointError(f"{OVERRIDE_VARIABLE}: {folder} has no {MANIFEST_NAME}; set it to the Resources "
                                  f"folder that holds it, or unset it")
        return folder
    here = Path(__file__).resolve().parent
    candidates = [here / "Resources", here.parent / "Resources"]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise CheckpointError(
        f"cannot find the SegMoTE Resources folder with {MANIFEST_NAME} (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); set {OVERRIDE_VARIABLE} to its path"
    )


@lru_cache(maxsize=1)
def load_manifest() -> dict:
    path = resources_dir() / MANIFEST_NAME
    try:
        with path.open(encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                              f"restore the file from the SegMoTE distribution") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the model manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("backbones"), dict) or \
            not isinstance(manifest.get("adapters", {}), dict):
        raise CheckpointError(f"{path}: not a SegMoTE model manifest (expected an object with a 'backbones' "
                              f"table); restore the file from the SegMoTE distribution")
    return manifest
