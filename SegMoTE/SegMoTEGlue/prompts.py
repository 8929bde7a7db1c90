"""Prompt bookkeeping shared by the Logic and the effect (no Slicer imports, no geometry).

`SlicePrompts` is the effect's current prompt set: the clicks and the box placed on one slice of
one view. A prompt on another slice (or in a view of another orientation) starts a new set, as in
SAM: prompts describe one 2D image. Coordinates stay in world RAS; SegMoTELib maps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODE_CLICK = "click"
MODE_BOX = "box"
MODE_AUTO = "prompt-free"
MODES = (MODE_CLICK, MODE_BOX, MODE_AUTO)


@dataclass
class SlicePrompts:
    orientation: object                        # "axial"... or a slice normal (3,) in world RAS
    sliceKey: tuple                            # (view name, slice axis, slice index): identifies the slice
    pointsRas: list = field(default_factory=list)
    labels: list = field(default_factory=list)  # 1 positive, 0 negative
    boxCornersRas: list | None = None           # two opposite corners in world RAS
    boxOutlineRas: list | None = None           # the rectangle as drawn (4 corners), for the marker only
    lastResult: object = None                   # SegMoTELib slice result, for refinement and propagation

    def addPoint(self, pointRas, positive: bool) -> None:
        self.pointsRas.append([float(value) for value in pointRas])
        self.labels.append(1 if positive else 0)

    def setBox(self, cornerRas0, cornerRas1, outlineRas=None) -> None:
        self.boxCornersRas = [[float(v) for v in cornerRas0], [float(v) for v in cornerRas1]]
        self.boxOutlineRas = None if outlineRas is None else [[float(v) for v in c] for c in outlineRas]

    @property
    def empty(self) -> bool:
        return not self.pointsRas and self.boxCornersRas is None

    def arguments(self) -> dict:
        """Keyword arguments of `VolumeSegmenter.segment_slice` for this slice.

        After the first prediction, the previous low-res logits go along as a dense prompt, so a
        new click refines the mask instead of starting over.
        """
        previous = self.lastResult
        return {
            "orientation": self.orientation,
            "slice_index": self.sliceKey[2],
            "mask_input": None if previous is None else previous.low_res_logits,
            "points_ras": np.asarray(self.pointsRas, dtype=np.float64) if self.pointsRas else None,
            "labels": np.asarray(self.labels, dtype=np.int64) if self.labels else None,
            "box_ras": np.asarray(self.boxCornersRas, dtype=np.float64) if self.boxCornersRas else None,
        }

