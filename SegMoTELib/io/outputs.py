"""Checks on where results go, made before any work starts, and write failures as one clear line.

Every command that writes (segment, curate, evaluate, batch, serve) calls these before it loads a
model or measures anything, so a mistake in the output argument costs seconds, not a whole run:

- `writable_folder(path)`: an output folder exists and can be written, or can be created;
- `probe_writable(folder)`: really creates (and removes) a file there (`os.access` says yes for
  root in `/proc` and on a read-only mount, and knows nothing about a full disk);
- `check_free_space(folder)`: refuses a disk that is (nearly) full;
- `refuse_overwriting_input(output, inputs)`: an output that is one of the inputs (also through a
  symbolic or hard link) would replace the source with the result;
- `output_errors(argument, where)`: turns an `OSError` of the writing into a `DataError` with the
  same one-line message `segment` gives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DataError, InputError

PROBE_PREFIX = ".segmote-probe-"
MIN_FREE_BYTES = 1 << 20  # below one MiB nothing SegMoTE writes (a mask, a manifest) fits for sure


def describe_os_error(error: OSError) -> str:
    """'No space left on device (/out/x.png)': the reason and the file, without errno numbers."""
    reason = error.strerror or str(error) or type(error).__name__
    return f"{reason} ({error.filename})" if error.filename else reason


def nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (what a later mkdir -p would build on)."""
    current = Path(path)
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def probe_writable(folder, argument: str = "output") -> None:
    """Create and remove a file in `folder`: the only test that knows about /proc, read-only
    mounts, ACLs and files systems that refuse new files."""
    try:
        handle, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as error:
        raise InputError(f"{argument}: cannot write in the folder {folder}: {error.strerror or error}") from None
    os.close(handle)
    os.unlink(name)


def check_free_space(folder, argument: str = "output", needed_bytes: int = MIN_FREE_BYTES) -> None:
    """Refuse a folder whose disk has less than `needed_bytes` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # no figure on this file system: the writes themselves will tell
    if free < needed_bytes:
        raise InputError(f"{argument}: the disk of {folder} is full ({human_size(free)} free, at least "
                         f"{human_size(needed_bytes)} needed); free some space or choose another folder")


def writable_folder(path, argument: str = "--out") -> Path:
    """The absolute output folder, after checking that it is (or can be made) a writable folder on
    a disk that is not full. Creates nothing."""
    folder = Path(path).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{argument}: {folder} is a file, not a folder")
    base = nearest_existing(folder)
    if not base.is_dir():
        raise InputError(f"{argument}: {base} is a file, so the folder {folder} cannot be created under it")
    probe_writable(base, argument)
    check_free_space(base, argument)
    return folder


def make_output_folder(path, argument: str = "--out") -> Path:
    """`writable_folder`, then the folder created (with its parents); a failure is one line."""
    folder = writable_folder(path, argument)
    with output_errors(argument, folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def refuse_overwriting_input(output, inputs, argument: str = "--output") -> None:
    """An `InputError` when `output` is one of `inputs` (same file, also through links)."""
    target = Path(output).expanduser()
    for source in inputs:
        source = Path(source).expanduser()
        if _same_file(target, source):
            raise InputError(f"{argument}: {target} is the input file {source}; writing there would replace the "
                             f"image with the result. Choose another output name")


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one does not exist (yet): it cannot be the other, unless the names agree
        return os.path.abspath(first) == os.path.abspath(second)


@contextmanager
def output_errors(argument: str, where) -> Iterator[None]:
    """Within the block, an `OSError` (disk full, permission, a folder removed) becomes a `DataError`
    '<argument>: writing in <where> failed: <reason> (<file>)'."""
    try:
        yield
    except OSError as error:
        raise DataError(f"{argument}: writing in {where} failed: {describe_os_error(error)}") from error


def human_size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"
