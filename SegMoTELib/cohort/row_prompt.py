"""A cohort row's prompt: `auto`, `ras-box:x0,y0,z0,x1,y1,z1` or `ras-point:x,y,z` (RAS mm).

- `auto`: the prompt-free mask (needs an adapter with prompt-free tokens) of the middle axial slice;
- `ras-box`: a box by two opposite corners; spanning several axial slices it is segmented in 3D
  within it (as `segmote segment --ras-box`), a flat box segments its slice and propagates;
- `ras-point`: a positive click; its axial slice is segmented and the mask propagated through the
  volume until the structure ends (as `segmote segment --ras-point ... --propagate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

_ARITY = {"ras-box": 6, "ras-point": 3}
SYNTAX = "auto, ras-box:x0,y0,z0,x1,y1,z1 or ras-point:x,y,z (RAS millimetres)"


@dataclass(frozen=True)
class RowPrompt:
    kind: str                  # "auto", "ras-box" or "ras-point"
    values: tuple = ()         # the RAS numbers

    @property
    def text(self) -> str:
        if self.kind == "auto":
            return "auto"
        return f"{self.kind}:" + ",".join(f"{value:g}" for value in self.values)


def parse_prompt(text: str) -> RowPrompt:
    """The RowPrompt written as `text`; an InputError naming the mistake otherwise."""
    cleaned = (text or "").strip()
    if cleaned.lower() == "auto":
        return RowPrompt("auto")
    kind, separator, numbers = cleaned.partition(":")
    kind = kind.strip().lower()
    if not separator or kind not in _ARITY:
        raise InputError(f"prompt {text!r}: expected {SYNTAX}")
    parts = [part.strip() for part in numbers.split(",")]
    if len(parts) != _ARITY[kind]:
        raise InputError(f"prompt {text!r}: {kind} takes {_ARITY[kind]} numbers, got {len(parts)}")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise InputError(f"prompt {text!r}: {kind} takes numbers (RAS mm), got {numbers!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise InputError(f"prompt {text!r}: coordinates must be finite numbers")
    return RowPrompt(kind, values)
