"""SegMoTE main module: dependencies, model settings, and a Logic usable from the Python console.

Nothing heavy happens at import or widget construction (Slicer's generic tests load the module
without a main window): the engine (a separate process, local or remote) is started or reached on
first use, from SegMoTE's worker thread; this process never imports torch.
"""

from __future__ import annotations

import logging

import ctk
import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SegMoTEGlue  # noqa: F401  (makes SegMoTELib importable from a source checkout)
from SegMoTEGlue import dependencies
from SegMoTEGlue.engine import engineSession
from SegMoTEGlue.mrmlconvert import volumeFromNode
from SegMoTEGlue.settings import DEVICES, RUNTIMES, EngineSettings, loadSettings, saveSettings
from SegMoTEGlue.volumelogic import VolumeSegmentationLogic
from SegMoTEGlue.worker import BATCH
from SegMoTELib.resources import load_manifest

_ADAPTER_CHOICES = (("Shipped adapter (default)", "default"), ("None (base decoder)", "none"),
                    ("Adapter file...", "file"))


class SegMoTE(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SegMoTE"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SegMoTE developers"]
        self.parent.helpText = (
            "Interactive segmentation with SegMoTE (a Mixture-of-Experts adaptation of SAM). "
            "Install the dependencies here once, choose the model, then use the 'SegMoTE' effect of "
            "the Segment Editor (clicks, boxes, prompt-free, 3D propagation) or the Logic from the "
            "Python console. Curation of training sets: module 'SegMoTE Curation'.")
        self.parent.acknowledgementText = (
            "SegMoTE builds on Segment Anything (Meta AI) and LiteMedSAM / MedSAM (Bo Wang lab).")


# ---------------------------------------------------------------------------------------------
class SegMoTEWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegMoTE.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = SegMoTELogic()

        for device in DEVICES:
            self.ui.deviceComboBox.addItem(device)
        for runtime in RUNTIMES:
            self.ui.runtimeComboBox.addItem(runtime)
        for name, spec in load_manifest()["backbones"].items():
            self.ui.backboneComboBox.addItem(spec.get("title", name), name)
        for title, value in _ADAPTER_CHOICES:
            self.ui.adapterComboBox.addItem(title, value)
        self._addEngineSection()
        self._showSettings(loadSettings())

        self.ui.installButton.connect("clicked(bool)", self.onInstall)
        self.ui.saveSettingsButton.connect("clicked(bool)", self.onSaveSettings)
        self.ui.adapterComboBox.connect("currentIndexChanged(int)", self._updateAdapterPathVisibility)
        self.ui.openEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.updateDependencyStatus()
        self.layout.addStretch(1)

    def _addEngineSection(self) -> None:
        """Engine: a local process (default) or a remote server; saved with the model settings."""
        section = ctk.ctkCollapsibleButton()
        section.text = "Engine"
        form = qt.QFormLayout(section)
        self.engineComboBox = qt.QComboBox()
        self.engineComboBox.addItem("Local process (default)", "local")
        self.engineComboBox.addItem("Remote server", "remote")
        self.engineComboBox.toolTip = ("Local: the model runs in a separate process started with Slicer's Python. "
                                       "Remote: a 'segmote serve' GPU server (model options are the server's).")
        form.addRow("Engine:", self.engineComboBox)
        self.serverUrlLineEdit = qt.QLineEdit()
        self.serverUrlLineEdit.placeholderText = "https://segmote.example.org:8443"
        form.addRow("Server URL:", self.serverUrlLineEdit)
        self.serverTokenLineEdit = qt.QLineEdit()
        self.serverTokenLineEdit.echoMode = qt.QLineEdit.Password
        self.serverTokenLineEdit.placeholderText = "the server's token (empty: the SEGMOTE_TOKEN variable)"
        form.addRow("Token:", self.serverTokenLineEdit)
        self.engineComboBox.connect("currentIndexChanged(int)", self._updateServerFields)
        self.layout.addWidget(section)

    def _updateServerFields(self, *_unused) -> None:
        remote = self.engineComboBox.currentData == "remote"
        self.serverUrlLineEdit.enabled = remote
        self.serverTokenLineEdit.enabled = remote

    def _showSettings(self, engineSettings: EngineSettings) -> None:
        self.engineComboBox.setCurrentIndex(max(self.engineComboBox.findData(engineSettings.engine), 0))
        self.serverUrlLineEdit.text = engineSettings.serverUrl
        self.serverTokenLineEdit.text = engineSettings.serverToken
        self._updateServerFields()
        self.ui.deviceComboBox.setCurrentText(engineSettings.device)
        backboneIndex = self.ui.backboneComboBox.findData(engineSettings.backbone)
        self.ui.backboneComboBox.setCurrentIndex(max(backboneIndex, 0))
        self.ui.checkpointPathLineEdit.currentPath = engineSettings.checkpoint
        adapterIndex = self.ui.adapterComboBox.findData(engineSettings.adapter)
        if adapterIndex < 0:  # a file path
            adapterIndex = self.ui.adapterComboBox.findData("file")
            self.ui.adapterPathLineEdit.currentPath = engineSettings.adapter
        self.ui.adapterComboBox.setCurrentIndex(adapterIndex)
        self.ui.fastCheckBox.checked = engineSettings.fast
        self.ui.runtimeComboBox.setCurrentText(engineSettings.runtime)
        self._updateAdapterPathVisibility()

    def _settingsFromGUI(self) -> EngineSettings:
        adapter = self.ui.adapterComboBox.currentData
        if adapter == "file":
            adapter = self.ui.adapterPathLineEdit.currentPath
        return EngineSettings(
            device=self.ui.deviceComboBox.currentText,
            backbone=self.ui.backboneComboBox.currentData,
            checkpoint=self.ui.checkpointPathLineEdit.currentPath,
            adapter=adapter,
            fast=self.ui.fastCheckBox.checked,
            runtime=self.ui.runtimeComboBox.currentText,
            engine=self.engineComboBox.currentData,
            serverUrl=self.serverUrlLineEdit.text.strip(),
            serverToken=self.serverTokenLineEdit.text.strip(),
        )

    def _updateAdapterPathVisibility(self, *_unused) -> None:
        self.ui.adapterPathLineEdit.setVisible(self.ui.adapterComboBox.currentData == "file")

    def updateDependencyStatus(self) -> None:
        status = dependencies.dependencyStatus()
        self.ui.dependencyStatusLabel.text = status.describe()
        self.ui.installButton.enabled = status.installable  # off when ready, and on a too old Slicer

    def onInstall(self) -> None:
        with slicer.util.tryWithErrorDisplay("SegMoTE: installing the dependencies failed.", waitCursor=True):
            status = self.logic.installDependencies()
            if not status.ready:
                slicer.util.warningDisplay(status.describe(), windowTitle="SegMoTE")
        self.updateDependencyStatus()

    def onSaveSettings(self) -> None:
        saveSettings(self._settingsFromGUI())
        engineSession().reset()
        self.ui.settingsStatusLabel.text = "Saved; the engine starts (or is reached) on the next segmentation."

    def onOpenSegmentEditor(self) -> None:
        slicer.util.selectModule("SegmentEditor")


# ---------------------------------------------------------------------------------------------
class SegMoTELogic(ScriptedLoadableModuleLogic, VolumeSegmentationLogic):
    """Segment a volume node into a segmentation node, from the Python console or a script.

    The segmentation calls (segmentWithPoints, segmentWithMarkups, segmentWithBox, segmentWithRoi,
    segmentPromptFree, createSegmentationNode) are VolumeSegmentationLogic's (SegMoTEGlue/volumelogic.py:
    prompts in world RAS, one new segment per call, its id returned); this class adds the engine.
    """

    def __init__(self, settings: EngineSettings | None = None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.settings = settings

    # --- dependencies and settings ---------------------------------------------------------------
    def dependencyStatus(self) -> dependencies.DependencyStatus:
        return dependencies.dependencyStatus()

    def installDependencies(self, askConfirmation: bool = True) -> dependencies.DependencyStatus:
        return dependencies.installDependencies(askConfirmation)

    def engineSettings(self) -> EngineSettings:
        return self.settings or loadSettings()

    # --- the engine ------------------------------------------------------------------------------
    def runOnEngine(self, key, volume, mapping, compute, progress=None):
        """`compute(segmenter, volume, job)` on the worker, against the engine's session of `volume`;
        blocks (progress reported meanwhile) and returns the labelmap."""
        session = engineSession()

        def run(job, predictor):
            segmenter = session.segmenterFor(predictor, key, volume, mapping)
            return compute(segmenter, volume, job)

        job = session.submit(run, "SegMoTE segmentation", BATCH, settings=self.engineSettings())
        while not job.waitFinished(0.1):
            if progress is not None:
                progress(job.progress)
        labelmap = job.wait()
        notice = session.predictorNotice()
        if notice:
            logging.info("SegMoTE: %s", notice)
        return labelmap


# ---------------------------------------------------------------------------------------------
class SegMoTETest(ScriptedLoadableModuleTest):
    """Light checks that need no model (the model self-tests are in Testing/Python)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_dependency_status_reports_without_importing_torch()
        self.setUp()
        self.test_volume_geometry_follows_rotated_parent_transform()

    def test_dependency_status_reports_without_importing_torch(self):
        import sys

        hadTorch = "torch" in sys.modules
        status = SegMoTELogic().dependencyStatus()
        self.assertIsInstance(status.describe(), str)
        self.assertEqual("torch" in sys.modules, hadTorch)

    def test_volume_geometry_follows_rotated_parent_transform(self):
        voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
        ijkToRas = vtk.vtkMatrix4x4()
        ijkToRas.SetElement(0, 0, -0.8)
        ijkToRas.SetElement(1, 1, 1.2)
        ijkToRas.SetElement(2, 2, 3.0)
        volumeNode = slicer.util.addVolumeFromArray(voxels, ijkToRAS=slicer.util.arrayFromVTKMatrix(ijkToRas))
        transform = vtk.vtkTransform()
        transform.RotateWXYZ(25.0, 0.3, 0.5, 0.8)
        transform.Translate(10.0, -4.0, 7.0)
        transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        transformNode.SetMatrixTransformToParent(transform.GetMatrix())
        volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())

        volume = volumeFromNode(volumeNode)
        voxel = [3.0, 2.0, 1.0, 1.0]
        local = ijkToRas.MultiplyPoint(voxel)
        world = [0.0, 0.0, 0.0]
        volumeNode.TransformPointToWorld(local[:3], world)
        self.assertTrue(np.allclose(volume.ras_to_ijk_points([world])[0], voxel[:3], atol=1e-6))
        np.testing.assert_array_equal(volume.array, voxels)
        self.delayDisplay("SegMoTE geometry test passed")

