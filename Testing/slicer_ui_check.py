"""Checks of Qt Designer `.ui` files of Slicer modules; no Slicer needed.

- every property set on a widget exists on its class (Slicer 5.10 API index for qMRML/qSlicer/ctk
  classes, `qt_classes` for Qt's own);
- every `qMRML*` widget gets the scene: a `mrmlSceneChanged(vtkMRMLScene*)` -> `setMRMLScene(vtkMRMLScene*)`
  connection from the root widget (as Slicer's scripted-module template has), or the module code
  calls `setMRMLScene` on it. `qMRMLWidget::setMRMLScene` on the root only emits the signal
  (Libs/MRML/Widgets/qMRMLWidget.cxx): without the connections the selectors stay empty;
- every connection names a real signal of the sender's class.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

SCENE_SIGNAL = "mrmlSceneChanged(vtkMRMLScene*)"
SCENE_SLOT = "setMRMLScene(vtkMRMLScene*)"


@dataclass
class UiFile:
    path: Path
    root_name: str
    root_class: str
    widgets: dict = field(default_factory=dict)      # name -> class
    properties: list = field(default_factory=list)   # (widget name, class, property)
    connections: list = field(default_factory=list)  # (sender, signal, receiver, slot)

    def widget_classes(self) -> dict:
        """{name: class} plus the root class under the key None (what slicer_api_check expects)."""
        return {**self.widgets, None: self.root_class}


def read_ui(path: Path) -> UiFile:
    tree = ElementTree.parse(path)
    root = tree.getroot().find("widget")
    ui = UiFile(Path(path), root.get("name"), root.get("class"))
    for widget in root.iter("widget"):
        name, cls = widget.get("name"), widget.get("class")
        ui.widgets[name] = cls
        for prop in widget.findall("property"):
            ui.properties.append((name, cls, prop.get("name")))
    for connection in tree.getroot().iter("connection"):
        ui.connections.append(tuple(connection.findtext(tag) for tag in ("sender", "signal", "receiver", "slot")))
    return ui


def property_problems(ui: UiFile, checker) -> list[str]:
    problems = []
    for name, cls, prop in ui.properties:
        found = checker.has_property(cls, prop)
        if found is False:
            problems.append(f"{ui.path.name}: widget '{name}' ({cls}) has no property '{prop}'")
        elif found is None:
            problems.append(f"{ui.path.name}: class {cls} of widget '{name}' is unknown to the index and qt_classes")
    return problems


def connection_problems(ui: UiFile, checker) -> list[str]:
    problems = []
    for sender, signal, receiver, slot in ui.connections:
        for widget in (sender, receiver):
            if widget not in ui.widgets:
                problems.append(f"{ui.path.name}: connection names no widget '{widget}'")
        match = re.match(r"(\w+)\((.*)\)$", signal or "")
        if match is None or sender not in ui.widgets:
            continue
        counts = checker.signal_counts(ui.widgets[sender], match.group(1))
        arguments = len([a for a in match.group(2).split(",") if a.strip()])
        if counts is not None and not any(low <= arguments <= high for low, high in counts):
            problems.append(f"{ui.path.name}: {ui.widgets[sender]} has no signal {signal}")
        slot_name = (slot or "").split("(")[0]
        if receiver in ui.widgets and checker.has_member(ui.widgets[receiver], slot_name) is False:
            problems.append(f"{ui.path.name}: {ui.widgets[receiver]} has no slot {slot}")
    return problems


def scene_problems(ui: UiFile, module_source: str) -> list[str]:
    """qMRML widgets that never get the scene (no connection from the root, no setMRMLScene in code)."""
    connected = {receiver for sender, signal, receiver, slot in ui.connections
                 if sender == ui.root_name and signal == SCENE_SIGNAL and slot == SCENE_SLOT}
    problems = []
    for name, cls in ui.widgets.items():
        if name == ui.root_name or not cls.startswith("qMRML"):
            continue
        if name in connected or re.search(rf"\bui\.{re.escape(name)}\.setMRMLScene\(", module_source):
            continue
        problems.append(f"{ui.path.name}: {cls} '{name}' is not connected to {ui.root_name}'s "
                        f"{SCENE_SIGNAL} -> {SCENE_SLOT}, and the module never sets its scene: it stays empty")
    if connected and not re.search(r"\.setMRMLScene\(slicer\.mrmlScene\)", module_source):
        problems.append(f"{ui.path.name}: the module never calls setMRMLScene(slicer.mrmlScene) on the root widget")
    return problems
