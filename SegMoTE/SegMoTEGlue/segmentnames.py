"""Segment names given to the Logic: refused with a clear message before any work starts.

The rule is the engine's (`SegMoTELib.names`, the one check the CLI, the .seg.nrrd writer and the
service call too): no empty names, no control characters or line separators (a newline in a name
breaks the segment list, the .seg.nrrd header and the Data module). Slicer allows any script, so
non-ASCII names are fine here.
"""

from __future__ import annotations

from SegMoTELib.names import validate_segment_name


def checkedSegmentName(name) -> str:
    """`name` stripped of surrounding spaces; InputError naming the problem otherwise."""
    return validate_segment_name(name, "segmentName").strip()
