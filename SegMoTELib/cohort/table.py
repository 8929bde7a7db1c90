"""The cohort table: a CSV with columns `image`, `prompt`, `name` (and optionally `study`).

`image` is a volume file or DICOM folder (relative paths are relative to the table), `prompt` see
`prompts.py`, `name` the segment's name in the output. Each row writes `<study>.seg.nrrd`, where
`study` is the `study` column if given, else the image's file name without its extension. Mistakes
in the table itself (a missing column, a prompt that does not parse, two rows writing the same file)
are reported before anything runs; files that are missing or unreadable are the row's failure.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..names import validate_segment_name
from .row_prompt import RowPrompt, parse_prompt

REQUIRED_COLUMNS = ("image", "prompt", "name")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class CohortRow:
    line: int                  # line of the table (the header is line 1)
    image: str                 # as written in the table
    path: str                  # resolved path of the image
    prompt: RowPrompt
    prompt_text: str           # as written in the table
    name: str                  # segment name
    study: str                 # output file stem

    def output_name(self) -> str:
        return f"{self.study}.seg.nrrd"


def study_name_of(image: str) -> str:
    from ..io import extension_of

    name = Path(image.rstrip("/\\")).name
    extension = extension_of(name)
    stem = name[: len(name) - len(extension)] if extension else name
    return _safe(stem)


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "study"


def read_cohort(path) -> list[CohortRow]:
    table = Path(path).expanduser()
    if not table.is_file():
        raise InputError(f"cohort: {table} is not a file (expected a CSV with columns image,prompt,name)")
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [column.strip() for column in (reader.fieldnames or [])]
            entries = [{key.strip() if key else None: value.strip() if isinstance(value, str) else value
                        for key, value in entry.items()} for entry in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cohort {table}: cannot read it as a CSV ({error})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise InputError(f"cohort {table}: missing column(s) {', '.join(missing)}; expected image,prompt,name "
                         f"(optional study), found {','.join(columns) or 'no header'}")
    rows, writers = [], {}
    for line, entry in enumerate(entries, start=2):
        if entry.get(None):  # csv's place for fields beyond the header
            raise InputError(f"cohort {table}, line {line}: more fields than columns; quote the prompt "
                             f"(\"ras-box:x0,y0,z0,x1,y1,z1\"): its commas otherwise separate fields")
        if not any(entry.get(column) for column in REQUIRED_COLUMNS):
            continue  # a blank line
        image = entry.get("image") or ""
        if not image:
            raise InputError(f"cohort {table}, line {line}: the image is empty")
        try:
            prompt = parse_prompt(entry.get("prompt") or "")
        except InputError as error:
            raise InputError(f"cohort {table}, line {line}: {error}") from None
        name = entry.get("name") or "segment"
        try:  # the name goes into the .seg.nrrd header: the engine's one rule for names
            validate_segment_name(name, "name", ascii_only=True)
        except InputError as error:
            raise InputError(f"cohort {table}, line {line}: {error}") from None
        study = _safe(entry["study"]) if entry.get("study") else study_name_of(image)
        if study in writers:
            raise InputError(f"cohort {table}: lines {writers[study]} and {line} both write {study}.seg.nrrd; "
                             f"add a study column naming each output")
        writers[study] = line
        resolved = Path(image).expanduser()
        if not resolved.is_absolute():
            resolved = table.parent / resolved
        rows.append(CohortRow(line, image, str(resolved), prompt, entry.get("prompt") or "", name, study))
    if not rows:
        raise InputError(f"cohort {table}: no rows")
    return rows
