"""Slicer's real MRML classes without Qt, for the glue's MRML-level tests (the `slicer-core` wheel).

`slicer-core` is Kitware's build of Slicer's core libraries and loadable-module logic (MRML scene
and nodes, segmentations and `vtkSlicerSegmentEditorLogic`, markups, transforms, volumes, tables,
plots, `slicer.util`). What Slicer's application sets up around them is set up here the same way,
and only that:
- a scene with an application logic (it adds the selection and interaction singletons) and the
  module logics the glue reaches through `slicer.modules.<name>.logic()` (volumes, segmentations,
  markups), each given the scene as Slicer's module manager does;
- the binary labelmap <-> closed surface converter rules, which Slicer's Segmentations module
  registers at startup (qSlicerSegmentationsModule::setup);
- `SegmentEditorCalls`: the calls the effect makes on its `scriptedEffect`, forwarded to the real
  `vtkSlicerSegmentEditorLogic` exactly as qSlicerSegmentEditorAbstractEffect.cxx and
  qMRMLSegmentEditorWidget.cxx (Slicer 5.10) forward them.
slicer-core is 5.13; behaviour the glue relies on is confirmed in the 5.10 source where it is cited.
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO_SELFTESTS = Path(__file__).resolve().parents[1] / "SegMoTE" / "Testing" / "Python"

_CONVERTERS_REGISTERED = False


def real_slicer():
    """Slicer's real Python package (slicer-core), or a skip saying it is missing."""
    slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install segmote[test])")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("the importable 'slicer' is not slicer-core")
    return slicer


def register_converter_rules(slicer) -> None:
    global _CONVERTERS_REGISTERED
    if _CONVERTERS_REGISTERED:
        return
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    _CONVERTERS_REGISTERED = True


class RealScene:
    """A fresh `vtkMRMLScene` made `slicer.mrmlScene`, with the module logics the glue calls."""

    def __init__(self):
        slicer = self.slicer = real_slicer()
        register_converter_rules(slicer)
        self.scene = slicer.vtkMRMLScene()
        self.applicationLogic = slicer.vtkMRMLApplicationLogic()
        self.applicationLogic.SetMRMLScene(self.scene)
        self.logics = {}
        for name, className in (("colors", "vtkSlicerColorLogic"), ("volumes", "vtkSlicerVolumesLogic"),
                                ("segmentations", "vtkSlicerSegmentationsModuleLogic"),
                                ("markups", "vtkSlicerMarkupsLogic"), ("tables", "vtkSlicerTablesLogic"),
                                ("plots", "vtkSlicerPlotsLogic")):
            logic = getattr(slicer, className)()
            logic.SetMRMLApplicationLogic(self.applicationLogic)
            logic.SetMRMLScene(self.scene)
            self.logics[name] = logic
            # Slicer registers each module's logic with the application logic under the module's name
            # (qSlicerModuleFactoryManager.cxx, loadModule); e.g. the volumes logic asks it for "Colors".
            self.applicationLogic.SetModuleLogic(name.capitalize(), logic)
        if not self.scene.IsNodeClassRegistered("vtkMRMLSegmentEditorNode"):
            self.scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
        self._saved = {name: getattr(slicer, name, None) for name in ("mrmlScene", "modules")}
        slicer.mrmlScene = self.scene
        slicer.modules = types.SimpleNamespace(**{
            name: types.SimpleNamespace(logic=(lambda logic=logic: logic)) for name, logic in self.logics.items()})

    def close(self) -> None:
        for name, value in self._saved.items():
            setattr(self.slicer, name, value)
        self.scene.Clear(True)

    @property
    def selectionNode(self):
        return self.scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")

    def addVolume(self, voxels, ijkToRas=None, name="volume"):
        return self.slicer.util.addVolumeFromArray(np.asarray(voxels), ijkToRAS=ijkToRas, name=name)

    def addSegmentation(self, volumeNode, *segmentNames):
        """A segmentation in `volumeNode`'s geometry with empty segments; (node, [segment ids])."""
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        return node, [node.GetSegmentation().AddEmptySegment("", name) for name in segmentNames]

    def segmentArray(self, segmentationNode, segmentId, volumeNode) -> np.ndarray:
        return np.asarray(self.slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode),
                          dtype=bool)


class SegmentEditorCalls:
    """The effect's `scriptedEffect` calls on the real vtkSlicerSegmentEditorLogic.

    Each forwards as Slicer 5.10 does: defaultModifierLabelmap() and selectedSegmentLabelmap() emit
    updateVolume (qSlicerSegmentEditorAbstractEffect.cxx), which qMRMLSegmentEditorWidget::updateVolume
    passes to vtkSlicerSegmentEditorLogic::UpdateVolume, i.e. ResetModifierLabelmapToDefault and
    UpdateSelectedSegmentLabelmap; saveStateForUndo() reaches SaveStateForUndo the same way;
    modifySelectedSegmentByLabelmap(...) calls ModifySegmentByLabelmap with the selected segment and
    the effect's perSegment flag (True for SegMoTE); sourceVolumeImageData() is UpdateAlignedSourceVolume.
    """

    def __init__(self, realScene: RealScene, volumeNode, segmentationNode, segmentId):
        slicer = realScene.slicer
        self.realScene = realScene
        self.editorNode = realScene.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLScene(realScene.scene)
        self.logic.SetSegmentEditorNode(self.editorNode)
        self.editorNode.SetAndObserveSegmentationNode(segmentationNode)
        self.editorNode.SetAndObserveSourceVolumeNode(volumeNode)
        self.editorNode.SetSelectedSegmentID(segmentId)
        Logic = slicer.vtkSlicerSegmentEditorLogic
        self.ModificationModeSet, self.ModificationModeAdd = Logic.ModificationModeSet, Logic.ModificationModeAdd
        self.ModificationModeRemove = Logic.ModificationModeRemove

    def parameterSetNode(self):
        return self.editorNode

    def defaultModifierLabelmap(self):
        return self.logic.GetModifierLabelmap() if self.logic.ResetModifierLabelmapToDefault() else None

    def selectedSegmentLabelmap(self):
        return self.logic.GetSelectedSegmentLabelmap() if self.logic.UpdateSelectedSegmentLabelmap() else None

    def sourceVolumeImageData(self):
        return self.logic.GetAlignedSourceVolume() if self.logic.UpdateAlignedSourceVolume() else None

    def saveStateForUndo(self):
        self.logic.SaveStateForUndo()

    def modifySelectedSegmentByLabelmap(self, modifier, mode, *extentAndBypass):
        extent, bypass = None, False
        for value in extentAndBypass:
            if isinstance(value, bool):
                bypass = value
            else:
                extent = [int(v) for v in value]
        segmentationNode = self.editorNode.GetSegmentationNode()
        segmentId = self.editorNode.GetSelectedSegmentID()
        if extent is None:
            self.logic.ModifySegmentByLabelmap(segmentationNode, segmentId, modifier, mode, True, bypass)
        else:
            self.logic.ModifySegmentByLabelmap(segmentationNode, segmentId, modifier, mode, extent, True, bypass)

    def undo(self):
        """The editor's Undo button (qMRMLSegmentEditorWidget::undo -> vtkSlicerSegmentEditorLogic::Undo)."""
        self.logic.Undo()


@pytest.fixture
def real_scene():
    scene = RealScene()
    yield scene
    scene.close()


@contextmanager
def real_glue_modules():
    """Import glue modules (SegMoTEGlue.*) freshly against the real `slicer` and `vtk`; undone on exit,
    so fakes imported elsewhere never meet the real classes and the other way round."""
    real_slicer()
    from slicer_fakes import GLUE

    saved = {name: module for name, module in sys.modules.items() if name.startswith("SegMoTEGlue")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(GLUE))
    try:
        yield
    finally:
        sys.path.remove(str(GLUE))
        for name in [n for n in sys.modules if n.startswith("SegMoTEGlue")]:
            del sys.modules[name]
        sys.modules.update(saved)
