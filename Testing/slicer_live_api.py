"""The Python signatures of Slicer's wrapped classes as they really are: slicer-core and the vtk wheel.

VTK's wrapper documents every Python overload of a method in its `__doc__`, one signature per
overload, e.g. for `vtkMRMLMarkupsROINode.GetSize`:

    GetSize(self) -> (float, float, float)
    C++: virtual double *GetSize()

so `GetSize(size)` cannot be called from Python although C++ has a `GetSize(double[3])` (VTK marks the
array forms of its vector getters VTK_WRAPEXCLUDE). The Slicer 5.10 API index reads C++ headers and
lists such overloads; this reads what Python accepts. slicer-core is Slicer 5.13 (newer than the
5.10 the extension targets): slicer_api_check requires a call to fit both where both know the method.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SIGNATURE_START = re.compile(r"^([A-Za-z_]\w*)\(")


class LiveSignatures:
    """Classes, members and argument counts of slicer-core's and VTK's wrapped classes."""

    def __init__(self, *modules):
        self.modules = [module for module in modules if module is not None]

    @classmethod
    def load(cls) -> LiveSignatures | None:
        """Slicer's real `slicer` package (slicer-core) and `vtk`, or None when slicer-core is missing."""
        try:
            import slicer
            import vtk
        except ImportError:
            return None
        if not hasattr(slicer, "vtkMRMLScene"):
            return None
        return cls(slicer, vtk)

    def wrapped_class(self, name: str):
        for module in self.modules:
            wrapped = getattr(module, name, None)
            if isinstance(wrapped, type):
                return wrapped
        return None

    def has_class(self, name: str) -> bool:
        return self.wrapped_class(name) is not None

    def has_member(self, cls: str, name: str) -> bool | None:
        """Whether Python finds `name` on the class (None: the class is not wrapped here)."""
        wrapped = self.wrapped_class(cls)
        return None if wrapped is None else hasattr(wrapped, name)

    def overloads(self, cls: str, name: str, unbound: bool = False):
        """[[min, max], ...] arguments of each Python overload (without `self`; with it when `unbound`,
        a call on the class itself), or None when the class or method is unknown here."""
        wrapped = self.wrapped_class(cls)
        method = getattr(wrapped, name, None) if wrapped is not None else None
        doc = getattr(method, "__doc__", None)
        if not callable(method) or not doc:
            return None
        counts = []
        for has_self, low, high in _parsed_overloads(name, doc):
            extra = 1 if (has_self and unbound) else 0
            counts.append([low + extra, high + extra])
        return counts or None


@lru_cache(maxsize=None)
def _parsed_overloads(name: str, doc: str) -> tuple:
    """(has self, required, total) of each `name(...)` signature of a VTK wrapper docstring."""
    overloads, lines = [], doc.splitlines()
    index = 0
    while index < len(lines):
        match = _SIGNATURE_START.match(lines[index])
        if match is None or match.group(1) != name:
            index += 1
            continue
        text, depth = "", 0
        while index < len(lines):
            text += lines[index].strip() + " "
            depth = text.count("(") - text.count(")")
            index += 1
            if depth <= 0:
                break
        parameters = _split_parameters(text[text.index("(") + 1:_closing(text)])
        has_self = bool(parameters) and parameters[0].split(":")[0].strip() == "self"
        parameters = parameters[1:] if has_self else parameters
        required = sum(1 for parameter in parameters if "=" not in parameter)
        overloads.append((has_self, required, len(parameters)))
    return tuple(overloads)


def _closing(text: str) -> int:
    """The index of the parenthesis closing the signature's first one."""
    depth = 0
    for position, character in enumerate(text):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and character == ")":
            return position
    return len(text)


def _split_parameters(text: str) -> list[str]:
    """Parameters separated by commas outside brackets (types such as `(int, int, int)` hold commas)."""
    parameters, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(character, 0)
        if character == "," and depth == 0:
            parameters.append(current.strip())
            current = ""
        else:
            current += character
    if current.strip():
        parameters.append(current.strip())
    return parameters
