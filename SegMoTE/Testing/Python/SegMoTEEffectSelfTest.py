"""The "SegMoTE" Segment Editor effect in Slicer: prompt API with voxel coordinates, undo.

The effect runs its model work on the worker thread; `waitForIdle()` processes Qt events until
the results are written back through modifySelectedSegmentByLabelmap().
"""

from __future__ import annotations

import unittest

import numpy as np
import slicer
from SegMoTETestSupport import BOX_IJK, CLICK_IJK, checkAgainstReference, dice, loadSampleVolume, segmentArray

import SegMoTEGlue  # noqa: F401
from SegMoTE import SegMoTELogic
from SegMoTEGlue.mrmlconvert import geometryOfNode


class SegMoTEEffectSelfTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        if not SegMoTELogic().dependencyStatus().ready:
            self.skipTest(SegMoTELogic().dependencyStatus().describe())
        self.volumeNode = loadSampleVolume()
        self.segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        self.segmentId = self.segmentationNode.GetSegmentation().AddEmptySegment("", "effect")
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

    def mask(self) -> np.ndarray:
        return segmentArray(self.segmentationNode, self.segmentId, self.volumeNode)

    def test_box_matches_the_logic(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        effectMask = self.mask()
        self.assertEqual(np.flatnonzero(effectMask.any(axis=(1, 2))).tolist(), [BOX_IJK[0][2]])
        checkAgainstReference(self, "effect_box", effectMask)

        logic = SegMoTELogic()
        corners = geometryOfNode(self.volumeNode).ijk_to_ras_points(np.asarray(BOX_IJK, dtype=np.float64))
        logicSegmentation = logic.createSegmentationNode(self.volumeNode)
        logicId = logic.segmentWithBox(self.volumeNode, corners, segmentationNode=logicSegmentation)
        self.assertGreaterEqual(dice(effectMask, segmentArray(logicSegmentation, logicId, self.volumeNode)), 0.99)

    def test_click_refines_the_box_and_undo_restores(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        boxMask = self.mask()
        self.effect.addPointPromptIjk(CLICK_IJK, positive=False, orientation="axial")
        self.effect.waitForIdle()
        refined = self.mask()
        self.assertTrue(boxMask.any())
        self.assertFalse(refined[CLICK_IJK[2], CLICK_IJK[1], CLICK_IJK[0]])  # a negative click is background
        checkAgainstReference(self, "effect_box_negative_click", refined)
        self.editor.undo()
        self.assertEqual(dice(self.mask(), boxMask), 1.0)

    def test_propagation_extends_beyond_the_slice(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        self.effect.onPropagate()
        self.effect.waitForIdle()
        mask = self.mask()
        self.assertGreater(int(mask.any(axis=(1, 2)).sum()), 1)
        checkAgainstReference(self, "effect_propagated", mask)

    def test_clear_prompts_keeps_the_mask(self):
        self.effect.setBoxPromptIjk(BOX_IJK[0], BOX_IJK[1], orientation="axial")
        self.effect.waitForIdle()
        before = self.mask()
        self.effect.clearPrompts()
        self.assertIsNone(self.effect.prompts)
        self.assertEqual(dice(self.mask(), before), 1.0)
