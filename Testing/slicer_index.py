"""Where the Slicer 5.10 API index lives and a checker set up for this project (shared by the glue tests)."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

from slicer_api_check import ApiChecker, load_index
from slicer_ui_check import read_ui

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO / "SegMoTE"
INDEX_PATH = REPO.parent / "shared" / "slicer-api" / "slicer-api-5.10.json"
UI_DIR = GLUE / "Resources" / "UI"


def ui_widgets(relative: str):
    """{name: class} (root under None) of a module's .ui file named as in resourcePath("UI/<file>")."""
    path = GLUE / "Resources" / relative
    return read_ui(path).widget_classes() if path.is_file() else None


def project_method_names() -> set[str]:
    """Every function and method name the project defines (glue, engine, tests, scripts)."""
    names = set()
    for folder in (GLUE, REPO / "SegMoTELib", REPO / "Testing", REPO / "scripts"):
        for path in folder.rglob("*.py"):
            names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
    return names


@lru_cache(maxsize=1)
def _index() -> dict:
    return load_index(INDEX_PATH)


def slicer_index() -> dict:
    if not INDEX_PATH.is_file():
        pytest.skip(f"needs the Slicer API index {INDEX_PATH} (absent on this machine)")
    return _index()


@lru_cache(maxsize=1)
def live_signatures():
    """Slicer's wrapped classes as Python sees them (slicer-core, a test dependency), or None without it."""
    from slicer_live_api import LiveSignatures

    return LiveSignatures.load()


def project_checker() -> ApiChecker:
    return ApiChecker(slicer_index(), ui_widgets=ui_widgets, project_names=project_method_names(),
                      live=live_signatures())
