"""The MRML side of the SegMoTE Logic: volume nodes in, prompts from nodes, results into segments.

`SegMoTELogic` (SegMoTE.py) is this class plus the engine: it supplies `runOnEngine`, which computes
on the engine's session of a volume. Nothing here needs Qt, so CI runs it on Slicer's real MRML
classes (slicer-core) with an in-process engine. A compute step is a generator: each engine call is
`yield from awaited(segmenter.method(...))`, which the engine carries out asynchronously (its
methods are operations) and an in-process segmenter answers at once (`SegMoTELib.service.operations`).

Prompts are in world RAS (what Slicer shows; parent transforms are respected). Each call blocks
until done and returns the new segment's id (`correctSegment`: the slices it re-segmented).
`orientation`: "auto" (the volume's acquisition axis), "axial", "coronal", "sagittal" or a slice
normal (3,) in RAS. `progress`: optional callable(fraction), called while waiting.
"""

from __future__ import annotations

import numpy as np
import slicer

from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.intensity import IntensityMapping
from SegMoTELib.service.operations import awaited
from SegMoTELib.slice_prompt import SlicePrompt

from .mrmlconvert import controlPointsWorld, roiCornersWorld, volumeFromNode, volumeSessionKey, writeLabelmapToSegment
from .segmentnames import checkedSegmentName


class VolumeSegmentationLogic:
    def runOnEngine(self, key, volume, mapping, compute, progress=None):
        """`compute(segmenter, volume, job)` (a generator, see the module's docstring) on the engine's
        session of `volume` (reused while `key` stays the same); returns its labelmap [k, j, i].
        Supplied by the class that owns the engine."""
        raise NotImplementedError

    # --- prompts -----------------------------------------------------------------------------------
    def segmentWithPoints(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, pointsRas, labels=None,
                          orientation="axial", propagate: bool = False, sliceRange=None, **options) -> str:
        """Clicks (N, 3) in RAS on one slice; labels (N,) 1 = positive, 0 = negative (default all 1)."""
        prompt = SlicePrompt.build("ras", points=np.asarray(pointsRas, dtype=np.float64), labels=labels)
        return self.segmentWithPrompt(volumeNode, prompt, orientation, propagate, sliceRange, **options)

    def segmentWithMarkups(self, volumeNode: slicer.vtkMRMLScalarVolumeNode,
                           markupsNode: slicer.vtkMRMLMarkupsFiducialNode, labels=None, **options) -> str:
        """Clicks from a point list node (its placed points, world positions); all positive unless
        `labels` says otherwise."""
        return self.segmentWithPoints(volumeNode, controlPointsWorld(markupsNode), labels, **options)

    def segmentWithBox(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, boxCornersRas, orientation="axial",
                       propagate: bool = False, sliceRange=None, **options) -> str:
        """A box given by two opposite corners (2, 3) in RAS, or 8 corners (8, 3) of a rotated box or
        rectangle (each used as given), on the slice through its centre."""
        prompt = SlicePrompt.build("ras", box=np.asarray(boxCornersRas, dtype=np.float64))
        return self.segmentWithPrompt(volumeNode, prompt, orientation, propagate, sliceRange, **options)

    def segmentWithPrompt(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, prompt: SlicePrompt, orientation="axial",
                          propagate: bool = False, sliceRange=None, **options) -> str:
        """Any prompt value in RAS (clicks, box, scribbles, lassos: `SlicePrompt.build("ras", ...)`) on
        the slice it lies on."""
        def compute(segmenter, volume, job):
            result = yield from awaited(segmenter.segment_slice(prompt, orientation))
            if propagate:
                return (yield from awaited(segmenter.propagate(result, slice_range=sliceRange,
                                                               progress=job.reportProgress)))
            return result.labelmap

        return self._segment(volumeNode, compute, **options)

    def segmentWithRoi(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, roiNode: slicer.vtkMRMLMarkupsROINode,
                       orientation="auto", **options) -> str:
        """A 3D box from a markups ROI (rotation respected): every slice the ROI crosses, walked along
        `orientation` ("auto": the volume's acquisition axis, e.g. a short-axis stack's slices)."""
        corners = roiCornersWorld(roiNode)

        def compute(segmenter, volume, job):
            return (yield from awaited(segmenter.segment_box3d(corners, orientation=orientation,
                                                               progress=job.reportProgress)))

        return self._segment(volumeNode, compute, **options)

    def segmentPromptFree(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, sliceIndex: int | None = None,
                          orientation="axial", propagate: bool = False, sliceRange=None, **options) -> str:
        """No prompt (needs an adapter with prompt-free tokens); one slice (default: the middle one)."""
        def compute(segmenter, volume, job):
            index = sliceIndex
            if index is None:
                index = geometry.slice_count(volume, geometry.slice_axis_for(volume, orientation)) // 2
            result = yield from awaited(segmenter.segment_auto(orientation, index))
            if propagate:
                return (yield from awaited(segmenter.propagate(result, slice_range=sliceRange,
                                                               progress=job.reportProgress)))
            return result.labelmap

        return self._segment(volumeNode, compute, **options)

    def correctSegment(self, volumeNode: slicer.vtkMRMLScalarVolumeNode,
                       segmentationNode: slicer.vtkMRMLSegmentationNode, segmentId: str, pointsRas=None, labels=None,
                       orientation="auto", modality: str = "auto", progress=None,
                       prompt: SlicePrompt | None = None) -> list:
        """Correct a segment (e.g. a propagated one) on one slice, with clicks (N, 3) in RAS or any
        prompt value (`prompt`: clicks, scribbles, ... in RAS): the engine segments that slice again
        from the segment's mask there and re-walks outward until the new masks agree with the old ones
        (`VolumeSegmenter.correct`). The segment is replaced by the corrected one (its voxels beyond the
        re-segmented slices are the same); returns the slice indices re-segmented."""
        if (prompt is None) == (pointsRas is None):
            raise InputError("correctSegment: give the correcting clicks (pointsRas) or a prompt, not both")
        if prompt is None:
            prompt = SlicePrompt.build("ras", points=np.asarray(pointsRas, dtype=np.float64), labels=labels)
        current = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode) > 0
        changed: list = []

        def compute(segmenter, volume, job):
            correction = yield from awaited(segmenter.correct(current, prompt, orientation,
                                                              progress=job.reportProgress))
            changed.extend(correction.changed)
            return correction.labelmap

        volume = volumeFromNode(volumeNode, modality)
        labelmap = self.runOnEngine(volumeSessionKey(volumeNode, modality), volume, IntensityMapping(modality=modality),
                                    compute, progress)
        writeLabelmapToSegment(labelmap, segmentationNode, segmentId, volumeNode)
        return changed

    # --- plumbing ----------------------------------------------------------------------------------
    def _segment(self, volumeNode: slicer.vtkMRMLScalarVolumeNode, compute,
                 segmentationNode: slicer.vtkMRMLSegmentationNode | None = None, segmentName: str = "SegMoTE",
                 modality: str = "auto", progress=None) -> str:
        segmentName = checkedSegmentName(segmentName)  # before any work: nothing computed for a bad name
        volume = volumeFromNode(volumeNode, modality)
        labelmap = self.runOnEngine(volumeSessionKey(volumeNode, modality), volume, IntensityMapping(modality=modality),
                                    compute, progress)
        if segmentationNode is None:
            segmentationNode = self.createSegmentationNode(volumeNode)
        # A new segment: nothing of the user's is replaced, and Slicer's import puts it on a layer of its
        # own where it overlaps other segments (vtkSlicerSegmentationsModuleLogic), so none is overwritten.
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", segmentName)
        writeLabelmapToSegment(labelmap, segmentationNode, segmentId, volumeNode)
        return segmentId

    def createSegmentationNode(self, volumeNode: slicer.vtkMRMLScalarVolumeNode) -> slicer.vtkMRMLSegmentationNode:
        """A new segmentation in the volume's geometry, under the same parent transform."""
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", volumeNode.GetName() + " SegMoTE")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        return segmentationNode
