"""The selected segment's current slice, as the seed of the first prompt on that slice.

A user who prompts on a slice where the segment already has voxels (painted, thresholded, loaded,
made by another tool) wants to correct that mask, not replace it by a fresh one: the slice goes to
the engine as `seed_mask` (SegMoTELib turns it into the model's dense prompt). No Qt here.
"""

from __future__ import annotations

import numpy as np
import slicer

from SegMoTELib import geometry

from .mrmlconvert import orientedImageArray


def segmentSliceMask(editor, image: slicer.vtkOrientedImageData, volume, ref) -> np.ndarray | None:
    """bool (H, W): the selected segment on slice `ref` of `volume` (the Volume of `image`, the
    Segment Editor's source image) in display orientation; None when the segment has no voxel there.

    `editor.selectedSegmentLabelmap()` is the segment in the editor's reference geometry, the source
    image's (qSlicerSegmentEditorAbstractEffect, vtkSlicerSegmentEditorLogic::UpdateSelectedSegmentLabelmap).
    """
    labelmap = editor.selectedSegmentLabelmap()
    if labelmap is None or tuple(labelmap.GetExtent()) != tuple(image.GetExtent()):
        return None  # an empty segment (its extent is empty), or not in the source image's layout
    mask2d = geometry.extract_slice(volume.with_array(orientedImageArray(labelmap)), ref) > 0
    return mask2d if mask2d.any() else None
