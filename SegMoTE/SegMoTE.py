"""SegMoTE main module: dependencies, model settings, and a Logic usable from the Python console.

Nothing heavy happens at import or widget construction (Slicer's generic tests load the module
without a main window): the engine (a separate process, local or remote) is started or reached on
the first prompt or by *Start engine*, through Qt's asynchronous HTTP on the main thread
(`SegMoTEGlue.engine`); this process never imports torch.
"""

from __future__ import annotations

import logging
import time

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
from SegMoTEGlue.engine import READY, STARTING, enginePool, engineFor
from SegMoTEGlue.mrmlconvert import volumeFromNode
from SegMoTEGlue.settings import DEVICES, RUNTIMES, EngineSettings, loadSettings, saveSettings
from SegMoTEGlue.volumelogic import VolumeSegmentationLogic
from SegMoTELib.priorities import BATCH
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
        self._addEngineSection(uiWidget)
        self._showSettings(loadSettings())
        self._watchEngine()

        self.ui.installButton.connect("clicked(bool)", self.onInstall)
        self.ui.saveSettingsButton.connect("clicked(bool)", self.onSaveSettings)
        self.ui.adapterComboBox.connect("currentIndexChanged(int)", self._updateAdapterPathVisibility)
        self.ui.openEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.updateDependencyStatus()
        self.layout.addStretch(1)

    def _addEngineSection(self, uiWidget) -> None:
        """Engine: a local process (default) or a remote server, saved as soon as it changes, above the
        Model section (whose settings a remote engine does not use: greyed out then); its state
        (stopped / starting / ready / failed with the reason), *Start engine*, *Stop engine* and
        *Test connection*."""
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
        self.engineStateLabel = qt.QLabel("")
        self.engineStateLabel.wordWrap = True
        form.addRow("State:", self.engineStateLabel)
        buttons = qt.QHBoxLayout()
        self.startEngineButton = qt.QPushButton("Start engine")
        self.startEngineButton.toolTip = "Start the local engine (or reach the remote one) now, before the first prompt."
        self.stopEngineButton = qt.QPushButton("Stop engine")
        self.testConnectionButton = qt.QPushButton("Test connection")
        self.testConnectionButton.toolTip = "Reach the engine and say what it is (device, model) or why it cannot be reached."
        for button in (self.startEngineButton, self.stopEngineButton, self.testConnectionButton):
            buttons.addWidget(button)
        form.addRow(buttons)
        self.engineComboBox.connect("currentIndexChanged(int)", self._engineSettingsChanged)
        self.serverUrlLineEdit.connect("editingFinished()", self._engineSettingsChanged)
        self.serverTokenLineEdit.connect("editingFinished()", self._engineSettingsChanged)
        self.startEngineButton.connect("clicked(bool)", self.onStartEngine)
        self.stopEngineButton.connect("clicked(bool)", self.onStopEngine)
        self.testConnectionButton.connect("clicked(bool)", self.onTestConnection)
        # Above the Model section (index 0 is Dependencies), so above its Save settings button.
        uiWidget.layout().insertWidget(1, section)

    def _updateServerFields(self, *_unused) -> None:
        remote = self.engineComboBox.currentData == "remote"
        self.serverUrlLineEdit.enabled = remote
        self.serverTokenLineEdit.enabled = remote
        # A remote engine runs the model it was started with: the Model section does not apply.
        self.ui.modelCollapsibleButton.enabled = not remote
        self.ui.modelCollapsibleButton.toolTip = ("The remote server's model is the one it was started with "
                                                  "(segmote serve ...)." if remote else "")

    def _engineSettingsChanged(self, *_unused) -> None:
        """The Engine section is saved as soon as it changes (with the model settings shown)."""
        self._updateServerFields()
        if getattr(self, "_showingSettings", False):
            return
        saveSettings(self._settingsFromGUI())
        self._watchEngine()

    # --- the engine's state ------------------------------------------------------------------------
    def _watchEngine(self) -> None:
        engine = engineFor(loadSettings())
        previous = getattr(self, "_watchedEngine", None)
        if previous is not engine:
            if previous is not None:
                previous.removeListener(self._showEngineState)
            engine.addListener(self._showEngineState)
            self._watchedEngine = engine
        self._showEngineState(engine)

    def _showEngineState(self, engine) -> None:
        self.engineStateLabel.text = engine.describeState()
        self.startEngineButton.enabled = engine.state not in (STARTING, READY)
        self.stopEngineButton.enabled = engine.state in (STARTING, READY)

    def onStartEngine(self) -> None:
        engineFor(loadSettings()).start()

    def onStopEngine(self) -> None:
        engineFor(loadSettings()).stop()

    def onTestConnection(self) -> None:
        self.engineStateLabel.text = "Testing the connection..."

        def report(ok: bool, text: str) -> None:
            self.engineStateLabel.text = text
            if not ok:
                slicer.util.warningDisplay(text, windowTitle="SegMoTE: engine")

        engineFor(loadSettings()).testConnection(report)

    def cleanup(self) -> None:
        engine = getattr(self, "_watchedEngine", None)
        if engine is not None:
            engine.removeListener(self._showEngineState)

    def _showSettings(self, engineSettings: EngineSettings) -> None:
        self._showingSettings = True  # nothing is saved while the saved settings are shown
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
        self._showingSettings = False

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
        enginePool().stopAll()  # engines of the old settings; the new one starts on the next prompt
        self._watchEngine()
        self.ui.settingsStatusLabel.text = "Saved; the engine starts (or is reached) on the next prompt or 'Start engine'."

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
        """`compute(segmenter, volume, call)` (a generator of engine steps) against the engine's session
        of `volume`; blocks, running Qt's event loop (the answers arrive through it, the GUI stays
        alive, progress is reported meanwhile), and returns the labelmap."""
        engine = engineFor(self.engineSettings())

        def run(call):
            return compute(engine.segmenterFor(key, volume, mapping), volume, call)

        call = engine.submit(run, "SegMoTE segmentation", BATCH)
        while not call.finished:
            slicer.app.processEvents()
            if progress is not None:
                progress(call.progress)
            time.sleep(0.01)
        labelmap = call.wait(processEvents=slicer.app.processEvents)
        if engine.notice:
            logging.info("SegMoTE: %s", engine.notice)
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

