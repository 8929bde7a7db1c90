"""One exception family for everything a user can get wrong.

Every user mistake (bad argument, unreadable file, mismatched checkpoint) raises a subclass of
`SegMoTEError` whose message names the argument or file and what was expected, so callers (CLI,
Slicer) can show it as is instead of a traceback from inside torch.
"""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most `limit` characters ("" when it has none):
    how a fault that does not stop the work (a failed compilation, a graph capture) is reported."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else ""


def one_line(text, limit: int = 600) -> str:
    """`text` (a message or an exception) as one line: newlines and runs of spaces become one space,
    cut at `limit` characters. What every user-facing error (CLI, service) prints, so that a
    library's multi-line text can never turn one mistake into a screenful."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class SegMoTEError(ValueError):
    """Base class of all errors caused by user input or user files."""


class InputError(SegMoTEError):
    """An argument (image, prompt, option) has the wrong shape, type or value."""


class CheckpointError(SegMoTEError):
    """A checkpoint or adapter file is missing, corrupt or does not match what was expected."""


class BackboneError(SegMoTEError):
    """An unknown backbone was requested or its dependencies are missing."""


class DataError(SegMoTEError):
    """A data file or folder (volume, image, dataset) is unreadable or malformed."""


class AccessError(SegMoTEError):
    """A file outside the folders this process may read for its client (the service's --data-root)."""
