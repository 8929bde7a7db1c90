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
from SegMoTEGlue.mrmlconvert import (
    controlPointsWorld,
    roiCornersWorld,
    volumeFromNode,
    writeLabelmapToSegment,
)
from SegMoTELib import geometry
from SegMoTEGlue.segmentnames import checkedSegmentName
from SegMoTEGlue.settings import DEVICES, RUNTIMES, EngineSettings, loadSettings, saveSettings
from SegMoTEGlue.worker import BATCH
from SegMoTELib.intensity import IntensityMapping
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
class SegMoTELogic(ScriptedLoadableModuleLogic):
    """Segment a volume node into a segmentation node, from the Python console or a script.

    Prompts are in world RAS (what Slicer shows; parent transforms are respected). Each call
    blocks until done (the work runs on SegMoTE's worker thread) and returns the segment id.
    `orientation`: "axial", "coronal", "sagittal" or a slice normal (3,) in RAS.
    `progress`: optional callable(fraction), called on the calling thread while waiting.
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

    # --- segmentation ----------------------------------------------------------------------------
    def segmentWithPoints(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, pointsRas, labels=None,
                          orientation="axial", propagate: bool = False, sliceRange=None, **options) -> str:
        """Clicks (N, 3) in RAS on one slice; labels (N,) 1 = positive, 0 = negative (default all 1)."""
        points = np.asarray(pointsRas, dtype=np.float64)
        pointLabels = np.ones(len(points), dtype=np.int64) if labels is None else np.asarray(labels)
        arguments = {"orientation": orientation, "points_ras": points, "labels": pointLabels, "box_ras": None}
        return self._segmentSlicePrompt(volumeNode, arguments, propagate, sliceRange, **options)

    def segmentWithMarkups(self, volumeNode: slicer.vtkMRMLScalarVolumeNode,
                           markupsNode: slicer.vtkMRMLMarkupsFiducialNode, labels=None, **options) -> str:
        """Clicks from a point list node (world positions); all positive unless `labels` says otherwise."""
        return self.segmentWithPoints(volumeNode, controlPointsWorld(markupsNode), labels, **options)

    def segmentWithBox(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, boxCornersRas, orientation="axial",
                       propagate: bool = False, sliceRange=None, **options) -> str:
        """A box given by two opposite corners (2, 3) in RAS, or 8 corners (8, 3) of a rotated box or
        rectangle (each used as given), on the slice through its centre."""
        arguments = {"orientation": orientation, "points_ras": None, "labels": None,
                     "box_ras": np.asarray(boxCornersRas, dtype=np.float64)}
        return self._segmentSlicePrompt(volumeNode, arguments, propagate, sliceRange, **options)

    def segmentWithRoi(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, roiNode: slicer.vtkMRMLMarkupsROINode,
                       orientation="axial", **options) -> str:
        """A 3D box from a markups ROI (rotation respected): every slice the ROI crosses."""
        corners = roiCornersWorld(roiNode)

        def compute(segmenter, volume, job):
            return segmenter.segment_box3d(corners, orientation=orientation, progress=job.reportProgress)

        return self._segment(volumeNode, compute, **options)

    def segmentPromptFree(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, sliceIndex: int | None = None,
                          orientation="axial", propagate: bool = False, sliceRange=None, **options) -> str:
        """No prompt (needs an adapter with prompt-free tokens); one slice (default: the middle one)."""
        def compute(segmenter, volume, job):
            index = sliceIndex
            if index is None:
                index = geometry.slice_count(volume, geometry.slice_axis_for(volume, orientation)) // 2
            result = segmenter.segment_auto(orientation, index)
            if propagate:
                return segmenter.propagate(result, slice_range=sliceRange, progress=job.reportProgress)
            return result.labelmap

        return self._segment(volumeNode, compute, **options)

    # --- plumbing --------------------------------------------------------------------------------
    def _segmentSlicePrompt(self, volumeNode, arguments: dict, propagate: bool, sliceRange, **options) -> str:
        def compute(segmenter, volume, job):
            result = segmenter.segment_slice(**arguments)
            if propagate:
                return segmenter.propagate(result, slice_range=sliceRange, progress=job.reportProgress)
            return result.labelmap

        return self._segment(volumeNode, compute, **options)

    def _segment(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, compute,
                 segmentationNode: slicer.vtkMRMLSegmentationNode | None = None, segmentName: str = "SegMoTE",
                 modality: str = "auto", progress=None) -> str:
        segmentName = checkedSegmentName(segmentName)  # before any work: nothing computed for a bad name
        volume = volumeFromNode(volumeNode, modality)
        mapping = IntensityMapping(modality=modality)
        session = engineSession()
        key = (volumeNode.GetID(), volumeNode.GetImageData().GetMTime(), modality)

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
        if segmentationNode is None:
            segmentationNode = self.createSegmentationNode(volumeNode)
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", segmentName)
        writeLabelmapToSegment(labelmap, segmentationNode, segmentId, volumeNode)
        return segmentId

    def createSegmentationNode(self, volumeNode: slicer.vtkMRMLScalarVolumeNode) -> slicer.vtkMRMLSegmentationNode:
        """A new segmentation in the volume's geometry, under the same parent transform."""
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", volumeNode.GetName() + " SegMoTE")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        return segmentationNode


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

