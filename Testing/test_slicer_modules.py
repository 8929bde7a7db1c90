"""The Slicer modules as Slicer's factory tests them, and their .ui files; no Slicer needed.

- every `.ui` widget property exists on its class, every connection names real signals and slots,
  and every `qMRML*` widget gets the scene (slicer_ui_check; Slicer 5.10 API index + qt_classes);
- the expectations of `qSlicerModuleGenericTest.py.in` (read from the index's copy of the template;
  it runs on the factory for every module built WITH_GENERIC_TESTS) hold for every module: the
  module class is named like its file, and every attribute the template asserts non-empty
  (categories, contributors, acknowledgementText, ...) is set to a non-empty value.
What these checks cannot show: that the widgets build without a main window, or that the scene
reaches the selectors at run time — the Slicer self-tests and the generic tests do.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from slicer_index import GLUE, REPO, UI_DIR, project_checker, slicer_index
from slicer_ui_check import connection_problems, property_problems, read_ui, scene_problems

GENERIC_TEST_TEMPLATE = "Base/QTCore/Testing/Python/qSlicerModuleGenericTest.py.in"
MODULE_FILES = sorted(p for p in GLUE.glob("*.py"))
UI_FILES = sorted(UI_DIR.glob("*.ui"))


def module_source_loading(ui_path: Path) -> str:
    """The source of the module file that loads `UI/<name>.ui`."""
    sources = [p.read_text() for p in MODULE_FILES if f"UI/{ui_path.name}" in p.read_text()]
    assert len(sources) == 1, f"{ui_path.name} should be loaded by exactly one module file"
    return sources[0]


# --- .ui files ------------------------------------------------------------------------------------
def test_every_module_ui_file_is_checked():
    assert {p.name for p in UI_FILES} == {"SegMoTE.ui", "SegMoTECuration.ui"}


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_properties_exist_on_their_classes(path: Path):
    problems = property_problems(read_ui(path), project_checker())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_connections_name_real_signals_and_slots(path: Path):
    problems = connection_problems(read_ui(path), project_checker())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_every_mrml_widget_gets_the_scene(path: Path):
    problems = scene_problems(read_ui(path), module_source_loading(path))
    assert not problems, "\n".join(problems)


def test_scene_check_catches_the_curation_panel_as_it_was(tmp_path: Path):
    """Defect 2: SegMoTECuration.ui had no mrmlSceneChanged -> setMRMLScene connections."""
    result = subprocess.run(["git", "show", "869f603:SegMoTE/Resources/UI/SegMoTECuration.ui"], capture_output=True,
                            text=True, cwd=REPO)
    if result.returncode != 0:
        pytest.skip("the pre-fix revision is not in this checkout's history")
    old = tmp_path / "SegMoTECuration.ui"
    old.write_text(result.stdout)
    problems = scene_problems(read_ui(old), (GLUE / "SegMoTECuration.py").read_text())
    assert {p.split("'")[1] for p in problems} == {"volumeSelector", "labelsSelector"}, problems


def test_property_and_signal_checks_catch_misspellings(tmp_path: Path):
    text = (UI_DIR / "SegMoTECuration.ui").read_text()
    wrong = (text.replace('<property name="nodeTypes">', '<property name="nodeType">', 1)
             .replace("<signal>mrmlSceneChanged(vtkMRMLScene*)</signal>", "<signal>sceneChanged(vtkMRMLScene*)</signal>", 1)
             .replace('<property name="wordWrap">', '<property name="wordwrap">', 1))
    path = tmp_path / "SegMoTECuration.ui"
    path.write_text(wrong)
    ui = read_ui(path)
    properties = property_problems(ui, project_checker())
    assert any("'nodeType'" in p for p in properties) and any("'wordwrap'" in p for p in properties), properties
    assert any("sceneChanged" in p for p in connection_problems(ui, project_checker()))


# --- the generic module test ------------------------------------------------------------------------
def generic_test_expectations() -> tuple[list[str], bool]:
    """(attributes the template asserts non-empty, whether it asserts module.name == the module name)."""
    template = slicer_index()["templates"][GENERIC_TEST_TEMPLATE]
    non_empty = re.findall(r"assertNotEqual\(self\.module\.(\w+),\s*\"\"\)", template)
    checks_name = "self.assertEqual(self.module.name, '@MODULENAME@')" in template
    return non_empty, checks_name


def module_class_attributes(source: str, class_name: str) -> dict | None:
    """`self.parent.<attribute> = <literal>` of the module class's __init__, evaluated; None without the class."""
    tree = ast.parse(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not classes:
        return None
    values = {}
    for node in ast.walk(classes[0]):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute)
                and ast.unparse(node.targets[0].value) == "self.parent"):
            try:
                values[node.targets[0].attr] = ast.literal_eval(node.value)
            except ValueError:
                values[node.targets[0].attr] = ast.unparse(node.value)  # computed: counted as set
    return values


def generic_test_problems(source: str, module_name: str) -> list[str]:
    non_empty, _checks_name = generic_test_expectations()
    attributes = module_class_attributes(source, module_name)
    if attributes is None:
        return [f"{module_name}.py defines no class {module_name} (the factory names the module after the file)"]
    problems = []
    for name in non_empty:
        value = attributes.get(name)
        if value in (None, "", [], ()) or (isinstance(value, (list, tuple)) and not all(value)):
            problems.append(f"{module_name}: parent.{name} is empty or unset; qSlicerModuleGenericTest asserts it is not")
    return problems


def test_generic_test_template_asserts_what_we_check():
    non_empty, checks_name = generic_test_expectations()
    assert {"categories", "acknowledgementText", "contributors"} <= set(non_empty) and checks_name


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: p.name)
def test_module_meets_the_generic_test(path: Path):
    problems = generic_test_problems(path.read_text(), path.stem)
    assert not problems, "\n".join(problems)


def test_generic_test_check_catches_an_empty_acknowledgement():
    """Defect 8: SegmentEditorSegMoTE and SegMoTECuration had acknowledgementText = ""."""
    source = (GLUE / "SegMoTECuration.py").read_text()
    assignment = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assign)
                      and ast.unparse(n.targets[0]) == "self.parent.acknowledgementText")
    lines = source.splitlines()
    indent = lines[assignment.lineno - 1][:assignment.col_offset]
    lines[assignment.lineno - 1:assignment.end_lineno] = [indent + 'self.parent.acknowledgementText = ""']
    emptied = "\n".join(lines)
    problems = generic_test_problems(emptied, "SegMoTECuration")
    assert problems and "acknowledgementText" in problems[0]
