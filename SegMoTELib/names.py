"""Segment names: the one check every path that puts a name into a file goes through.

A name ends up in a `.seg.nrrd` header line (`Segment0_Name:=liver`), in Slicer's segment list and
in CSV/JSON outputs. A newline or another control character there injects header lines and makes
the file unreadable, so such names are refused, wherever they come from: the CLI's `--name`, the
`.seg.nrrd` writer (`io.SegmentInfo`), the Slicer Logic and the HTTP service.
"""

from __future__ import annotations

import unicodedata

from .errors import InputError

MAX_NAME_LENGTH = 200

# Cc: control characters (newline, tab, NUL, DEL, ...); Cs: lone surrogates (not encodable as UTF-8);
# Zl, Zp: the Unicode line and paragraph separators, which str.splitlines treats as line breaks.
_FORBIDDEN_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


def validate_segment_name(name, argument: str = "segment name", ascii_only: bool = False) -> str:
    """`name` if it is a usable segment name, else an `InputError` naming `argument` and the fault.

    Usable: a non-blank string of at most MAX_NAME_LENGTH characters with no control characters or
    line separators. Spaces, punctuation and any script are fine (Slicer allows them), except with
    `ascii_only`: the `.seg.nrrd` writer (pynrrd) stores ASCII header lines only."""
    if not isinstance(name, str):
        raise InputError(f"{argument}: expected a text, got {type(name).__name__}")
    if not name.strip():
        raise InputError(f"{argument}: the name is empty; give a segment name such as 'liver'")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"{argument}: the name has {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed")
    for position, character in enumerate(name):
        if unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            raise InputError(f"{argument}: {name!r} contains the control character {character!r} at position "
                             f"{position}; segment names must be printable text on one line")
    if ascii_only and not name.isascii():
        raise InputError(f"{argument}: {name!r} has non-ASCII characters, which a .seg.nrrd header cannot hold "
                         f"here; use ASCII letters, or write a plain labelmap (.nii.gz) instead")
    return name
