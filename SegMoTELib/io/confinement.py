"""Reading only inside given folders (the service's `--data-root`): the file named, and every file
its header makes the reader open.

A NRRD header (`data file:`) and a MetaImage header (`ElementDataFile =`) may keep their voxels in
another file, anywhere: a header placed under the root would otherwise open voxels outside it, and
the integrity check's messages ("its data file ... does not exist", "the file holds 631 bytes")
would tell a client whether any file exists and how large it is. So, before anything opens or
measures a file, every name is resolved (symbolic links followed, `..` removed) and must lie under a
root; the refusal is the same whether the target exists or not. A DICOM folder's files are checked
likewise (each may be a link). Formats whose reader opens companion files by its own rules (Analyze
`.hdr`/`.img` and others SimpleITK guesses from the name) are not read for a client at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import AccessError
from .formats import IMAGE_2D_EXTENSIONS, VOLUME_EXTENSIONS, extension_of

CONFINED_EXTENSIONS = VOLUME_EXTENSIONS + IMAGE_2D_EXTENSIONS + (".seg.nrrd", ".npz")
MAX_DATA_FILES = 100_000   # a pattern header may name a range of files; more than this is refused
_HEADER_BYTES = 1 << 20


def confine(path, roots) -> Path:
    """`path` resolved, after checking it and each file it would make the reader open lie under
    one of `roots`; an `AccessError` otherwise (never a word on whether a file outside exists)."""
    roots = [Path(root).resolve() for root in roots]
    resolved = Path(path).expanduser().resolve()
    _inside(resolved, roots, f"{path}: outside the folders this server may read")
    if resolved.is_dir():
        for entry in sorted(resolved.iterdir()):
            _inside(entry.resolve(), roots, f"{path}: {entry.name} links outside the folders this server may read")
        return resolved
    if extension_of(resolved) not in CONFINED_EXTENSIONS:
        raise AccessError(f"{path}: this server reads {', '.join(CONFINED_EXTENSIONS)} files or DICOM folders "
                          f"for its clients, not {extension_of(resolved) or 'files without an extension'}")
    for name in detached_data_files(resolved):
        target = Path(name) if Path(name).is_absolute() else resolved.parent / name
        _inside(target.resolve(), roots,
                f"{path}: its header names a data file ({name}) outside the folders this server may read")
    return resolved


def _inside(resolved: Path, roots: list[Path], message: str) -> None:
    if not any(resolved.is_relative_to(root) for root in roots):
        raise AccessError(message)


def detached_data_files(source: Path) -> list[str]:
    """The data file names a NRRD or MetaImage header gives, as written (none for other formats
    and for data kept in the header's own file)."""
    extension = extension_of(source)
    if extension in (".nrrd", ".nhdr", ".seg.nrrd"):
        return _named_files(source, r"data ?file\s*:=?", b"NRRD", stop_at_blank_line=True)
    if extension in (".mha", ".mhd"):
        return _named_files(source, r"elementdatafile\s*=", None, stop_at_blank_line=False)
    return []


def _named_files(source: Path, field: str, magic: bytes | None, stop_at_blank_line: bool) -> list[str]:
    try:
        with source.open("rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError:
        return []  # under the root: the reader says what is wrong with it
    if magic is not None and not head.startswith(magic):
        return []
    lines = head.decode("latin-1").splitlines()
    for number, line in enumerate(lines):
        if stop_at_blank_line and not line.strip():
            return []  # the header ended: the data follow in this file
        match = re.match(field, line.strip(), flags=re.IGNORECASE)
        if match is None:
            continue
        value = line.strip()[match.end():].strip()
        return _expand(value, lines[number + 1:], source)
    return []


def _expand(value: str, following: list[str], source: Path) -> list[str]:
    """The names one data-file field stands for: LOCAL (none), LIST (the lines after it), a
    printf pattern with a range (`slice%03d.raw 1 40 1`), or one name."""
    words = value.split()
    if not words or words[0].upper() == "LOCAL":
        return []
    if words[0].upper() == "LIST":
        return [line.strip() for line in following if line.strip()]
    if "%" in words[0] and len(words) >= 4 and all(_is_int(word) for word in words[1:4]):
        first, last, step = (int(word) for word in words[1:4])
        if step == 0 or (last - first) // step + 1 > MAX_DATA_FILES:
            raise AccessError(f"{source}: its header names more than {MAX_DATA_FILES} data files "
                              f"({value}); this server does not read it")
        stop = last + (1 if step > 0 else -1)
        try:
            return [words[0] % index for index in range(first, stop, step)]
        except (TypeError, ValueError):
            raise AccessError(f"{source}: its data file pattern {words[0]!r} is not a valid pattern") from None
    return [value]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
