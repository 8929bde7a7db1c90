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
from SegMoTELib.volume import Volume


def localToWorldMatrix(node: slicer.vtkMRMLTransformableNode) -> vtk.vtkMatrix4x4:
    """The node's parent transform chain as a 4x4 matrix (identity without a parent)."""
    matrix = vtk.vtkMatrix4x4()
    parent = node.GetParentTransformNode()
    if parent is None:
        return matrix
    if not parent.IsTransformToWorldLinear():
        raise InputError(
            f"{node.GetName()}: its parent transform '{parent.GetName()}' is not linear (a warp or a "
            f"grid transform); SegMoTE needs a linear transform. Harden the transform on the volume "
            f"(Data module: right-click the transform > Harden transform) and try again.")
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(parent, None, matrix)
    return matrix


def ijkToWorldMatrix(volumeNode: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """IJK → world RAS (4, 4): GetIJKToRASMatrix composed with the parent transform (by VTK)."""
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    ijkToWorld = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(localToWorldMatrix(volumeNode), ijkToRas, ijkToWorld)
    return slicer.util.arrayFromVTKMatrix(ijkToWorld)


def volumeFromNode(volumeNode: slicer.vtkMRMLScalarVolumeNode, modality: str | None = None) -> Volume:
    """A SegMoTELib `Volume` (a view of the voxels, geometry in world RAS) of a scalar volume node."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise InputError("volume: no volume is selected, or the selected volume has no image data")
    voxels = slicer.util.arrayFromVolume(volumeNode)
    # A view, not a copy (issue 19, item 5: an upload holds at most 1.5x the volume): only the main
    # thread reads it, slab by slab as the upload goes (no worker thread any more), and numpy keeps
    # the VTK array alive; an edit of the node changes its MTime, so the engine's key, and a new
    # session is made from the new voxels.
    return Volume.from_ijk_to_ras(voxels, ijkToWorldMatrix(volumeNode), modality=modality)


def geometryOfNode(volumeNode: slicer.vtkMRMLVolumeNode) -> Volume:
    """The node's world geometry without its voxels (a 1-voxel Volume), for coordinate mapping."""
    return Volume.from_ijk_to_ras(np.zeros((1, 1, 1), dtype=np.uint8), ijkToWorldMatrix(volumeNode))


def orientedImageToVolume(image: slicer.vtkOrientedImageData,
                          segmentationNode: slicer.vtkMRMLSegmentationNode) -> Volume:
    """A Segment Editor image (in the segmentation's geometry) as a `Volume` in world RAS.

    The image's extent may not start at 0: array index 0 is extent[0, 2, 4], so the IJK→world
    matrix gets that offset, composed by VTK with the image-to-segmentation and the
    segmentation-to-world transforms.
    """
    if image is None or image.IsEmpty():
        raise InputError("source volume: the Segment Editor has no source volume image; select a source volume")
    extent = image.GetExtent()
    imageToLocal = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(imageToLocal)
    transform = vtk.vtkTransform()
    transform.Concatenate(localToWorldMatrix(segmentationNode))
    transform.Concatenate(imageToLocal)
    transform.Translate(extent[0], extent[2], extent[4])
    arrayToWorld = slicer.util.arrayFromVTKMatrix(transform.GetMatrix())
    return Volume.from_ijk_to_ras(orientedImageArray(image), arrayToWorld)  # a view: see volumeFromNode


def orientedImageArray(image: slicer.vtkOrientedImageData) -> np.ndarray:
    """A writable view [k, j, i] of a single-component image's voxels (shares VTK's memory)."""
    dimensions = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return scalars.reshape(dimensions[2], dimensions[1], dimensions[0])


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
    """World RAS positions (N, 3) of the node's defined control points."""
    if markupsNode is None or markupsNode.GetNumberOfDefinedControlPoints() == 0:
        raise InputError("points: the markups node has no placed control points")
    return slicer.util.arrayFromMarkupsControlPoints(markupsNode, world=True)


def roiCornersWorld(roiNode: slicer.vtkMRMLMarkupsROINode) -> np.ndarray:
    """The 8 corners (8, 3) of a (possibly rotated) ROI in world RAS.

    `GetBounds` would be axis-aligned and ignore rotation; the corners come from the ROI's
    object-to-world matrix and its size instead. `GetObjectToWorldMatrix()` takes no argument and
    returns the node's own matrix (vtkMRMLMarkupsROINode.h, Slicer 5.6-5.10): it is copied, so
    the worker never reads a matrix the user is moving.
    """
    if roiNode is None:
        raise InputError("roi: no ROI node given")
    objectToWorld = vtk.vtkMatrix4x4()
    objectToWorld.DeepCopy(roiNode.GetObjectToWorldMatrix())
    size = [0.0, 0.0, 0.0]
    roiNode.GetSize(size)
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
