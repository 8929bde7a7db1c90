"""Embedding the slice the user looks at before they prompt it (the effect's view-node events).

A slice view that has settled for PREFETCH_DELAY_MSEC asks the engine to embed its slice, at the
lowest priority, a newer request replacing an older one; the prompt there then costs only the
decoder. The effect hands in its engine functions (`status`, `session`), so whatever the effect
module's names stand for at call time is what runs.
"""

from __future__ import annotations

import qt

from SegMoTELib import geometry
from SegMoTELib.errors import InputError

from .mrmlconvert import sliceNormalWorld
from .worker import PREFETCH

PREFETCH_DELAY_MSEC = 300  # wait for the slice to settle before embedding it


class SlicePrefetch:
    def __init__(self, effect, status, session):
        self.effect, self.engine = effect, (status, session)
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
        status, engineSession = self.engine
        if sliceNode is None or not status().ready:
            return
        sliceToRas = sliceNode.GetSliceToRAS()
        centerRas = [sliceToRas.GetElement(row, 3) for row in range(3)]
        orientation = sliceNormalWorld(sliceNode)
        try:
            _segmentationNode, _image, volume, key = self.effect.context()
            ref = geometry.slice_through(volume, orientation, centerRas)
        except (InputError, ValueError):
            return  # nothing to prefetch: no source volume or the view is outside it
        session = engineSession()
        mapping = self.effect.mapping()

        def run(job, engine):
            session.segmenterFor(engine, key, volume, mapping).prefetch(orientation, slice_index=ref.index)

        session.submit(run, "Embedding the current slice", PREFETCH, replaceKey="prefetch")

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()

    def release(self) -> None:
        """At the effect's cleanup (its connections are disconnected there)."""
        if self.timer is not None:
            self.timer.stop()
            self.timer.deleteLater()
            self.timer = None
