"""Paired 2D image–mask training data in the `train_pool` layout, split by case.

Layout (shared/data/train_pool and the set `segmote curate` writes): one folder per source
dataset holding ``images/<stem>.png``, ``masks/<stem>.png`` (a label map: 0 background, one value
per target), ``manifest.csv`` with columns ``file, source_case, slice_index, modality,
target_names`` (targets ``;``-separated) and, for multi-label sets, ``labels.json`` mapping each
mask value to its target name. A curated set may add columns: ``dataset`` (the source dataset,
used instead of the folder name), ``label`` (restricts the row to that target, by name or value)
and ``score`` (the curation quality score: the trainer's sampling weight).

Every binary target of every pair is one item: a mask with right lung, left lung and heart gives
three items. The train/val split is by (dataset, source case) through a seeded hash, never by
slice, so neighbouring slices of one volume never sit on both sides, and a case keeps its side
when other data are added.

Prompt-free (PPT) tasks are foreground/background tasks where "the object" needs no prompt; they
are listed in `PROMPT_FREE_DATASETS` below. Where such a task's object is split over several labels
(the two lungs of JSRT), the pair also yields a merged item (target "lungs") marked prompt-free.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError, InputError

REQUIRED_COLUMNS = ("file", "source_case", "modality", "target_names")
SPLITS = ("train", "val", "all")

# Prompt-free (foreground/background) tasks: dataset name -> (task name, component targets).
# The task's object is the union of the component targets present in a pair. Chosen from the
# dataset names of shared/data/train_pool and dev_eval (see `is_prompt_free_target`):
#   dermoscopy skin lesion, chest X-ray lungs, endoscopic polyps, fetal head ultrasound and breast
#   ultrasound lesions (one lesion class per image in these sets). Deliberately left out:
#   edd2020_endoscopy (polyp next to four other lesion classes), liver_us_zenodo and ovarian /
#   kidney-stone ultrasound (several or tiny objects), everything in CT and MRI.
PROMPT_FREE_DATASETS = {
    "ham10000_skin_lesion": ("skin_lesion", ("skin_lesion",)),
    "ph2_dermoscopy": ("skin_lesion", ("skin_lesion",)),
    "ham10000": ("skin_lesion", ("skin_lesion",)),  # dev_eval/ham10000
    "jsrt_scr_chest_xray": ("lungs", ("right_lung", "left_lung")),
    "cvc_clinicdb_polyp": ("polyp", ("polyp",)),
    "cvc_colondb_polyp": ("polyp", ("polyp",)),
    "endoscene_polyp": ("polyp", ("polyp",)),
    "etis_polyp": ("polyp", ("polyp",)),
    "kvasir_seg_polyp": ("polyp", ("polyp",)),
    "hc18_fetal_head_us": ("fetal_head", ("fetal_head",)),
    "busi_breast_us": ("breast_lesion", ("benign_lesion", "malignant_lesion")),
    "busbra_breast_us": ("breast_lesion", ("benign_lesion", "malignant_lesion")),
    "breast_lesions_usg": ("breast_lesion", ("benign_lesion", "malignant_lesion")),
    "bus_uc_breast_us": ("breast_lesion", ("malignant_lesion",)),
    "edd2020_endoscopy": None,  # explicitly not prompt-free
}

# For datasets not listed above (dev_eval sets such as biomedparse_demo, new curated sets):
# (modality, target) pairs that are foreground/background tasks whatever the dataset.
PROMPT_FREE_MODALITY_TARGETS = {
    "dermoscopy": ("skin_lesion", "lesion", "melanoma"),
    "xray": ("lung", "lungs"),
    "endoscopy": ("polyp",),
    "ultrasound": ("fetal_head", "breast_lesion"),
}

_MODALITY_ALIASES = {
    "x_ray": "xray", "xr": "xray", "cr": "xray", "dx": "xray", "us": "ultrasound", "mri": "mr",
    "mri_flair": "mr", "mri_t1_gd": "mr", "rgb_dermoscopy": "dermoscopy",
}


def normalise_name(name: str) -> str:
    """Lower case with spaces, '+' and '-' as '_': 'X-Ray' -> 'x_ray', 'left+lung' -> 'left_lung'."""
    text = str(name).strip().lower()
    for separator in (" ", "+", "-"):
        text = text.replace(separator, "_")
    return text


def modality_family(modality: str) -> str:
    """'X-ray', 'XRAY', 'CR' -> 'xray'; 'US' -> 'ultrasound'; 'MRI-FLAIR' -> 'mr'; others lower case."""
    key = normalise_name(modality)
    return _MODALITY_ALIASES.get(key, key)


def is_prompt_free_target(dataset: str, modality: str, target_name: str) -> bool:
    """Whether segmenting `target_name` in `dataset` is a foreground/background task (PPT).

    A dataset listed in `PROMPT_FREE_DATASETS` decides by its task name and components; any other
    dataset decides by `PROMPT_FREE_MODALITY_TARGETS` (e.g. a dermoscopy 'melanoma', an X-ray 'lung').
    A component is the task's object only in an image where it is the sole component present (a
    single breast lesion class; not one lung beside the other): `PairEntry.prompt_free` carries that
    per-image decision and is what training should use.
    """
    target = normalise_name(target_name)
    key = normalise_name(dataset)
    if key in PROMPT_FREE_DATASETS:
        task = PROMPT_FREE_DATASETS[key]
        return task is not None and (target == task[0] or target in task[1])
    return target in PROMPT_FREE_MODALITY_TARGETS.get(modality_family(modality), ())


def case_split(dataset: str, case: str, val_fraction: float, seed: int = 0) -> str:
    """'val' or 'train' for a case: a seeded hash of (dataset, case), stable across runs and data."""
    digest = hashlib.sha256(f"{seed}|{dataset}|{case}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    return "val" if position < val_fraction else "train"


@dataclass(frozen=True)
class PairEntry:
    """One binary target of one image–mask pair, before any pixel is read."""

    folder: Path
    file: str
    dataset: str
    modality: str
    case: str
    target: str
    labels: tuple[int, ...]  # mask values making up the target; () = every non-zero value
    prompt_free: bool = False
    score: float = 1.0       # curation quality score (a training sampling weight); 1 when absent


@dataclass(frozen=True)
class PairItem:
    """A loaded sample: RGB uint8 image (H, W, 3) and its binary target mask (H, W) bool."""

    image: np.ndarray
    mask: np.ndarray
    dataset: str
    modality: str
    case: str
    target: str
    prompt_free: bool
    file: str


def find_pair_folders(root) -> list[Path]:
    """`root` itself if it holds a manifest.csv, else its sub-folders that do (sorted)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {path}: not found or not a folder")
    if (path / "manifest.csv").is_file():
        return [path]
    folders = sorted(child for child in path.iterdir() if (child / "manifest.csv").is_file())
    if not folders:
        raise DataError(
            f"data folder {path}: no manifest.csv in it or in its sub-folders; expected the train_pool "
            "layout (images/, masks/, manifest.csv)"
        )
    return folders


def _read_labels(folder: Path) -> dict[int, str] | None:
    path = folder / "labels.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(value): str(name) for value, name in raw.items()}
    except (ValueError, AttributeError, OSError) as error:
        raise DataError(f"{path}: expected a JSON object mapping mask values to names ({error})") from error


def _read_manifest(folder: Path) -> list[dict[str, str]]:
    path = folder / "manifest.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable manifest ({error})") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}")
    return rows


def read_mask(path: Path) -> np.ndarray:
    """A label-map mask as a 2D integer array."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("1", "L", "P", "I", "I;16"):
                raise DataError(f"{path}: expected a single-channel label map, got image mode {image.mode}")
            return np.array(image).astype(np.int32, copy=False)
    except OSError as error:
        raise DataError(f"{path}: unreadable mask ({error})") from error


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit image as RGB uint8 (H, W, 3); grey images are replicated over the channels."""
    try:
        with Image.open(path) as image:
            if image.mode in ("I", "I;16", "F"):
                from ..intensity import to_uint8

                grey = to_uint8(np.array(image), modality="OTHER")
                return np.repeat(grey[..., None], 3, axis=2)
            return np.array(image.convert("RGB"))
    except OSError as error:
        raise DataError(f"{path}: unreadable image ({error})") from error


def _row_targets(folder: Path, row: dict[str, str], labels: dict[int, str] | None) -> list[tuple[str, tuple[int, ...]]]:
    """(target name, mask values) for each target of one manifest row."""
    names = [name.strip() for name in (row.get("target_names") or "").split(";") if name.strip()]
    if labels is not None:
        by_name = {name: value for value, name in labels.items()}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise DataError(f"{folder / 'manifest.csv'}: {row['file']} names {unknown}, absent from labels.json")
        targets = [(name, (by_name[name],)) for name in names]
    elif len(names) <= 1:
        targets = [(names[0] if names else "foreground", ())]
    else:
        # Several targets and no labels.json: the mask's values, in increasing order, are the names.
        values = [int(v) for v in np.unique(read_mask(mask_path(folder, row["file"]))) if v]
        if len(values) != len(names):
            raise DataError(
                f"{folder / 'masks' / row['file']}: {len(values)} label values for {len(names)} target names "
                "and no labels.json to pair them"
            )
        targets = [(name, (value,)) for name, value in zip(names, values)]
    chosen = (row.get("label") or "").strip()
    if chosen:
        restricted = [t for t in targets if chosen == t[0] or chosen in {str(v) for v in t[1]}]
        targets = restricted or targets  # a label that names nothing here keeps every target
    return targets


def _score(folder: Path, row: dict[str, str]) -> float:
    text = (row.get("score") or "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{folder / 'manifest.csv'}: {row['file']} has score {text!r}, not a number") from None
    if not value >= 0:
        raise DataError(f"{folder / 'manifest.csv'}: {row['file']} has score {text!r}; expected a number >= 0")
    return value


def _row_entries(folder: Path, row: dict[str, str], labels: dict[int, str] | None) -> list[PairEntry]:
    dataset = (row.get("dataset") or "").strip() or folder.name
    case = (row.get("source_case") or "").strip() or Path(row["file"]).stem
    modality = (row.get("modality") or "").strip() or "unknown"
    score = _score(folder, row)
    targets = _row_targets(folder, row, labels)
    task = PROMPT_FREE_DATASETS.get(normalise_name(dataset))
    components = [t for t in targets if task is not None and normalise_name(t[0]) in task[1]]
    entries = [
        PairEntry(folder, row["file"], dataset, modality, case, name, values,
                  prompt_free=len(components) == 1 and (name, values) == components[0], score=score)
        for name, values in targets
    ]
    if len(components) > 1:
        merged = tuple(sorted(v for _, values in components for v in values))
        entries.append(PairEntry(folder, row["file"], dataset, modality, case, task[0], merged, prompt_free=True,
                                 score=score))
    return entries


def read_folder_entries(folder) -> list[PairEntry]:
    """Every target of every pair listed in one train_pool-layout folder."""
    folder = Path(folder)
    labels = _read_labels(folder)
    entries = []
    for row in _read_manifest(folder):
        if not (row.get("file") or "").strip():
            raise DataError(f"{folder / 'manifest.csv'}: a row has an empty 'file'")
        entries.extend(_row_entries(folder, row, labels))
    return entries


def _resize_longest_side(image: np.ndarray, mask: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    height, width = mask.shape
    if size is None or max(height, width) == size:
        return image, mask
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized_image = np.array(Image.fromarray(image).resize(shape, Image.BILINEAR))
    resized_mask = np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize(shape, Image.NEAREST)) > 0
    return resized_image, resized_mask


def mask_path(folder: Path, image_file: str) -> Path:
    """The mask of images/<file>: masks/<file>, or masks/<stem>.png beside a JPEG image (masks must
    stay lossless)."""
    same_name = folder / "masks" / image_file
    if same_name.exists():
        return same_name
    return folder / "masks" / (Path(image_file).stem + ".png")


def load_entry(entry: PairEntry, image_size: int | None = 256) -> PairItem:
    """Read one entry's image and binary mask, longest side resized to `image_size` (None: as is)."""
    image = read_rgb(entry.folder / "images" / entry.file)
    labels = read_mask(mask_path(entry.folder, entry.file))
    if labels.shape != image.shape[:2]:
        raise DataError(
            f"{mask_path(entry.folder, entry.file)}: mask shape {labels.shape} differs from image shape {image.shape[:2]}"
        )
    mask = labels != 0 if not entry.labels else np.isin(labels, entry.labels)
    image, mask = _resize_longest_side(image, mask, image_size)
    return PairItem(image, mask, entry.dataset, entry.modality, entry.case, entry.target, entry.prompt_free, entry.file)


class PairDataset:
    """Targets of train_pool-layout folders, one side of a case-level split (a torch-style dataset).

    `root_dirs`: one path or a list; each is a train_pool-layout folder or a parent of such folders.
    `split`: "train", "val" or "all"; `val_fraction` of the cases (hash of seed, dataset, case) go
    to "val". Items are `PairItem`s with the longest side resized to `image_size` (None: as stored).
    """

    def __init__(self, root_dirs, split: str = "train", val_fraction: float = 0.1, seed: int = 0,
                 image_size: int | None = 256):
        if split not in SPLITS:
            raise InputError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
        if not 0.0 <= val_fraction <= 1.0:
            raise InputError(f"val_fraction: expected a fraction in [0, 1], got {val_fraction}")
        if image_size is not None and image_size < 8:
            raise InputError(f"image_size: expected at least 8 pixels or None, got {image_size}")
        roots = [root_dirs] if isinstance(root_dirs, (str, Path)) else list(root_dirs)
        if not roots:
            raise InputError("root_dirs: give at least one data folder")
        self.split = split
        self.image_size = image_size
        self.entries = [
            entry
            for root in roots
            for folder in find_pair_folders(root)
            for entry in read_folder_entries(folder)
            if split == "all" or case_split(entry.dataset, entry.case, val_fraction, seed) == split
        ]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> PairItem:
        return load_entry(self.entries[index], self.image_size)

    @property
    def datasets(self) -> list[str]:
        return sorted({entry.dataset for entry in self.entries})

    def counts(self) -> dict[str, int]:
        """Number of items per dataset."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.dataset] = counts.get(entry.dataset, 0) + 1
        return dict(sorted(counts.items()))
