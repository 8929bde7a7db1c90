"""Embedding the slice the user looks at before they prompt it (the effect's view-node events).

A slice view that has settled for PREFETCH_DELAY_MSEC asks the engine to embed its slice, at the
lowest priority, a newer request replacing an older one; the prompt there then costs only the
decoder. It never starts the engine nor uploads a volume: only an engine that is ready and already
holds a session of this volume is asked. The effect hands in its `engineFor`, so whatever the effect
module's name stands for at call time is what runs.
"""

from __future__ import annotations

import qt

from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.priorities import PREFETCH

from .engine import READY
from .mrmlconvert import sliceNormalWorld

PREFETCH_DELAY_MSEC = 300  # wait for the slice to settle before embedding it


class SlicePrefetch:
    def __init__(self, effect, engineFor):
        self.effect, self.engineFor = effect, (engineFor,)
        self.viewNode = None
        self.timer = None

    def schedule(self, sliceNode) -> None:
        self.viewNode = sliceNode
        if self.timer is None:
            self.timer = qt.QTimer()
            self.timer.setSingleShot(True)
            self.timer.setInterval(PREFETCH_DELAY_MSEC)
            self.effect.connectSignal(self.timer, "timeout()", self.embedCurrentSlice)  # cleanup() disconnects it
        self.timer.start()

    def embedCurrentSlice(self) -> None:
        sliceNode = self.viewNode
        engineFor, = self.engineFor
        engine = engineFor()
        if sliceNode is None or engine.state != READY:
            return  # embedding ahead never starts the engine
        sliceToRas = sliceNode.GetSliceToRAS()
        centerRas = [sliceToRas.GetElement(row, 3) for row in range(3)]
        orientation = sliceNormalWorld(sliceNode)
        try:
            _segmentationNode, _image, volume, key = self.effect.context()
            ref = geometry.slice_through(volume, orientation, centerRas)
        except (InputError, ValueError):
            return  # nothing to prefetch: no source volume or the view is outside it
        if not engine.hasSession(key):
            return  # nor uploads the volume: the first prompt does
        mapping = self.effect.mapping()

        def run(call):
            return engine.segmenterFor(key, volume, mapping).prefetch(orientation, slice_index=ref.index)

        engine.submit(run, "Embedding the current slice", PREFETCH, replaceKey="prefetch")

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()

    def release(self) -> None:
        """At the effect's cleanup (its connections are disconnected there)."""
        if self.timer is not None:
            self.timer.stop()
            self.timer.deleteLater()
            self.timer = None
