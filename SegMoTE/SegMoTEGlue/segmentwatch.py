"""What the effect must notice while it is active: another segment selected, or the segment changed
by something else than its own prompts (Undo, Redo, another effect, a script).

- A segment switch: the prompt markers must show the selected segment's prompts, not the previous
  segment's. The Segment Editor tells effects of no such change (qMRMLSegmentEditorWidget.cxx calls
  updateGUIFromMRML only on EffectParameterModified), so the editor node is observed.
- A change from elsewhere: the prompts and logits of a slice describe the mask the effect wrote; after
  an Undo they describe a mask that is gone, and the next click would bring it back. Undo restores the
  segments from the segmentation history and the segmentation emits SegmentModified
  (vtkSegmentationHistory::RestoreState, vtkSegmentation.cxx); painting emits
  SourceRepresentationModified. The effect's own writes are wrapped in `ownWrite()` and ignored; any
  other change makes `onSegmentEdited` run, and the effect compares each prompt set's
  `labelmapToken` (the segment labelmap's modification time) with the one recorded after its write.
- Reading a file into the segmentation node replaces its vtkSegmentation object
  (vtkMRMLSegmentationStorageNode.cxx calls SetAndObserveSegmentation, which emits
  SegmentationChangedEvent): the new object is observed instead, and observers are removed from the
  object they were added to (VTK numbers observer tags per object).

VTK observers only, no Qt: tested on Slicer's real classes.
"""

from __future__ import annotations

from contextlib import contextmanager

import slicer
import vtk


def labelmapToken(segmentationNode: slicer.vtkMRMLSegmentationNode | None, segmentId: str | None) -> int | None:
    """The modification time of the segment's binary labelmap (None when there is none): it grows
    whenever the voxels change or are replaced, and only then (a new colour or name leaves it)."""
    if segmentationNode is None or not segmentId:
        return None
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is None:
        return None
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    return None if labelmap is None else labelmap.GetMTime()


class SegmentWatch:
    def __init__(self, onSelectionChanged, onSegmentEdited):
        """`onSelectionChanged()` after another segment or segmentation is selected;
        `onSegmentEdited(segmentationNode)` after a change to its segments the effect did not make."""
        self.onSelectionChanged = onSelectionChanged
        self.onSegmentEdited = onSegmentEdited
        self.editorNode = None
        self.segmentationNode = None
        self.selection = (None, None)
        self._editorTag = None
        self._observed: list[tuple] = []  # (VTK object, observer tag): the segmentation node's and its segmentation's
        self._writing = False

    def start(self, editorNode: slicer.vtkMRMLSegmentEditorNode | None) -> None:
        self.stop()
        if editorNode is None:
            return
        self.editorNode = editorNode
        self._editorTag = editorNode.AddObserver(vtk.vtkCommand.ModifiedEvent, self._editorModified)
        self.selection = self._currentSelection()
        self._observeSegmentation(editorNode.GetSegmentationNode())

    def stop(self) -> None:
        if self.editorNode is not None and self._editorTag is not None:
            self.editorNode.RemoveObserver(self._editorTag)
        self._observeSegmentation(None)
        self.editorNode, self._editorTag, self.selection = None, None, (None, None)

    @contextmanager
    def ownWrite(self):
        """The effect's own write: the segment changes, and that is no reason to forget its prompts."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    # --- observers ---------------------------------------------------------------------------------
    def _currentSelection(self) -> tuple:
        segmentationNode = self.editorNode.GetSegmentationNode()
        return (segmentationNode.GetID() if segmentationNode is not None else None,
                self.editorNode.GetSelectedSegmentID())

    def _editorModified(self, caller, event) -> None:
        selection = self._currentSelection()
        if selection == self.selection:
            return
        self.selection = selection
        self._observeSegmentation(self.editorNode.GetSegmentationNode())
        self.onSelectionChanged()

    def _observeSegmentation(self, segmentationNode) -> None:
        for observed, tag in self._observed:
            observed.RemoveObserver(tag)
        self.segmentationNode, self._observed = segmentationNode, []
        if segmentationNode is None:
            return
        self._observed.append((segmentationNode, segmentationNode.AddObserver(
            slicer.vtkMRMLSegmentationNode.SegmentationChangedEvent, self._segmentationReplaced)))
        segmentation = segmentationNode.GetSegmentation()
        if segmentation is None:
            return
        for event in (slicer.vtkSegmentation.SegmentModified, slicer.vtkSegmentation.SourceRepresentationModified,
                      slicer.vtkSegmentation.SegmentRemoved):
            self._observed.append((segmentation, segmentation.AddObserver(event, self._segmentationModified)))

    def _segmentationReplaced(self, caller, event) -> None:
        """The node holds another vtkSegmentation (data read into it): observe that one; its segments
        are new to the prompts."""
        self._observeSegmentation(self.segmentationNode)
        self._segmentationModified(caller, event)

    def _segmentationModified(self, caller, event) -> None:
        if not self._writing and self.segmentationNode is not None:
            self.onSegmentEdited(self.segmentationNode)
