"""Finding curatable data under the SOURCES of a run and cutting it into work units.

Recognised (searched up to three folder levels down; a recognised folder is not searched further):
- 2D pair sets, the `train_pool` layout: `images/` + `masks/` with the same file names, optional
  `manifest.csv` (file, source_case, slice_index, modality, target_names) and `labels.json`
  (label value → name; without it masks must be binary 0/1 or 0/255). A folder holding several
  such sets (the train_pool root) gives one dataset per set.
- 3D studies, in a folder: `<case>_image.<ext>` with `<case>_label.<ext>` (also `_labels`,
  `_seg`, `_mask`), or `images/` (or `imagesTr/`) with `labels/` (or `labelsTr/`) volumes of the
  same name (nnU-Net's `_0000` channel suffix ignored), or LiteMedSAM `.npz` files (`imgs`,
  `gts`). <ext> is any SimpleITK volume format (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd).
  A `labels.json` beside them names label values.
- A studies table `.csv` with columns `image`, `label` and optionally `modality`, `case`,
  `labels` (a labels.json path); relative paths are relative to the table.
- A single `.npz` study.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, InputError
from .fingerprint import inputs_fingerprint

PAIR_BATCH = 64
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_LABEL_TAGS = ("_label", "_labels", "_seg", "_mask")
_MAX_DEPTH = 3


@dataclass(frozen=True)
class PairRow:
    image: str
    mask: str
    case: str
    slice_index: int | None
    modality: str
    target_names: str


@dataclass(frozen=True)
class Study:
    image: str
    label: str
    case: str
    modality: str | None       # None: the run's --modality
    label_names: tuple = ()    # ((value, name), ...)


@dataclass(frozen=True)
class Unit:
    """One piece of work for a worker: a batch of 2D pairs or one 3D study."""

    kind: str                  # "pairs" or "volume"
    source: str
    dataset: str
    items: tuple               # PairRow... or (Study,)
    label_names: tuple = ()    # 2D sets: labels.json as ((value, name), ...); () = binary masks
    key: str = ""              # the journal's key: `identity` and the inputs' fingerprints
    identity: str = ""         # what the unit is (its files, labels, modality, axis), whatever they hold

    @property
    def size(self) -> int:
        return len(self.items)


def volume_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def read_label_names(path: Path) -> tuple:
    """labels.json ({"1": "liver", ...}) as sorted ((1, "liver"), ...); a clear error otherwise."""
    try:
        values = json.loads(path.read_text())
        pairs = tuple(sorted((int(key), str(name)) for key, name in values.items()))
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise DataError(f"labels file {path}: expected a JSON object of label value → name ({error})") from None
    return pairs


def plan_units(sources, modality: str = "auto", axis: int = 0) -> list[Unit]:
    """Work units of all sources, in a deterministic order; an InputError for an empty source.
    Each unit's key changes when any of its files does (`fingerprint.py`)."""
    units: list[Unit] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(f"source {source}: no such file or folder")
        found = _discover(path)
        if not found:
            raise InputError(f"source {source}: nothing to curate found (expected images/ + masks/ pairs, "
                             "3D image/label volumes, .npz studies or a studies .csv)")
        units.extend(found)
    keyed = []
    for unit in units:
        payload = json.dumps([unit.kind, unit.source, unit.dataset, [list(_as_tuple(i)) for i in unit.items],
                              list(unit.label_names), modality if unit.kind == "volume" else None,
                              axis if unit.kind == "volume" else None], default=str)
        identity = hashlib.sha1(payload.encode()).hexdigest()[:16]
        contents = json.dumps([identity, inputs_fingerprint(unit)], default=str)
        key = hashlib.sha1(contents.encode()).hexdigest()[:16]
        keyed.append(Unit(unit.kind, unit.source, unit.dataset, unit.items, unit.label_names, key, identity))
    return keyed


def _as_tuple(item) -> tuple:
    return tuple(getattr(item, name) for name in item.__dataclass_fields__)


def _discover(path: Path) -> list[Unit]:
    source = str(path.resolve())
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return [_volume_unit(source, path.parent.name, _npz_study(path))]
        if path.suffix.lower() == ".csv":
            return [_volume_unit(source, path.stem, study) for study in _studies_table(path)]
        raise InputError(f"source {path}: expected a folder, a .npz study or a studies .csv file")
    return _discover_folder(path, source, 0)


def _discover_folder(folder: Path, source: str, depth: int) -> list[Unit]:
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return _pair_units(folder, source)
    units = [_volume_unit(source, folder.name, study) for study in _folder_studies(folder)]
    if depth < _MAX_DEPTH:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            units.extend(_discover_folder(child, source, depth + 1))
    return units


def _volume_unit(source: str, dataset: str, study: Study) -> Unit:
    return Unit("volume", source, dataset, (study,))


def _pair_units(folder: Path, source: str) -> list[Unit]:
    label_names = read_label_names(folder / "labels.json") if (folder / "labels.json").is_file() else ()
    rows = _manifest_rows(folder) if (folder / "manifest.csv").is_file() else _paired_files(folder)
    rows.sort(key=lambda row: Path(row.image).name)
    return [Unit("pairs", source, folder.name, tuple(rows[start:start + PAIR_BATCH]), label_names)
            for start in range(0, len(rows), PAIR_BATCH)]


def _manifest_rows(folder: Path) -> list[PairRow]:
    path = folder / "manifest.csv"
    try:
        with path.open(newline="") as handle:
            table = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise DataError(f"manifest {path}: cannot read it ({error})") from None
    if table and "file" not in table[0]:
        raise DataError(f"manifest {path}: expected a 'file' column (file, source_case, slice_index, modality, target_names)")
    rows = []
    for entry in table:
        name = (entry.get("file") or "").strip()
        if not name:
            continue
        slice_text = (entry.get("slice_index") or "").strip()
        rows.append(PairRow(str(folder / "images" / name), str(folder / "masks" / name),
                            (entry.get("source_case") or "").strip() or Path(name).stem,
                            int(float(slice_text)) if _is_number(slice_text) else None,
                            (entry.get("modality") or "").strip() or "unknown",
                            (entry.get("target_names") or "").strip()))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _paired_files(folder: Path) -> list[PairRow]:
    masks = {p.stem: p for p in (folder / "masks").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    rows = []
    for image in sorted((folder / "images").iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = masks.get(image.stem, folder / "masks" / image.name)  # a missing mask is logged later
        rows.append(PairRow(str(image), str(mask), image.stem, None, "unknown", ""))
    return rows


def _folder_studies(folder: Path) -> list[Study]:
    label_names = read_label_names(folder / "labels.json") if (folder / "labels.json").is_file() else ()
    studies = []
    files = sorted(p for p in folder.iterdir() if p.is_file())
    volumes = {p.name[:-len(volume_suffix(p))]: p for p in files if volume_suffix(p)}
    for stem, image in volumes.items():
        if stem.endswith("_image"):
            case = stem[:-len("_image")]
            label = next((volumes[case + tag] for tag in _LABEL_TAGS if case + tag in volumes), None)
            if label is not None:
                studies.append(Study(str(image), str(label), case, None, label_names))
    studies += [_npz_study(p, label_names) for p in files if p.suffix.lower() == ".npz"]
    for image_dir, label_dir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if (folder / image_dir).is_dir() and (folder / label_dir).is_dir():
            studies += _matched_volume_folders(folder / image_dir, folder / label_dir, label_names)
    return studies


def _matched_volume_folders(image_dir: Path, label_dir: Path, label_names: tuple) -> list[Study]:
    labels = {p.name[:-len(volume_suffix(p))]: p for p in label_dir.iterdir() if volume_suffix(p)}
    studies = []
    for image in sorted(image_dir.iterdir()):
        suffix = volume_suffix(image)
        if not suffix:
            continue
        case = re.sub(r"_\d{4}$", "", image.name[:-len(suffix)])
        if case in labels:
            studies.append(Study(str(image), str(labels[case]), case, None, label_names))
    return studies


def _npz_study(path: Path, label_names: tuple = ()) -> Study:
    prefix = path.name.split("_")[0].upper()
    modality = prefix if prefix in ("CT", "MR", "MRI", "US", "PET", "XRAY") else None
    return Study(str(path), str(path), path.stem, modality, label_names)


def _studies_table(path: Path) -> list[Study]:
    try:
        with path.open(newline="") as handle:
            table = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise DataError(f"studies table {path}: cannot read it ({error})") from None
    if not table or not {"image", "label"} <= set(table[0]):
        raise DataError(f"studies table {path}: expected columns image and label (optional modality, case, labels)")
    studies = []
    for entry in table:
        image = (path.parent / entry["image"].strip()).resolve()
        label = (path.parent / entry["label"].strip()).resolve()
        names_file = (entry.get("labels") or "").strip()
        names = read_label_names(path.parent / names_file) if names_file else ()
        case = (entry.get("case") or "").strip() or image.name.split(".")[0]
        studies.append(Study(str(image), str(label), case, (entry.get("modality") or "").strip() or None, names))
    return studies
