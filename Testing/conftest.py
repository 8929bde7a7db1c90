"""Shared fixtures: the real data in ../shared/data and one LiteMedSAM predictor per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEGMOTE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a skip naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data folder {path} (absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()
