"""The effect's prompts drawn in the views: positive clicks green, negative red, the box yellow.

Plain markups nodes (locked, hidden from the data tree, not saved with the scene), so they show
in every slice view and in 3D, follow panning and zooming, and cost no rendering code.

Two rules keep them out of the user's way. Slicer's Markups logic makes every markups node added
to the scene the "active place node" (vtkSlicerMarkupsLogic::OnMRMLSceneNodeAdded calls
SetActiveList, Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.cxx), which would send the
user's next "place point" into our hidden node. So: (1) nothing is created until there is a
prompt to draw (clearing or a source-volume change creates nothing; every registered effect hears
of source-volume changes, active or not: qMRMLSegmentEditorWidget.cxx,
notifyEffectsOfSourceVolumeNodeChange), and (2) when the nodes are created, the selection node's
active place node (ID and class) is put back as it was.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import slicer

POSITIVE_COLOR = (0.2, 0.9, 0.3)
NEGATIVE_COLOR = (0.95, 0.25, 0.2)
BOX_COLOR = (1.0, 0.85, 0.1)


@contextmanager
def activePlaceNodeKept(selectionNode: slicer.vtkMRMLSelectionNode | None):
    """Restore the selection node's active place node (ID and class) after the block."""
    if selectionNode is None:
        yield
        return
    className = selectionNode.GetActivePlaceNodeClassName()
    nodeId = selectionNode.GetActivePlaceNodeID()
    try:
        yield
    finally:
        if selectionNode.GetActivePlaceNodeClassName() != className:
            selectionNode.SetReferenceActivePlaceNodeClassName(className)
        if selectionNode.GetActivePlaceNodeID() != nodeId:
            selectionNode.SetReferenceActivePlaceNodeID(nodeId)


def sceneSelectionNode(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLSelectionNode | None:
    return scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")


class PromptMarkers:
    def __init__(self, scene: slicer.vtkMRMLScene | None = None):
        self.scene = scene
        self.positiveNode = None
        self.negativeNode = None
        self.boxNode = None

    def _scene(self) -> slicer.vtkMRMLScene:
        return self.scene if self.scene is not None else slicer.mrmlScene

    def _nodesPresent(self) -> bool:
        return self.positiveNode is not None and self._scene().IsNodePresent(self.positiveNode)

    def _ensureNodes(self) -> None:
        if self._nodesPresent():
            return
        scene = self._scene()
        with activePlaceNodeKept(sceneSelectionNode(scene)):
            self.positiveNode = self._createNode(scene, "vtkMRMLMarkupsFiducialNode", "SegMoTE positive clicks",
                                                 POSITIVE_COLOR)
            self.negativeNode = self._createNode(scene, "vtkMRMLMarkupsFiducialNode", "SegMoTE negative clicks",
                                                 NEGATIVE_COLOR)
            self.boxNode: slicer.vtkMRMLMarkupsClosedCurveNode = self._createNode(
                scene, "vtkMRMLMarkupsClosedCurveNode", "SegMoTE box", BOX_COLOR)
        self.boxNode.SetCurveTypeToLinear()

    @staticmethod
    def _createNode(scene: slicer.vtkMRMLScene, className: str, name: str, color) -> slicer.vtkMRMLMarkupsNode:
        node: slicer.vtkMRMLMarkupsNode = scene.AddNewNodeByClass(className, name)
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
        points = np.asarray(pointsRas, dtype=np.float64).reshape(-1, 3)
        positive = np.asarray(labels, dtype=bool).reshape(-1)
        box = np.zeros((0, 3)) if boxCornersRas is None else np.asarray(boxCornersRas, dtype=np.float64)
        if len(points) == 0 and len(box) == 0 and not self._nodesPresent():
            return  # nothing to draw: create no node (see the module docstring)
        self._ensureNodes()
        slicer.util.updateMarkupsControlPointsFromArray(self.positiveNode, points[positive], world=True)
        slicer.util.updateMarkupsControlPointsFromArray(self.negativeNode, points[~positive], world=True)
        slicer.util.updateMarkupsControlPointsFromArray(self.boxNode, box, world=True)

    def clear(self) -> None:
        self.show(np.zeros((0, 3)), np.zeros(0))

    def remove(self) -> None:
        """Remove the markers and their display nodes: removing a node leaves its display nodes in the
        scene (vtkMRMLScene::RemoveNode removes only the node), where they would pile up."""
        scene = self._scene()
        for node in (self.positiveNode, self.negativeNode, self.boxNode):
            if node is not None and scene.IsNodePresent(node):
                displayNodes = [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]
                scene.RemoveNode(node)
                for displayNode in displayNodes:
                    if displayNode is not None and scene.IsNodePresent(displayNode):
                        scene.RemoveNode(displayNode)
        self.positiveNode = self.negativeNode = self.boxNode = None
