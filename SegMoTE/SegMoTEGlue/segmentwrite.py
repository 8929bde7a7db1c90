"""Writing a result into the selected segment on a slab of slices, keeping every voxel outside it.

Slicer's own "Set" does not do this: `modifySelectedSegmentByLabelmap(modifier, ModificationModeSet,
extent)` first clears the whole segment (a `MODE_MERGE_MIN` with the inverted segment and no extent,
line ~1922) and only then adds the modifier inside `extent` (vtkSlicerSegmentEditorLogic::
ModifySegmentByLabelmap, Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentEditorLogic.cxx, Slicer
5.10.0, unchanged in the 5.13 that CI tests on; the same code was in qSlicerSegmentEditorAbstractEffect.cxx
up to 5.8). A click on slice 41 would delete slice 40.

So the result is written, under one undo state, as Set would write it on the slab alone: inside the
editable area (mask mode, editable intensity range) the segment becomes the result and other segments
give way as "overwrite other segments" says; outside the editable area the segment's voxels stay
(Set adds them to the modifier, line ~1825); nothing changes outside the slab. Two ways:
- "Remove" the slab, then "Add" the result, both with the slab's extent (masked, overwrite-aware as
  any effect). Only the slab is touched.
- With an editable area "inside" segments, Remove then Add is wrong: each modify call computes the
  area anew from the segments as they are then (UpdateMaskLabelmap, line ~1207, called from line
  ~1736), and an "inside all / visible segments" or "inside segment <selected>" area holds the
  selected segment itself, so the Add would be masked by an area the Remove just shrank (a refinement
  would empty the slab); with "inside one segment" that is another one, "Remove" would also give the
  removed voxels to that segment (Slicer's split-by-painting, line ~2063). Then "Set" with the slab's
  extent writes the result and what the segment had outside the slab is added back with
  `bypassMasking` (no mask applies to it; bypassMasking empties the list of segments to overwrite,
  line ~1887), as Slicer's Smoothing effect re-adds the part of a segment outside its brush. This
  touches the whole segment, so it is slower.

`editor` is the effect's `scriptedEffect` in Slicer (qSlicerSegmentEditorAbstractEffect's
parameterSetNode, defaultModifierLabelmap, selectedSegmentLabelmap, saveStateForUndo,
modifySelectedSegmentByLabelmap and its ModificationMode values), or in tests the same calls on
Slicer's real segment-editor logic. No Qt here.
"""

from __future__ import annotations

import numpy as np
import slicer

from SegMoTELib.errors import InputError

from .mrmlconvert import orientedImageArray, sliceExtent

GEOMETRY_MISMATCH = ("The segmentation's geometry differs from the source volume's; set it with "
                     "'Specify geometry' (source volume) and try again.")


def slabIndex(image: slicer.vtkOrientedImageData, axis: int, first: int, last: int, extent=None) -> tuple:
    """Numpy index [k, j, i] of slices first..last (counted from `image`'s own first slice) along voxel
    axis `axis` of an image of `extent` (default: `image`'s); None when the slab lies outside it.

    Integer bookkeeping only: both images share one IJK frame (Segment Editor images of one
    reference geometry), their extents may start at different indices.
    """
    extent = list(extent if extent is not None else image.GetExtent())
    start = image.GetExtent()[2 * axis] + first - extent[2 * axis]
    stop = image.GetExtent()[2 * axis] + last - extent[2 * axis] + 1
    size = extent[2 * axis + 1] - extent[2 * axis] + 1
    start, stop = max(start, 0), min(stop, size)
    if start >= stop:
        return None
    index = [slice(None)] * 3
    index[2 - axis] = slice(start, stop)  # voxel axis i, j, k is numpy axis 2, 1, 0
    return tuple(index)


def replaceSegmentOnSlab(editor, labelmap, image: slicer.vtkOrientedImageData, axis: int, first: int,
                         last: int) -> None:
    """Replace the selected segment on slices first..last along `axis` by `labelmap` [k, j, i]
    (laid out like `image`, the Segment Editor's source volume image); one undo state.

    Raises InputError, before any undo state is saved, when the segmentation's geometry is not the
    source volume's (the labelmap would land on other voxels).
    """
    modifier = editor.defaultModifierLabelmap()
    if modifier is None or tuple(modifier.GetExtent()) != tuple(image.GetExtent()):
        raise InputError(GEOMETRY_MISMATCH)
    extent = sliceExtent(modifier, axis, first, last)
    result = _slabImage(modifier, extent, labelmap[slabIndex(modifier, axis, first, last)])
    if _editableAreaInsideSegments(editor.parameterSetNode()):
        outsideSlab = _segmentOutsideSlab(editor, modifier, axis, first, last)
        editor.saveStateForUndo()
        editor.modifySelectedSegmentByLabelmap(result, editor.ModificationModeSet, extent)
        if outsideSlab is not None:
            editor.modifySelectedSegmentByLabelmap(outsideSlab, editor.ModificationModeAdd, True)
        return
    editor.saveStateForUndo()
    editor.modifySelectedSegmentByLabelmap(_slabImage(modifier, extent, 1), editor.ModificationModeRemove, extent)
    editor.modifySelectedSegmentByLabelmap(result, editor.ModificationModeAdd, extent)


def _editableAreaInsideSegments(editorNode) -> bool:
    """Whether the editable area is "inside" segments: it may hold the selected segment (so a Remove
    would shrink the area of the Add that follows), or Remove gives to the mask segment
    (vtkMRMLSegmentationNode::GenerateEditMask and vtkSlicerSegmentEditorLogic, 5.10). "Outside" areas
    leave the selected segment out (GenerateEditMask excludes the edited segment), so Remove then Add
    keeps them."""
    segmentationNode = slicer.vtkMRMLSegmentationNode
    return editorNode.GetMaskMode() in (segmentationNode.EditAllowedInsideAllSegments,
                                        segmentationNode.EditAllowedInsideVisibleSegments,
                                        segmentationNode.EditAllowedInsideSingleSegment)


def _slabImage(modifier: slicer.vtkOrientedImageData, extent, voxels) -> slicer.vtkOrientedImageData:
    """A binary image of the modifier's geometry covering only `extent`, holding `voxels` (an array of
    the slab's shape, or one value): Slicer's editing costs follow the modifier's extent."""
    slab = slicer.vtkOrientedImageData()
    slab.SetExtent(extent)
    slab.SetSpacing(modifier.GetSpacing())
    slab.SetOrigin(modifier.GetOrigin())
    slab.CopyDirections(modifier)
    slab.AllocateScalars(modifier.GetScalarType(), 1)
    orientedImageArray(slab)[:] = np.asarray(voxels, dtype=np.uint8)
    slab.Modified()
    return slab


def _segmentOutsideSlab(editor, modifier, axis: int, first: int, last: int):
    """A copy of the selected segment (binary, reference geometry) with the slab cleared; None if empty."""
    segment = editor.selectedSegmentLabelmap()
    if segment is None:
        return None
    extent = segment.GetExtent()
    if extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]:
        return None  # an empty segment
    kept = slicer.vtkOrientedImageData()
    kept.DeepCopy(segment)
    voxels = orientedImageArray(kept)
    slab = slabIndex(modifier, axis, first, last, extent=kept.GetExtent())
    if slab is not None:
        voxels[slab] = 0
    if not voxels.any():
        return None
    kept.Modified()
    return kept
