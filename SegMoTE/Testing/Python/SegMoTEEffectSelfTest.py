"""The "SegMoTE" Segment Editor effect in Slicer: prompt API with voxel coordinates, undo, targets, and
the mouse and keys through the Red slice view's own interactor (what only a running Slicer can show;
the rest runs in CI on slicer-core's classes: Testing/test_slicer_effect.py).

The effect's model work runs in the engine (its answers come through Qt's event loop);
`waitForIdle()` processes Qt events until the results are written back through modifySelectedSegmentByLabelmap(). Masks are compared with
the engine's own masks on the same phantom and prompts (References/, made without Slicer).
"""

from __future__ import annotations

import unittest

import numpy as np
import slicer
import vtk
from SegMoTESelfTestCase import BOX_IJK, CLICK_IJK, NEGATIVE_CLICK_IJK, dice
from SegMoTETestSupport import (
    checkAgainstReference,
    loadPhantomVolume,
    savedSettingsReplacedBySelfTestSettings,
    segmentArray,
)

import SegMoTEGlue  # noqa: F401
from SegMoTE import SegMoTELogic


class SegMoTEEffectSelfTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        if not SegMoTELogic().dependencyStatus().ready:
            self.skipTest(SegMoTELogic().dependencyStatus().describe())
        self.settings = savedSettingsReplacedBySelfTestSettings()
        self.settings.__enter__()
        self.volumeNode = loadPhantomVolume()
        self.segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        self.segmentId = self.segmentationNode.GetSegmentation().AddEmptySegment("", "effect")
        self.otherSegmentId = self.segmentationNode.GetSegmentation().AddEmptySegment("", "other")
        self.editor = slicer.qMRMLSegmentEditorWidget()
        self.editor.setMRMLScene(slicer.mrmlScene)
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.editor.setMRMLSegmentEditorNode(editorNode)
        self.editor.setSegmentationNode(self.segmentationNode)
        self.editor.setSourceVolumeNode(self.volumeNode)
        self.editor.setCurrentSegmentID(self.segmentId)
        self.editor.setActiveEffectByName("SegMoTE")
        self.effect = self.editor.activeEffect().self()

    def tearDown(self):
        if hasattr(self, "editor"):
            self.editor.setActiveEffectByName("")
        if hasattr(self, "settings"):
            self.settings.__exit__(None, None, None)

    def mask(self, segmentId=None) -> np.ndarray:
        return segmentArray(self.segmentationNode, segmentId or self.segmentId, self.volumeNode)

    def test_box_matches_the_engine(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        effectMask = self.mask()
        self.assertEqual(np.flatnonzero(effectMask.any(axis=(1, 2))).tolist(), [BOX_IJK[0][2]])
        checkAgainstReference(self, "box", effectMask)

    def test_negative_click_refines_the_box_and_undo_restores(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        boxMask = self.mask()
        self.effect.addPointPromptIjk(NEGATIVE_CLICK_IJK, positive=False, orientation="axial")
        self.effect.waitForIdle()
        refined = self.mask()
        self.assertTrue(boxMask.any())
        i, j, k = NEGATIVE_CLICK_IJK
        self.assertFalse(refined[k, j, i])  # a negative click is background
        checkAgainstReference(self, "box_negative_click", refined)
        self.editor.undo()
        self.assertEqual(dice(self.mask(), boxMask), 1.0)
        self.assertIsNone(self.effect.prompts)  # the undone click's logits must not refine the next click

    def test_propagation_extends_beyond_the_slice(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        self.effect.onPropagate()
        self.effect.waitForIdle()
        mask = self.mask()
        self.assertGreater(int(mask.any(axis=(1, 2)).sum()), 1)
        checkAgainstReference(self, "box_propagated", mask)

    def test_clear_prompts_keeps_the_mask(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        before = self.mask()
        self.effect.clearPrompts()
        self.assertIsNone(self.effect.prompts)
        self.assertEqual(dice(self.mask(), before), 1.0)

    def test_result_for_a_segment_left_before_it_arrives_is_dropped(self):
        # Defect 5: the target is recorded at submission; selecting another segment meanwhile drops it.
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.editor.setCurrentSegmentID(self.otherSegmentId)
        self.effect.waitForIdle()
        self.assertFalse(self.mask(self.otherSegmentId).any())
        self.assertFalse(self.mask(self.segmentId).any())

    def test_prompts_do_not_carry_over_to_another_segment(self):
        # Defect 6: the other segment has no prompts of its own, so there is nothing to propagate.
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        self.editor.setCurrentSegmentID(self.otherSegmentId)
        self.assertIsNone(self.effect.prompts)
        self.effect.onPropagate()
        self.effect.waitForIdle()
        self.assertFalse(self.mask(self.otherSegmentId).any())

    def test_effect_creates_no_markups_until_a_prompt_and_keeps_the_active_place_node(self):
        # Defect 4: a source-volume change (sent to every effect) creates nothing, and the markers
        # created for a prompt do not become the Markups module's active place node.
        markupsCount = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode")
        self.effect.sourceVolumeNodeChanged()
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode"), markupsCount)
        userPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "user points")
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        self.assertEqual(selectionNode.GetActivePlaceNodeID(), userPoints.GetID())
        self.effect.addPointPromptIjk(NEGATIVE_CLICK_IJK, positive=True, orientation="axial")
        self.effect.waitForIdle()
        self.assertGreater(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode"), markupsCount + 1)
        self.assertEqual(selectionNode.GetActivePlaceNodeID(), userPoints.GetID())

    def test_deactivating_drops_the_pending_result(self):
        # Defect 5: deactivate() cancels pending jobs; a result already running is not written.
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.editor.setActiveEffectByName("")
        self.effect.waitForIdle()
        self.assertFalse(self.mask().any())

    # --- what only a running Slicer shows: its views, their interactor, the editor's undo -----------------
    def boxOn(self, k: int) -> None:
        (i0, j0, _), (i1, j1, _) = BOX_IJK
        self.effect.setBoxPromptIjk((i0, j0, k), (i1, j1, k), orientation="axial")
        self.effect.waitForIdle()

    def test_a_prompt_on_another_slice_keeps_the_first(self):
        self.boxOn(11)
        first = self.mask()[11].copy()
        self.boxOn(13)
        self.assertEqual(np.flatnonzero(self.mask().any(axis=(1, 2))).tolist(), [11, 13])
        self.assertEqual(dice(self.mask()[11], first), 1.0)

    def test_the_first_click_on_a_painted_slice_refines_it(self):
        painted = np.zeros(self.mask().shape, np.uint8)
        painted[12, 70:110, 125:165] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(painted, self.segmentationNode, self.segmentId, self.volumeNode)
        self.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
        self.assertIsNotNone(self.effect.prompts.seedMask)
        self.effect.waitForIdle()
        self.assertTrue(self.mask()[12].any())

    def redView(self):
        """The Red view (axial) through the click voxel; `self.clickXy`: that voxel in view pixels."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None or layoutManager.sliceWidget("Red") is None:
            self.skipTest("needs Slicer's main window and its Red slice view")
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
        sliceWidget = layoutManager.sliceWidget("Red")
        slicer.util.setSliceViewerLayers(background=self.volumeNode, fit=True)
        clickRas = self.effect.sourceIjkToRas(CLICK_IJK)
        sliceWidget.sliceLogic().SetSliceOffset(clickRas[2])
        slicer.app.processEvents()
        xy = self.effect.rasToXy(clickRas, sliceWidget)
        self.clickXy = (int(xy[0]), int(xy[1]))
        return sliceWidget, sliceWidget.sliceView().interactor()

    def send(self, interactor, event, key=""):
        interactor.SetEventInformation(self.clickXy[0], self.clickXy[1], 0, 0, key[:1] if key else "\0", 0,
                                       key or None)
        interactor.InvokeEvent(event)
        slicer.app.processEvents()

    def test_a_double_click_in_a_view_is_two_clicks_and_the_layout_stays(self):
        sliceWidget, interactor = self.redView()
        layout = slicer.app.layoutManager().layout
        for event in (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonReleaseEvent,
                      vtk.vtkCommand.LeftButtonDoubleClickEvent, vtk.vtkCommand.LeftButtonReleaseEvent):
            self.send(interactor, event)
        self.effect.waitForIdle()
        self.assertEqual(len(self.effect.prompts.labels), 2)
        self.assertEqual(slicer.app.layoutManager().layout, layout)  # not maximized

    def test_keys_in_a_view_switch_polarity_and_clear_the_prompts(self):
        sliceWidget, interactor = self.redView()
        self.send(interactor, vtk.vtkCommand.KeyPressEvent, key="n")
        self.assertEqual(self.effect.polarity.positive, False)
        self.send(interactor, vtk.vtkCommand.LeftButtonPressEvent)
        self.send(interactor, vtk.vtkCommand.LeftButtonReleaseEvent)
        self.assertEqual(self.effect.prompts.labels, [0])
        self.effect.waitForIdle()
        self.send(interactor, vtk.vtkCommand.KeyPressEvent, key="c")
        self.assertIsNone(self.effect.prompts)
        self.send(interactor, vtk.vtkCommand.KeyPressEvent, key="n")
        self.assertEqual(self.effect.polarity.positive, True)
