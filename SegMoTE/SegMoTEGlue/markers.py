"""The effect's prompts drawn in the views: positive clicks green, negative red, the box yellow.

Plain markups nodes (locked, hidden from the data tree, not saved with the scene), so they show
in every slice view and in 3D, follow panning and zooming, and cost no rendering code.
"""

from __future__ import annotations

import numpy as np
import slicer

POSITIVE_COLOR = (0.2, 0.9, 0.3)
NEGATIVE_COLOR = (0.95, 0.25, 0.2)
BOX_COLOR = (1.0, 0.85, 0.1)


class PromptMarkers:
    def __init__(self):
        self.positiveNode = None
        self.negativeNode = None
        self.boxNode = None

    def _ensureNodes(self) -> None:
        if self.positiveNode is not None and slicer.mrmlScene.IsNodePresent(self.positiveNode):
            return
        self.positiveNode = self._createNode("vtkMRMLMarkupsFiducialNode", "SegMoTE positive clicks", POSITIVE_COLOR)
        self.negativeNode = self._createNode("vtkMRMLMarkupsFiducialNode", "SegMoTE negative clicks", NEGATIVE_COLOR)
        self.boxNode: slicer.vtkMRMLMarkupsClosedCurveNode = self._createNode(
            "vtkMRMLMarkupsClosedCurveNode", "SegMoTE box", BOX_COLOR)
        self.boxNode.SetCurveTypeToLinear()

    @staticmethod
    def _createNode(className: str, name: str, color) -> slicer.vtkMRMLMarkupsNode:
        node: slicer.vtkMRMLMarkupsNode = slicer.mrmlScene.AddNewNodeByClass(className, name)
        node.SetHideFromEditors(True)
        node.SetSaveWithScene(False)
        node.SetLocked(True)
        node.CreateDefaultDisplayNodes()
        displayNode = node.GetMarkupsDisplayNode()
        displayNode.SetSelectedColor(*color)
        displayNode.SetColor(*color)
        displayNode.SetActiveColor(*color)
        displayNode.SetPointLabelsVisibility(False)
        displayNode.SetPropertiesLabelVisibility(False)
        return node

    def show(self, pointsRas, labels, boxCornersRas=None) -> None:
        """Draw the clicks (N, 3) with labels (N,) and the box (4 rectangle corners, or None)."""
        self._ensureNodes()
        points = np.asarray(pointsRas, dtype=np.float64).reshape(-1, 3)
        positive = np.asarray(labels, dtype=bool).reshape(-1)
        slicer.util.updateMarkupsControlPointsFromArray(self.positiveNode, points[positive], world=True)
        slicer.util.updateMarkupsControlPointsFromArray(self.negativeNode, points[~positive], world=True)
        box = np.zeros((0, 3)) if boxCornersRas is None else np.asarray(boxCornersRas, dtype=np.float64)
        slicer.util.updateMarkupsControlPointsFromArray(self.boxNode, box, world=True)

    def clear(self) -> None:
        self.show(np.zeros((0, 3)), np.zeros(0))

    def remove(self) -> None:
        for node in (self.positiveNode, self.negativeNode, self.boxNode):
            if node is not None and slicer.mrmlScene.IsNodePresent(node):
                slicer.mrmlScene.RemoveNode(node)
        self.positiveNode = self.negativeNode = self.boxNode = None
