"""Prompt bookkeeping shared by the Logic and the effect (no Slicer imports, no geometry).

`SlicePrompts` is a prompt set: the clicks, the box, the scribbles and the lassos placed on one
slice of one view for one segment; `prompt()` gives it as SegMoTELib's one prompt value
(`SlicePrompt`, RAS frame). A prompt on another slice (or in a view of another orientation) starts
a new set, as in SAM: prompts describe one 2D image. The key names the segmentation and the segment too, so the
points and logits of one segment never refine, or get propagated as, another one (`PromptBook`).
Coordinates stay in world RAS; SegMoTELib maps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from SegMoTELib.slice_prompt import SlicePrompt

MODE_CLICK = "click"
MODE_BOX = "box"
MODE_SCRIBBLE = "scribble"
MODE_LASSO = "lasso"
MODE_AUTO = "prompt-free"
MODES = (MODE_CLICK, MODE_BOX, MODE_SCRIBBLE, MODE_LASSO, MODE_AUTO)
STROKE_MODES = (MODE_SCRIBBLE, MODE_LASSO)


class SliceKey(NamedTuple):
    """Which prompts belong together: one segment of one segmentation, on one slice of one view."""

    segmentationNodeId: str
    segmentId: str
    viewName: str
    axis: int
    index: int

    @property
    def segment(self) -> tuple[str, str]:
        return (self.segmentationNodeId, self.segmentId)


@dataclass
class SlicePrompts:
    orientation: object                        # "axial"... or a slice normal (3,) in world RAS
    sliceKey: SliceKey
    pointsRas: list = field(default_factory=list)
    labels: list = field(default_factory=list)  # 1 positive, 0 negative
    boxCornersRas: list | None = None           # two opposite corners in world RAS
    boxOutlineRas: list | None = None           # the rectangle as drawn (4 corners), for the marker only
    lastResult: object = None                   # SegMoTELib slice result, for refinement and propagation
    scribbles: list = field(default_factory=list)  # (vertices RAS, positive) each
    lassos: list = field(default_factory=list)     # (vertices RAS, positive) each, closed
    seedMask: object = None                     # bool (H, W): the segment's slice before the first prompt
    segmentToken: object = None                 # the segment labelmap's state after this set's last write

    def addPoint(self, pointRas, positive: bool) -> None:
        self.pointsRas.append([float(value) for value in pointRas])
        self.labels.append(1 if positive else 0)

    def setBox(self, cornerRas0, cornerRas1, outlineRas=None) -> None:
        """A box by two opposite corners, or by the 4 corners of the rectangle as drawn (`outlineRas`).

        A rectangle drawn in a rotated or reformatted view is not aligned with the RAS axes, and two
        of its corners would stand for the RAS-aligned box they span. Its 4 corners go to the engine
        as they are: a 4-corner RAS box is projected onto the slice as given.
        """
        self.boxOutlineRas = None if outlineRas is None else [[float(v) for v in c] for c in outlineRas]
        if self.boxOutlineRas is not None and len(self.boxOutlineRas) == 4:
            self.boxCornersRas = list(self.boxOutlineRas)
        else:
            self.boxCornersRas = [[float(v) for v in cornerRas0], [float(v) for v in cornerRas1]]

    def addStroke(self, kind: str, verticesRas, positive: bool) -> None:
        """A scribble (MODE_SCRIBBLE) or a lasso (MODE_LASSO) as drawn, in world RAS."""
        stroke = ([[float(value) for value in vertex] for vertex in verticesRas], bool(positive))
        (self.lassos if kind == MODE_LASSO else self.scribbles).append(stroke)

    def strokes(self) -> list:
        """(vertices RAS, positive, closed) of each stroke, for drawing."""
        return [(v, p, False) for v, p in self.scribbles] + [(v, p, True) for v, p in self.lassos]

    @property
    def empty(self) -> bool:
        return not self.pointsRas and self.boxCornersRas is None and not self.scribbles and not self.lassos

    def prompt(self) -> SlicePrompt:
        """The set as SegMoTELib's prompt value (RAS). After the first prediction, the previous
        low-res logits go along as a dense prompt, so a new click refines the mask instead of
        starting over. Before it, a segment that already has voxels on the slice (made by any tool)
        goes along as `seed_mask`, for the same reason."""
        previous = self.lastResult
        return SlicePrompt.build(
            "ras", points=np.asarray(self.pointsRas, dtype=np.float64) if self.pointsRas else None,
            labels=np.asarray(self.labels, dtype=np.int64) if self.labels else None,
            box=np.asarray(self.boxCornersRas, dtype=np.float64) if self.boxCornersRas else None,
            scribbles=[v for v, positive in self.scribbles if positive],
            negative_scribbles=[v for v, positive in self.scribbles if not positive],
            lassos=[v for v, positive in self.lassos if positive],
            negative_lassos=[v for v, positive in self.lassos if not positive],
            mask_input=None if previous is None else previous.low_res_logits,
            seed_mask=self.seedMask if previous is None else None)

    def hasCorrection(self) -> bool:
        """Clicks or scribbles: what corrects a propagated segment in 3D (a box or a lasso draws anew)."""
        return bool(self.pointsRas or self.scribbles)

    def arguments(self) -> dict:
        """Keyword arguments of `VolumeSegmenter.segment_slice` (and the client's) for this slice."""
        return {"prompt": self.prompt(), "orientation": self.orientation, "slice_index": self.sliceKey.index}



class PromptBook:
    """The current prompt set of each segment (segmentation node id, segment id)."""

    def __init__(self):
        self._bySegment: dict[tuple[str, str], SlicePrompts] = {}

    def promptsFor(self, key: SliceKey, orientation) -> SlicePrompts:
        """The set of `key`; a new one (replacing the segment's previous set) when the slice changed."""
        prompts = self._bySegment.get(key.segment)
        if prompts is None or prompts.sliceKey != key:
            prompts = SlicePrompts(orientation, key)
            self._bySegment[key.segment] = prompts
        return prompts

    def current(self, segmentationNodeId: str | None, segmentId: str | None) -> SlicePrompts | None:
        """The segment's latest prompt set (what "Propagate to 3D" starts from), or None."""
        return self._bySegment.get((segmentationNodeId, segmentId))

    def forget(self, segmentationNodeId: str, segmentId: str) -> None:
        self._bySegment.pop((segmentationNodeId, segmentId), None)

    def forgetChanged(self, segmentationNodeId: str, tokenOf) -> list[tuple[str, str]]:
        """Forget the sets of `segmentationNodeId` whose segment changed since their last write
        (`tokenOf(segmentId)` differs from the token recorded then); returns those segments."""
        changed = [key for key, prompts in self._bySegment.items()
                   if key[0] == segmentationNodeId and tokenOf(key[1]) != prompts.segmentToken]
        for key in changed:
            del self._bySegment[key]
        return changed

    def clear(self) -> None:
        self._bySegment.clear()
