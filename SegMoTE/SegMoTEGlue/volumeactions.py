"""The Segment Editor effect's actions on the whole volume: "Propagate to 3D" and the correction of
a propagated segment that re-walks outward. `VolumeActions(effect)` works through the effect's
`context`, `prompts`, `submit`, `startJob` and `writeLabelmap`.

Both run in the engine as BATCH jobs (clicks go first), write only the slices they computed
(SegMoTEGlue.segmentwrite: one undo step, every other voxel kept), and say on the status line
which slices they changed.
"""

from __future__ import annotations

from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.priorities import BATCH

from .mrmlconvert import orientedImageArray
from .promptbook import SlicePrompts


class VolumeActions:
    def __init__(self, effect):
        self.effect = effect

    def correctPropagated(self, prompts: SlicePrompts) -> None:
        """A click on a propagated segment: the engine corrects this slice and re-walks outward until the
        new masks agree with the segment as it is (`VolumeSegmenter.correct`); the re-segmented slices
        are written."""
        try:
            _segmentationNode, image, volume, key = self.effect.context()
        except InputError as error:
            self.effect.setStatus(str(error))
            return
        segment = self.effect.scriptedEffect.selectedSegmentLabelmap()  # in the source image's layout (see segmentseed)
        if segment is None or tuple(segment.GetExtent()) != tuple(image.GetExtent()):
            arguments = prompts.arguments()  # nothing to correct in 3D here: a slice prompt as usual
            self.effect.submit(lambda segmenter: segmenter.segment_slice(**arguments), prompts,
                               "Segmenting the slice...")
            return
        if not self.effect.editingConfirmed():
            return
        current = orientedImageArray(segment) > 0
        arguments = prompts.arguments()
        engine = self.effect.currentEngine()
        mapping = self.effect.mapping()

        def run(call):
            segmenter = engine.segmenterFor(key, volume, mapping)
            return segmenter.correct(current, arguments["prompt"], arguments["orientation"],
                                     slice_index=arguments["slice_index"], progress=call.reportProgress)

        def onDone(correction):
            first, last = min(correction.changed), max(correction.changed)
            if self.effect.writeLabelmap(correction.labelmap, image, correction.slice_ref.axis, first, last):
                self.effect.setStatus(f"Corrected slice {correction.slice_ref.index} and carried it to slices {first} to "
                               f"{last}, where the masks agree again.")

        self.effect.startJob(engine, run, "Correcting and re-propagating...", BATCH, onDone)

    def propagateSelected(self) -> None:
        try:
            _segmentationNode, image, volume, key = self.effect.context()
        except InputError as error:
            self.effect.setStatus(str(error))
            return
        prompts = self.effect.prompts  # the selected segment's own prompts, never another segment's
        if prompts is None or prompts.lastResult is None:
            self.effect.setStatus("Place a prompt on a slice of this segment first; its mask is what gets propagated.")
            return
        if not self.effect.editingConfirmed():
            return
        seed = prompts.lastResult
        sliceRange = None
        if self.effect.scriptedEffect.integerParameter("LimitRange"):
            sliceRange = (self.effect.scriptedEffect.integerParameter("FirstSlice"),
                          self.effect.scriptedEffect.integerParameter("LastSlice"))
        self.propagateTo3D(seed, sliceRange, image, volume, key)

    def propagateTo3D(self, seed, sliceRange, image, volume, key) -> None:
        engine = self.effect.currentEngine()
        mapping = self.effect.mapping()

        def run(call):
            segmenter = engine.segmenterFor(key, volume, mapping)
            return segmenter.propagate(seed, slice_range=sliceRange, progress=call.reportProgress)

        def onDone(labelmap):
            first, last = sliceRange if sliceRange is not None else (0, geometry.slice_count(volume, seed.ref.axis) - 1)
            if self.effect.writeLabelmap(labelmap, image, seed.ref.axis, first, last):
                self.effect.propagatedTargets.add(self.effect.currentTarget())
                self.effect.setStatus(f"Propagated through slices {first} to {last}; the segment's other slices are kept. "
                               f"A click on any slice now corrects it in 3D.")

        self.effect.startJob(engine, run, "Propagating to 3D...", BATCH, onDone)
