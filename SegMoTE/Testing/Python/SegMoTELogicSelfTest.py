"""SegMoTE Logic self-tests in Slicer: box, click, propagation, rotated ROI, rotated parent transform.

Prompts are given in voxel coordinates of the project's CT phantom, loaded as a volume node, and
converted to world RAS (the way a user's clicks arrive); the masks the Logic writes into segments
are compared with the engine's own masks on the same voxels and prompts (References/, written by
scripts/make_selftest_references.py without Slicer).
"""

from __future__ import annotations

import unittest

import numpy as np
import slicer
import vtk
from SegMoTESelfTestCase import (
    BOX_IJK,
    CLICK_IJK,
    ROI_CENTER_IJK,
    ROI_SIZE_MM,
    dice,
    roiObjectToWorld,
)
from SegMoTETestSupport import checkAgainstReference, loadPhantomVolume, segmentArray, selfTestSettings

import SegMoTEGlue  # noqa: F401
from SegMoTE import SegMoTELogic
from SegMoTEGlue.mrmlconvert import geometryOfNode


def worldPoints(volumeNode: slicer.vtkMRMLScalarVolumeNode, ijkPoints) -> np.ndarray:
    return geometryOfNode(volumeNode).ijk_to_ras_points(np.asarray(ijkPoints, dtype=np.float64))


class SegMoTELogicSelfTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        self.logic = SegMoTELogic(selfTestSettings())
        if not self.logic.dependencyStatus().ready:
            self.skipTest(self.logic.dependencyStatus().describe())
        self.volumeNode = loadPhantomVolume()

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
        checkAgainstReference(self, "box", mask)

    def test_click_on_one_slice(self):
        segmentId = self.logic.segmentWithPoints(self.volumeNode, worldPoints(self.volumeNode, [CLICK_IJK]))
        segmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertTrue(set(np.flatnonzero(mask.any(axis=(1, 2))).tolist()) <= {CLICK_IJK[2]})
        checkAgainstReference(self, "click", mask)

    def test_box_propagated_to_3d(self):
        segmentationNode, segmentId = self.segmentBox(self.volumeNode, propagate=True)
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertGreater(int(mask.any(axis=(1, 2)).sum()), 1)
        checkAgainstReference(self, "box_propagated", mask)

    def test_rotated_roi_gives_the_roi_extent_only(self):
        roiNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        objectToWorld = roiObjectToWorld(worldPoints(self.volumeNode, [ROI_CENTER_IJK])[0])
        roiNode.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(objectToWorld))
        roiNode.SetSize(*ROI_SIZE_MM)
        segmentId = self.logic.segmentWithRoi(self.volumeNode, roiNode)  # raised TypeError before (defect 3)
        segmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        mask = segmentArray(segmentationNode, segmentId, self.volumeNode)
        self.assertTrue(mask.any())
        spacingK = self.volumeNode.GetSpacing()[2]
        self.assertLessEqual(int(mask.any(axis=(1, 2)).sum()), int(ROI_SIZE_MM[2] / spacingK) + 2)
        checkAgainstReference(self, "rotated_roi", mask)

    def segmentVoxelRectangle(self) -> np.ndarray:
        """The box as the 4 voxel corners of its rectangle (given as 8): the same voxels whatever the transform."""
        (i0, j0, k), (i1, j1, _) = BOX_IJK
        rectangle = worldPoints(self.volumeNode, [(i0, j0, k), (i1, j0, k), (i1, j1, k), (i0, j1, k)])
        segmentationNode = self.logic.createSegmentationNode(self.volumeNode)
        segmentId = self.logic.segmentWithBox(self.volumeNode, np.vstack([rectangle, rectangle]),
                                              segmentationNode=segmentationNode)
        return segmentArray(segmentationNode, segmentId, self.volumeNode)

    def test_rotated_parent_transform_gives_the_same_voxels(self):
        plain = self.segmentVoxelRectangle()

        transform = vtk.vtkTransform()
        transform.RotateWXYZ(20.0, 0.2, 0.3, 1.0)
        transform.Translate(15.0, -10.0, 5.0)
        transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        transformNode.SetMatrixTransformToParent(transform.GetMatrix())
        self.volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
        moved = self.segmentVoxelRectangle()  # the corners follow the transform into world RAS
        self.assertTrue(plain.any())
        self.assertGreaterEqual(dice(plain, moved), 0.98)
