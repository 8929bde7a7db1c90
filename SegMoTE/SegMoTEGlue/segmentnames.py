"""Segment names given to the Logic: refused with a clear message before any work starts.

SegMoTELib has no segment-name validator yet (the CLI's naming rules are being settled in the
engine, issue 15); until it has one, the glue checks locally what a Slicer segment name must not
be: empty, or holding control characters (a newline or tab in a name breaks the segment list, the
.seg.nrrd header and the Data module). When SegMoTELib gains a validator, call it here instead.
"""

from __future__ import annotations

import unicodedata

from SegMoTELib.errors import InputError


def checkedSegmentName(name) -> str:
    """`name` stripped of surrounding spaces; InputError naming the problem otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"segmentName: expected a non-empty name, got {name!r}")
    control = [character for character in name if unicodedata.category(character) == "Cc"]
    if control:
        raise InputError(f"segmentName: {name!r} contains a control character ({control[0]!r}); use printable text")
    return name.strip()
