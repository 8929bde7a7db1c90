"""SegMoTE Logic self-tests in Slicer: box, click, propagation, ROI, rotated parent transform.

Prompts are given in voxel coordinates of a SampleData volume and converted to world RAS by
SegMoTELib (the same way a user's clicks arrive); masks are compared with frozen references.
"""

from __future__ import annotations

import unittest

import numpy as np
import slicer
import vtk
from SegMoTETestSupport import BOX_IJK, CLICK_IJK, checkAgainstReference, dice, loadSampleVolume, segmentArray

import SegMoTEGlue  # noqa: F401
from SegMoTE import SegMoTELogic
from SegMoTEGlue.mrmlconvert import geometryOfNode


def worldPoints(volumeNode: slicer.vtkMRMLScalarVolumeNode, ijkPoints) -> np.ndarray:
    return geometryOfNode(volumeNode).ijk_to_ras_points(np.asarray(ijkPoints, dtype=np.float64))


class SegMoTELogicSelfTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        self.logic = SegMoTELogic()
        if not self.logic.dependencyStatus().ready:
            self.skipTest(self.logic.dependencyStatus().describe())
        self.volumeNode = loadSampleVolume()

    def segmentBox(self, volumeNode, propagate=False) -> tuple:
        segmentationNode = self.logic.createSegmentationNode(volumeNode)
        segmentId = self.logic.segmentWithBox(volumeNode, worldPoints(volumeNode, BOX_IJK), propagate=propagate,
                                              segmentationNode=segmentationNode)
        return segmentationNode, segmentId

    def test_box_on_one_slice(self):
        segmentationNode, segmentId = self.segmentBox(self.volumeNode)
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        slicesWithMask = np.flatnonzero(mask.any(axis=(1, 2)))
        self.assertEqual(slicesWithMask.tolist(), [BOX_IJK[0][2]])  # axial slice k of the box only
        (i0, j0, _), (i1, j1, _) = BOX_IJK
        self.assertFalse(mask[:, :, :i0].any() or mask[:, :, i1 + 1:].any())  # nothing outside the box
        self.assertFalse(mask[:, :j0, :].any() or mask[:, j1 + 1:, :].any())
        checkAgainstReference(self, "logic_box", mask)

    def test_click_on_one_slice(self):
        segmentId = self.logic.segmentWithPoints(self.volumeNode, worldPoints(self.volumeNode, [CLICK_IJK]))
        segmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertTrue(set(np.flatnonzero(mask.any(axis=(1, 2))).tolist()) <= {CLICK_IJK[2]})
        checkAgainstReference(self, "logic_click", mask)

    def test_box_propagated_to_3d(self):
        segmentationNode, segmentId = self.segmentBox(self.volumeNode, propagate=True)
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertGreater(int(mask.any(axis=(1, 2)).sum()), 1)
        checkAgainstReference(self, "logic_box_propagated", mask)

    def test_rotated_roi_gives_the_roi_extent_only(self):
        roiNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        center = worldPoints(self.volumeNode, [(128, 128, 65)])[0]
        roiNode.SetCenterWorld(center)
        roiNode.SetSize(120.0, 140.0, 30.0)
        rotation = vtk.vtkTransform()
        rotation.RotateWXYZ(15.0, 0.0, 0.0, 1.0)
        roiNode.SetAndObserveObjectToNodeMatrix(rotation.GetMatrix())
        segmentId = self.logic.segmentWithRoi(self.volumeNode, roiNode)
        segmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertTrue(mask.any())
        spacingK = self.volumeNode.GetSpacing()[2]
        self.assertLessEqual(int(mask.any(axis=(1, 2)).sum()), int(30.0 / spacingK) + 2)
        checkAgainstReference(self, "logic_rotated_roi", mask)

    def test_rotated_parent_transform_gives_the_same_voxels(self):
        _segmentationNode, _ = self.segmentBox(self.volumeNode)
        plain = segmentArray(_segmentationNode, _, self.volumeNode)

        transform = vtk.vtkTransform()
        transform.RotateWXYZ(20.0, 0.2, 0.3, 1.0)
        transform.Translate(15.0, -10.0, 5.0)
        transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        transformNode.SetMatrixTransformToParent(transform.GetMatrix())
        self.volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
        segmentationNode, segmentId = self.segmentBox(self.volumeNode)  # box corners follow the transform
        moved = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertGreaterEqual(dice(plain, moved), 0.98)
