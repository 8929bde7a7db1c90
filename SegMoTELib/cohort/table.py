"""The cohort table: a CSV with columns `image`, `prompt`, `name` (and optionally `study`).

`image` is a volume file or DICOM folder (relative paths are relative to the table), `prompt` see
`row_prompt.py`, `name` the segment's name in the output. Rows write `<study>.seg.nrrd`, where
`study` is the `study` column if given, else the image's file name without its extension; the rows
of one study (one structure each) become the segments of that one file. Mistakes in the table
itself (a missing column, no rows) stop everything; a row's own mistake (a prompt that does not
parse, a bad name, a segment name used twice in one study, one study name for two images) makes
that row a `RowProblem`, listed with every other bad row while the good rows can still run.
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

    def describe(self) -> str:
        return f"line {self.line} ({self.study}, {self.name})"


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot run, and why (one line)."""

    line: int
    image: str
    prompt_text: str
    name: str
    study: str
    error: str


@dataclass(frozen=True)
class CohortTable:
    path: Path
    rows: list                 # CohortRow..., in table order
    problems: list             # RowProblem..., in table order

    @property
    def count(self) -> int:
        return len(self.rows) + len(self.problems)


def study_name_of(image: str) -> str:
    from ..io import extension_of

    name = Path(image.rstrip("/\\")).name
    extension = extension_of(name)
    stem = name[: len(name) - len(extension)] if extension else name
    return _safe(stem)


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "study"


def read_cohort(path) -> CohortTable:
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
    rows, problems = [], []
    images_of: dict[str, tuple[int, str]] = {}   # study -> (first line, resolved image)
    segments_of: dict[tuple[str, str], int] = {}  # (study, name) -> line
    for line, entry in enumerate(entries, start=2):
        if not any(entry.get(column) for column in REQUIRED_COLUMNS) and not entry.get(None):
            continue  # a blank line
        image, prompt_text = entry.get("image") or "", entry.get("prompt") or ""
        name = entry.get("name") or "segment"
        study = _safe(entry["study"]) if entry.get("study") else study_name_of(image) if image else ""
        try:
            row = _row(table, line, entry, image, prompt_text, name, study)
            first, first_image = images_of.setdefault(study, (line, row.path))
            if first_image != row.path:
                raise InputError(f"lines {first} and {line} both write {study}.seg.nrrd from different images; "
                                 f"add a study column naming each output")
            earlier = segments_of.setdefault((study, name), line)
            if earlier != line:
                raise InputError(f"line {earlier} already writes the segment {name!r} into {study}.seg.nrrd; "
                                 f"give each structure of a study its own name")
            rows.append(row)
        except InputError as error:
            problems.append(RowProblem(line, image, prompt_text, name, study, str(error)))
    if not rows and not problems:
        raise InputError(f"cohort {table}: no rows")
    return CohortTable(table, rows, problems)


def _row(table: Path, line: int, entry: dict, image: str, prompt_text: str, name: str, study: str) -> CohortRow:
    if entry.get(None):  # csv's place for fields beyond the header
        raise InputError("more fields than columns; quote the prompt (\"ras-box:x0,y0,z0,x1,y1,z1\"): its "
                         "commas otherwise separate fields")
    if not image:
        raise InputError("the image is empty")
    prompt = parse_prompt(prompt_text)
    validate_segment_name(name, "name", ascii_only=True)  # the name goes into the .seg.nrrd header
    resolved = Path(image).expanduser()
    if not resolved.is_absolute():
        resolved = table.parent / resolved
    return CohortRow(line, image, str(resolved), prompt, prompt_text, name, study)
