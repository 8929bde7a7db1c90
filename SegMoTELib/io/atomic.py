"""The one way SegMoTE writes files: into a temporary folder beside the target, then `os.replace`.

A crash, a full disk or a failing writer never leaves a half-written file under the target name:
the target appears complete in one rename or not at all. Writers that produce companion files
(`.mhd` + `.raw`, `.nhdr` + data) write them into the same temporary folder under their final
names; companions are moved first and the named file last, so the file a reader opens only
appears once everything it references is in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DataError, InputError

TEMP_PREFIX = ".segmote-tmp-"


def writable_target(path, argument: str = "output") -> Path:
    """The target path, after checking that its folder exists and can be written."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"{argument}: {target} is a folder; expected a file name")
    if not folder.exists():
        raise InputError(f"{argument}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise InputError(f"{argument}: {folder} is not a folder, so {target.name} cannot be written in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{argument}: the folder {folder} is not writable")
    return target


@contextmanager
def atomic_output(path, argument: str = "output") -> Iterator[Path]:
    """Yield a temporary path with the target's file name; publish it only if the block succeeds.

    ```python
    with atomic_output("out/seg.nii.gz") as tmp:
        writer(tmp)          # any exception: nothing appears at out/seg.nii.gz
    ```
    """
    target = writable_target(path, argument)
    try:
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent))
    except OSError as error:
        raise InputError(f"{argument}: cannot write in the folder {target.parent}: {error.strerror}") from error
    try:
        staged = staging / target.name
        yield staged
        if not staged.is_file():
            raise DataError(f"{argument}: the writer produced no file for {target}")
        for companion in sorted(staging.iterdir()):
            if companion != staged:
                os.replace(companion, target.parent / companion.name)
        os.replace(staged, target)
    except OSError as error:
        raise DataError(f"{argument}: writing {target} failed: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
