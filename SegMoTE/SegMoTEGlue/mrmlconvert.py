"""MRML nodes ⇄ what SegMoTELib takes: voxel arrays [k, j, i], 4x4 matrices, RAS points.

Everything is expressed in Slicer's world (RAS, all parent transforms applied): a volume's
IJK→RAS matrix is composed with its parent transform by VTK, markups are read with their
`...World` getters, and clicks come from the slice views in world coordinates. The geometry
itself (slices, rounding, boxes, ROI corners) is SegMoTELib's.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.intensity import scalar_voxels
from SegMoTELib.volume import Volume


def localToWorldMatrix(node: slicer.vtkMRMLTransformableNode) -> vtk.vtkMatrix4x4:
    """The node's parent transform chain as a 4x4 matrix (identity without a parent)."""
    matrix = vtk.vtkMatrix4x4()
    parent = node.GetParentTransformNode()
    if parent is None:
        return matrix
    if not parent.IsTransformToWorldLinear():
        raise InputError(
            f"{node.GetName()}: the chain of transforms from it to the world is non-linear "
            f"({_nonLinearLink(parent)}); SegMoTE needs a linear chain. Harden the non-linear transform "
            f"(Data module: right-click the transform > Harden transform) and try again.")
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(parent, None, matrix)
    return matrix


def _nonLinearLink(transformNode: slicer.vtkMRMLTransformNode) -> str:
    """Which transform of the chain (the parent or one above it) is the warp or grid."""
    names = []
    while transformNode is not None:
        names.append(transformNode.GetName())
        if not transformNode.IsLinear():
            above = "" if len(names) == 1 else f", above its parent '{names[0]}'"
            return f"'{transformNode.GetName()}' is a warp or grid transform{above}"
        transformNode = transformNode.GetParentTransformNode()
    return f"'{names[0]}' is not linear"


def ijkToWorldMatrix(volumeNode: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """IJK → world RAS (4, 4): GetIJKToRASMatrix composed with the parent transform (by VTK)."""
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    ijkToWorld = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(localToWorldMatrix(volumeNode), ijkToRas, ijkToWorld)
    return slicer.util.arrayFromVTKMatrix(ijkToWorld)


def volumeFromNode(volumeNode: slicer.vtkMRMLScalarVolumeNode, modality: str | None = None) -> Volume:
    """A SegMoTELib `Volume` (a view of the voxels, geometry in world RAS) of a volume node; a colour
    (RGB) volume becomes its luminance (SegMoTELib's `scalar_voxels`), as in the effect."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise InputError("volume: no volume is selected, or the selected volume has no image data")
    voxels = scalar_voxels(slicer.util.arrayFromVolume(volumeNode))
    # A view, not a copy (issue 19, item 5: an upload holds at most 1.5x the volume): only the main
    # thread reads it, slab by slab as the upload goes (no worker thread any more), and numpy keeps
    # the VTK array alive; an edit of the node changes its MTime, so the engine's key, and a new
    # session is made from the new voxels.
    return Volume.from_ijk_to_ras(voxels, ijkToWorldMatrix(volumeNode), modality=modality)


def volumeSessionKey(volumeNode: slicer.vtkMRMLVolumeNode, modality: str | None) -> tuple:
    """What names one uploaded volume: the node, its voxels' modification time, its geometry in world
    RAS (IJK-to-world matrix: origin, spacing, directions and every parent transform) and the modality.
    Moving the volume or its transform changes the key, so prompts never map through an old geometry."""
    return (volumeNode.GetID(), volumeNode.GetImageData().GetMTime(), modality,
            tuple(ijkToWorldMatrix(volumeNode).ravel().tolist()))


def geometryOfNode(volumeNode: slicer.vtkMRMLVolumeNode) -> Volume:
    """The node's world geometry without its voxels (a 1-voxel Volume), for coordinate mapping."""
    return Volume.from_ijk_to_ras(np.zeros((1, 1, 1), dtype=np.uint8), ijkToWorldMatrix(volumeNode))


def orientedImageToWorldMatrix(image: slicer.vtkOrientedImageData,
                               segmentationNode: slicer.vtkMRMLSegmentationNode) -> np.ndarray:
    """(4, 4) from array indices [k, j, i] reversed (i, j, k from 0) of a Segment Editor image (in the
    segmentation's geometry) to world RAS: the image's extent offset, its image-to-segmentation matrix
    and the segmentation's parent transforms, composed by VTK."""
    extent = image.GetExtent()
    imageToLocal = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(imageToLocal)
    transform = vtk.vtkTransform()
    transform.Concatenate(localToWorldMatrix(segmentationNode))
    transform.Concatenate(imageToLocal)
    transform.Translate(extent[0], extent[2], extent[4])
    return slicer.util.arrayFromVTKMatrix(transform.GetMatrix())


def orientedImageSessionKey(image: slicer.vtkOrientedImageData, segmentationNode: slicer.vtkMRMLSegmentationNode,
                            sourceVolumeNode: slicer.vtkMRMLVolumeNode, modality: str | None) -> tuple:
    """What names the effect's uploaded volume (as `volumeSessionKey` for the Logic): the nodes, the
    voxels' modification times, the modality and the image-to-world geometry, parent transforms
    included, so a moved volume or segmentation is a new session, never a stale mapping."""
    if image is None or image.IsEmpty():
        raise InputError("source volume: the Segment Editor has no source volume image; select a source volume")
    return (segmentationNode.GetID(), sourceVolumeNode.GetID(), image.GetMTime(), sourceVolumeNode.GetImageData().GetMTime(),
            modality, tuple(orientedImageToWorldMatrix(image, segmentationNode).ravel().tolist()))


def orientedImageToVolume(image: slicer.vtkOrientedImageData, segmentationNode: slicer.vtkMRMLSegmentationNode,
                          sourceVolumeNode: slicer.vtkMRMLVolumeNode | None = None) -> Volume:
    """A Segment Editor image (in the segmentation's geometry) as a `Volume` in world RAS.

    The image's extent may not start at 0: array index 0 is extent[0, 2, 4], so the IJK→world
    matrix gets that offset (`orientedImageToWorldMatrix`). A colour source volume becomes its
    luminance, read from `sourceVolumeNode`: the Segment Editor's own source image of a colour volume
    holds only its first (red) component (vtkSlicerSegmentEditorLogic::UpdateAlignedSourceVolume,
    vtkImageExtractComponents, Slicer 5.10).
    """
    if image is None or image.IsEmpty():
        raise InputError("source volume: the Segment Editor has no source volume image; select a source volume")
    voxels = orientedImageArray(image)
    sourceImage = sourceVolumeNode.GetImageData() if sourceVolumeNode is not None else None
    if sourceImage is not None and sourceImage.GetNumberOfScalarComponents() > 1:
        if tuple(sourceImage.GetDimensions()) != tuple(image.GetDimensions()):
            raise InputError(
                f"source volume: '{sourceVolumeNode.GetName()}' is a colour volume and the segmentation's "
                f"geometry differs from it; set the geometry from the source volume ('Specify geometry') "
                f"or convert the volume to grey first (Vector to Scalar Volume module)")
        voxels = slicer.util.arrayFromVolume(sourceVolumeNode)
    return Volume.from_ijk_to_ras(scalar_voxels(voxels),  # a view for a scalar volume: see volumeFromNode
                                  orientedImageToWorldMatrix(image, segmentationNode))


def orientedImageArray(image: slicer.vtkOrientedImageData) -> np.ndarray:
    """A writable view [k, j, i] (or [k, j, i, c] for c > 1 components) of an image's voxels (VTK's memory)."""
    dimensions = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    components = image.GetNumberOfScalarComponents()
    shape = (dimensions[2], dimensions[1], dimensions[0]) + ((components,) if components > 1 else ())
    return scalars.reshape(shape)


def sliceExtent(image: slicer.vtkOrientedImageData, axis: int, first: int, last: int) -> list[int]:
    """The image extent restricted to slices first..last (array indices) along voxel axis `axis`.

    Integer bookkeeping for `modifySelectedSegmentByLabelmap(..., extent)`, which then replaces the
    segment only on those slices.
    """
    extent = list(image.GetExtent())
    start = extent[2 * axis]
    extent[2 * axis] = start + first
    extent[2 * axis + 1] = start + last
    return extent


def controlPointsWorld(markupsNode: slicer.vtkMRMLMarkupsNode) -> np.ndarray:
    """World RAS positions (N, 3) of the node's placed control points (status PositionDefined).

    `slicer.util.arrayFromMarkupsControlPoints` returns every control point, the unplaced and the
    skipped ones too (their position is meaningless), which would reach the model as clicks.
    """
    if markupsNode is None or markupsNode.GetNumberOfDefinedControlPoints() == 0:
        raise InputError("points: the markups node has no placed control points")
    positions = slicer.util.arrayFromMarkupsControlPoints(markupsNode, world=True)
    defined = [index for index in range(markupsNode.GetNumberOfControlPoints())
               if markupsNode.GetNthControlPointPositionStatus(index) == markupsNode.PositionDefined]
    return positions[defined]


def roiCornersWorld(roiNode: slicer.vtkMRMLMarkupsROINode) -> np.ndarray:
    """The 8 corners (8, 3) of a (possibly rotated) ROI in world RAS.

    `GetBounds` would be axis-aligned and ignore rotation; the corners come from the ROI's
    object-to-world matrix and its size instead. `GetObjectToWorldMatrix()` takes no argument and
    returns the node's own matrix (vtkMRMLMarkupsROINode.h, Slicer 5.6-5.10): it is copied, so
    the worker never reads a matrix the user is moving. `GetSize()` returns a tuple from Python: its
    array forms are excluded from wrapping (vtkGetVector3Macro, VTK's vtkSetGet.h).
    """
    if roiNode is None:
        raise InputError("roi: no ROI node given")
    objectToWorld = vtk.vtkMatrix4x4()
    objectToWorld.DeepCopy(roiNode.GetObjectToWorldMatrix())
    size = [float(value) for value in roiNode.GetSize()]
    return geometry.roi_corners(slicer.util.arrayFromVTKMatrix(objectToWorld), size)


def sliceNormalWorld(sliceNode: slicer.vtkMRMLSliceNode) -> list[float]:
    """The slice view's normal in world RAS: the third column of SliceToRAS."""
    sliceToRas = sliceNode.GetSliceToRAS()
    return [sliceToRas.GetElement(row, 2) for row in range(3)]


def writeLabelmapToSegment(labelmap: np.ndarray, segmentationNode: slicer.vtkMRMLSegmentationNode,
                           segmentId: str, volumeNode: slicer.vtkMRMLVolumeNode) -> None:
    """Replace a segment by a labelmap [k, j, i] laid out like `volumeNode`'s voxels."""
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        np.asarray(labelmap, dtype=np.uint8), segmentationNode, segmentId, volumeNode)
