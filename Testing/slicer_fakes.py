"""Small fakes of the Slicer, Qt and VTK calls the glue makes, to unit-test the glue's own logic.

They stand in for `slicer`, `qt`, `vtk` and `SegmentEditorEffects` while a glue module is imported
(`glue_modules`), so its decisions (which segment a result goes to, what is created in the scene,
what is connected and disconnected) can be tested without Slicer. A fake only does what the test
gives it to do: it cannot show that Slicer calls the glue as assumed (the Slicer self-tests and the
static API checks do that), and each behaviour a fake imitates is named with the Slicer source that
does it.
"""

from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from pathlib import Path

GLUE = Path(__file__).resolve().parents[1] / "SegMoTE"


class Anything:
    """Accepts any attribute, call, item or context use; stands for Qt/VTK plumbing not under test."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return Anything()

    def __call__(self, *args, **kwargs):
        return Anything()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return True


class Signals:
    """Qt-style connect/disconnect bookkeeping (what the effect's cleanup() must undo)."""

    def __init__(self):
        self.connected: list = []

    def connect(self, signal, slot):
        self.connected.append((signal, slot))

    def disconnect(self, signal, slot):
        self.connected.remove((signal, slot))

    def emit(self, signal, *args):
        for name, slot in list(self.connected):
            if name == signal:
                slot(*args)


class FakeWidget(Signals):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.blocked = False
        self.checked = False
        self.value = 0
        self.currentText = ""
        self.text = ""

    def blockSignals(self, block):
        previous, self.blocked = self.blocked, block
        return previous

    def emit(self, signal, *args):
        if not self.blocked:
            super().emit(signal, *args)

    def __getattr__(self, name):
        return Anything()


class FakeRadioButton(FakeWidget):
    """Auto-exclusive like QRadioButton (QAbstractButton::setChecked, qabstractbutton.cpp): the checked button
    cannot be unchecked directly; checking another one unchecks it, and it emits toggled(false)."""

    group: list = []

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._checked = False
        FakeRadioButton.group.append(self)

    @property
    def checked(self):
        return self._checked

    @checked.setter
    def checked(self, value):
        if value == self._checked or not value:
            return
        self._checked = value
        if value:
            for sibling in FakeRadioButton.group:
                if sibling is not self and sibling._checked:
                    sibling._checked = False
                    sibling.emit("toggled(bool)", False)
        self.emit("toggled(bool)", value)


class FakeComboBox(FakeWidget):
    def addItem(self, text, *args):
        pass

    def setCurrentText(self, text):
        self.currentText = text


class FakeSpinBox(FakeWidget):
    def setRange(self, low, high):
        pass


def fake_qt() -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.QRadioButton = FakeRadioButton
    qt.QComboBox = FakeComboBox
    qt.QSpinBox = FakeSpinBox
    qt.QCheckBox = FakeWidget
    qt.QPushButton = FakeWidget
    qt.QLabel = FakeWidget
    qt.QTimer = FakeWidget
    qt.QHBoxLayout = Anything
    qt.QIcon = Anything
    for name in ("QPixmap", "QPainter", "QColor", "QPen", "QCursor"):  # the polarity cursor's drawing
        setattr(qt, name, Anything())
    qt.QApplication = Anything()
    qt.QSettings = Anything
    qt.Qt = Anything()
    return qt


def fake_vtk() -> dict[str, types.ModuleType]:
    vtk = types.ModuleType("vtk")
    vtk.vtkCommand = types.SimpleNamespace(LeftButtonPressEvent=1, LeftButtonReleaseEvent=2, MouseMoveEvent=3,
                                           LeftButtonDoubleClickEvent=4, KeyPressEvent=5)
    vtk.vtkMatrix4x4 = Anything
    vtk.vtkTransform = Anything
    util = types.ModuleType("vtk.util")
    numpy_support = types.ModuleType("vtk.util.numpy_support")
    util.numpy_support = numpy_support
    vtk.util = util
    return {"vtk": vtk, "vtk.util": util, "vtk.util.numpy_support": numpy_support}


def fake_slicer() -> types.ModuleType:
    slicer = types.ModuleType("slicer")
    slicer.util = types.SimpleNamespace(showStatusMessage=lambda *a, **k: None, pip_install=None,
                                        updateMarkupsControlPointsFromArray=lambda node, points, world=False:
                                        node.setPoints(points))
    slicer.app = Anything()
    slicer.mrmlScene = None
    slicer.qSlicerSegmentEditorAbstractEffect = types.SimpleNamespace(ModificationModeSet=0)
    slicer.qSlicerSegmentEditorScriptedEffect = Anything
    return slicer


class FakeAbstractEffect:
    """AbstractScriptedSegmentEditorEffect's part the effect relies on (SegmentEditorEffects package)."""

    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def cleanup(self):
        pass


GLUE_PACKAGES = ("SegMoTEGlue", "SegmentEditorSegMoTELib")


@contextmanager
def glue_modules(slicer_module=None, qt_module=None):
    """Import the glue with fake `qt` and `SegmentEditorEffects` (and fake `slicer` and `vtk`, unless
    `slicer_module` is Slicer's real one from slicer-core: then VTK is real too and only `slicer.app`,
    the Qt application, is a fake). Undone on exit: every glue module imported before is put back.
    `qt_module`: a real Qt instead of the fake (PySide6's, `SegMoTELib.service.pyside_qt`)."""
    effects = types.ModuleType("SegmentEditorEffects")
    effects.AbstractScriptedSegmentEditorEffect = FakeAbstractEffect
    real = slicer_module is not None and hasattr(slicer_module, "vtkMRMLScene")
    fakes = {"slicer": slicer_module or fake_slicer(), "qt": qt_module or fake_qt(), "SegmentEditorEffects": effects,
             **({} if real else fake_vtk())}
    saved = {name: sys.modules.get(name) for name in fakes}
    savedGlue = {name: module for name, module in sys.modules.items() if name.startswith(GLUE_PACKAGES)}
    for name in savedGlue:
        del sys.modules[name]
    savedApp = getattr(slicer_module, "app", None) if real else None
    if real:
        slicer_module.app = Anything()
    sys.modules.update(fakes)
    sys.path.insert(0, str(GLUE))
    FakeRadioButton.group = []
    try:
        yield fakes["slicer"]
    finally:
        sys.path.remove(str(GLUE))
        for name in [n for n in sys.modules if n.startswith(GLUE_PACKAGES)]:
            del sys.modules[name]
        sys.modules.update(savedGlue)
        if real:
            slicer_module.app = savedApp
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def import_glue(name: str):
    """Import a glue module freshly (inside `glue_modules`)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)
