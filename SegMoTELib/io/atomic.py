"""The one way SegMoTE writes files: into a temporary folder beside the target, then `os.replace`.

A crash, a full disk or a failing writer never leaves a half-written file under the target name:
the target appears complete in one rename or not at all. Writers that produce companion files
(`.mhd` + `.raw`, `.nhdr` + data) write them into the same temporary folder under their final
names; companions are moved first and the named file last, so the file a reader opens only
appears once everything it references is in place. `atomic_outputs` publishes several files (a
mask and its overlay) together: all of them, or none and the previous versions kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DataError, InputError, SegMoTEError
from .outputs import check_free_space, describe_os_error, probe_writable

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
    probe_writable(folder, argument)  # os.access says yes for root in /proc or on a read-only mount
    check_free_space(folder, argument)
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
        raise InputError(f"{argument}: cannot write in the folder {target.parent}: {describe_os_error(error)}") from error
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
        raise DataError(f"{argument}: writing {target} failed: {describe_os_error(error)}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_outputs(paths, argument: str = "output") -> Iterator[list[Path]]:
    """Like `atomic_output` for several files that belong together (a mask and its overlay): yield
    their temporary paths; publish all of them only if the block succeeds. If a rename fails half
    way, the files already replaced get their previous versions back, so a failure never leaves a
    new mask beside an old overlay, nor deletes a good mask that was there before."""
    targets = [writable_target(path, argument) for path in paths]
    if len({os.path.abspath(target) for target in targets}) != len(targets):
        raise InputError(f"{argument}: two outputs have the same name ({', '.join(map(str, targets))})")
    stagings: list[Path] = []
    try:
        try:
            for target in targets:
                stagings.append(Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent)))
        except OSError as error:
            raise InputError(f"{argument}: cannot write in the folder {target.parent}: "
                             f"{describe_os_error(error)}") from error
        staged = [staging / target.name for staging, target in zip(stagings, targets)]
        try:
            yield staged
            for file, target in zip(staged, targets):
                if not file.is_file():
                    raise DataError(f"{argument}: the writer produced no file for {target}")
            _publish_together(staged, targets, stagings)
        except SegMoTEError as error:  # a writer's message names the temporary file: name the target
            message = str(error)
            for file, target in zip(staged, targets):
                message = message.replace(str(file.parent), str(target.parent))
            if message == str(error):
                raise
            prefix = "" if message.startswith(f"{argument}:") else f"{argument}: "
            raise type(error)(prefix + message) from error
        except OSError as error:
            raise DataError(f"{argument}: writing {', '.join(map(str, targets))} failed: "
                            f"{describe_os_error(error)}") from error
    finally:
        for staging in stagings:
            shutil.rmtree(staging, ignore_errors=True)


def _publish_together(staged: list[Path], targets: list[Path], stagings: list[Path]) -> None:
    previous: list[Path | None] = []
    for target, staging in zip(targets, stagings):
        kept = None
        if target.is_file():
            kept = staging / ".previous"
            try:
                os.link(target, kept)  # a second name for the old file: no copy, same disk
            except OSError:
                shutil.copy2(target, kept)
        previous.append(kept)
    published = []
    try:
        for file, target, staging in zip(staged, targets, stagings):
            for companion in sorted(staging.iterdir()):
                if companion not in (file, staging / ".previous"):
                    os.replace(companion, target.parent / companion.name)
            os.replace(file, target)
            published.append(target)
    except OSError:
        for target, kept in zip(published, previous):
            if kept is not None:
                os.replace(kept, target)
            else:
                target.unlink(missing_ok=True)
        raise
