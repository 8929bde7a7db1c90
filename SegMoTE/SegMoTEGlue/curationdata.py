"""Loaded volumes and their labels (segmentation or label map) as arrays for SegMoTELib.curation.

Runs on the main thread (MRML access); the arrays it returns are then measured on the worker.
Slices are taken along an array axis of the [k, j, i] voxels, as stored (the CLI's convention),
with the axis chosen by SegMoTELib for the patient orientation the user asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer

from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.intensity import IntensityMapping, to_uint8

from .mrmlconvert import geometryOfNode


@dataclass
class CurationInput:
    """One study: 8-bit voxels and integer labels [k, j, i], and where they came from."""

    volumeNodeId: str
    case: str
    voxelsU8: np.ndarray
    labelmap: np.ndarray
    labelNames: dict
    arrayAxis: int
    modality: str


def labelmapOfSegmentation(segmentationNode: slicer.vtkMRMLSegmentationNode,
                           volumeNode: slicer.vtkMRMLScalarVolumeNode) -> tuple[np.ndarray, dict]:
    """Segments as labels 1..N in the volume's voxel grid (a later segment wins where they overlap)."""
    segmentation = segmentationNode.GetSegmentation()
    shape = slicer.util.arrayFromVolume(volumeNode).shape
    labelmap = np.zeros(shape, dtype=np.uint16)
    names = {}
    for number in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(number)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
        labelmap[np.asarray(mask) != 0] = number + 1
        names[number + 1] = segmentation.GetSegment(segmentId).GetName()
    return labelmap, names


def labelmapOfLabelVolume(labelNode: slicer.vtkMRMLLabelMapVolumeNode,
                          volumeNode: slicer.vtkMRMLScalarVolumeNode) -> tuple[np.ndarray, dict]:
    labels = slicer.util.arrayFromVolume(labelNode)
    shape = slicer.util.arrayFromVolume(volumeNode).shape
    if labels.shape != shape:
        raise InputError(
            f"labels: label map '{labelNode.GetName()}' has {labels.shape} voxels but volume "
            f"'{volumeNode.GetName()}' has {shape}; import it into a segmentation (Segmentations module) "
            f"so it is resampled to the volume, and use that instead")
    return np.array(labels, dtype=np.int64, copy=True), {}


def curationInput(volumeNode: slicer.vtkMRMLScalarVolumeNode, labelsNode: slicer.vtkMRMLNode,
                  orientation: str = "axial", modality: str = "auto") -> CurationInput:
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise InputError("volume: choose a loaded scalar volume")
    if labelsNode is None:
        raise InputError(f"labels: choose the segmentation or label map of '{volumeNode.GetName()}'")
    if labelsNode.IsA("vtkMRMLSegmentationNode"):
        labelmap, names = labelmapOfSegmentation(labelsNode, volumeNode)
    elif labelsNode.IsA("vtkMRMLLabelMapVolumeNode"):
        labelmap, names = labelmapOfLabelVolume(labelsNode, volumeNode)
    else:
        raise InputError(f"labels: '{labelsNode.GetName()}' is neither a segmentation nor a label map")
    voxels = slicer.util.arrayFromVolume(volumeNode)
    voxelAxis = geometry.slice_axis_for(geometryOfNode(volumeNode), orientation)
    return CurationInput(
        volumeNodeId=volumeNode.GetID(), case=volumeNode.GetName(),
        voxelsU8=to_uint8(voxels, IntensityMapping(modality=modality)), labelmap=labelmap,
        labelNames=names, arrayAxis=2 - voxelAxis,  # voxel axis i, j, k = array axis 2, 1, 0
        modality=modality)


def jumpToRecord(record: dict, volumeNode: slicer.vtkMRMLScalarVolumeNode) -> None:
    """Show the record's volume and centre the slice views on its slice."""
    slicer.util.setSliceViewerLayers(background=volumeNode, fit=False)
    shape = slicer.util.arrayFromVolume(volumeNode).shape
    voxel = [size // 2 for size in shape]  # the middle of the volume, on the record's slice
    voxel[int(record["axis"])] = int(record["slice_index"])
    ras = geometryOfNode(volumeNode).ijk_to_ras_points([voxel[::-1]])[0]
    slicer.modules.markups.logic().JumpSlicesToLocation(ras[0], ras[1], ras[2], True)
