"""Loaders of 2D evaluation sets, one per folder layout, yielding `EvalSample`s.

Layouts (`detect_layout` tells them apart):
  * ``train_pool`` -- a train_pool-layout folder (images/, masks/, manifest.csv) or a parent of
    such folders (shared/data/train_pool, a curated set): one sample per target, read through
    `datasets.PairDataset` at the stored size; dataset = folder (or manifest ``dataset`` column).
  * ``medscribble`` -- one folder per case holding ``image.png`` and ``mask_<target>.png``, grouped
    in task folders (dev_eval/medscribble/ACDC/patient004_.../): dataset = "medscribble/ACDC".
  * ``paired`` -- ``images/<stem>.<ext>`` and ``masks/<stem>.png`` with one binary mask per image
    (dev_eval/ham10000): dataset = the folder name.
  * ``biomedparse`` -- ``images/<stem>.png`` and ``masks/<stem>_<target>.png``, several masks per
    image, stem = ``<id>_<modality>_<site>`` (dev_eval/biomedparse_demo): dataset =
    "biomedparse_demo/<modality>" (MRI-FLAIR and MRI-T1-Gd count as MRI).
Images come as RGB uint8 (H, W, 3) at their stored size, masks as bool (H, W); the samples of one
image are consecutive so a predictor's embedding cache serves all its targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError
from .datasets import PairDataset, is_prompt_free_target, load_entry, read_mask, read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUTS = ("train_pool", "medscribble", "paired", "biomedparse")

# Known sets whose files do not say the modality or the target (folder name -> value).
MEDSCRIBBLE_MODALITIES = {"ACDC": "MRI", "SCD": "MRI", "CHAOS": "CT", "BTCV": "CT"}
PAIRED_SETS = {"ham10000": ("dermoscopy", "skin_lesion")}  # folder -> (modality, target)


class EvalSample(NamedTuple):
    dataset: str
    case: str
    target: str
    image: np.ndarray  # RGB uint8 (H, W, 3)
    mask: np.ndarray  # bool (H, W)
    modality: str


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _has_manifest(path: Path) -> bool:
    return (path / "manifest.csv").is_file() or any((c / "manifest.csv").is_file() for c in path.iterdir() if c.is_dir())


def _medscribble_cases(path: Path) -> list[Path]:
    """Folders holding image.png + mask_*.png: the path itself, its children or grandchildren."""
    def is_case(folder: Path) -> bool:
        return (folder / "image.png").is_file() and any(folder.glob("mask_*.png"))

    if is_case(path):
        return [path]
    children = sorted(c for c in path.iterdir() if c.is_dir())
    cases = [c for c in children if is_case(c)]
    cases += [g for c in children for g in sorted(c.iterdir()) if g.is_dir() and is_case(g)]
    return sorted(cases)


def detect_layout(path) -> str:
    """Which of `LAYOUTS` the folder uses; DataError naming the folder and the layouts otherwise."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"DATA {folder}: not found or not a folder")
    if _has_manifest(folder):
        return "train_pool"
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        image_stems = {p.stem for p in _image_files(folder / "images")}
        mask_stems = {p.stem for p in _image_files(folder / "masks")}
        if image_stems and image_stems <= mask_stems:
            return "paired"
        if image_stems and mask_stems:
            return "biomedparse"
    if _medscribble_cases(folder):
        return "medscribble"
    raise DataError(
        f"DATA {folder}: unknown layout; expected a train_pool folder (manifest.csv), case folders with "
        "image.png + mask_<target>.png, or images/ + masks/ (same stem, or <stem>_<target>.png)"
    )


def _binary(mask: np.ndarray) -> np.ndarray:
    # 0/1 and 0/255 masks both occur; anything above half the 8-bit range counts as foreground.
    return mask > (127 if mask.max() > 1 else 0)


def _limited(groups: dict[str, list], max_per_dataset: int | None) -> dict[str, list]:
    if max_per_dataset is None:
        return groups
    return {dataset: items[:max_per_dataset] for dataset, items in groups.items()}


def _train_pool_samples(folder: Path, prompt_free_only, split, val_fraction, seed, max_per_dataset):
    dataset = PairDataset(folder, split=split, val_fraction=val_fraction, seed=seed, image_size=None)
    images: dict[str, dict[tuple, None]] = {}  # dataset -> its images, in file order (dict as ordered set)
    for entry in dataset.entries:
        images.setdefault(entry.dataset, {})[(entry.folder, entry.file)] = None
    chosen = {key for keys in _limited({d: list(k) for d, k in images.items()}, max_per_dataset).values()
              for key in keys}
    for entry in dataset.entries:
        # A merged target (JSRT "lungs") exists for prompt-free use; prompted evaluation keeps the labels.
        wanted = entry.prompt_free if prompt_free_only else len(entry.labels) <= 1
        if wanted and (entry.folder, entry.file) in chosen:
            item = load_entry(entry, image_size=None)
            yield EvalSample(item.dataset, Path(item.file).stem, item.target, item.image, item.mask, item.modality)


def _medscribble_samples(folder: Path, max_per_dataset):
    groups: dict[str, list[Path]] = {}
    for case in _medscribble_cases(folder):
        # Case folders sit in task folders of the set: <set>/<task>/<case>/ -> dataset "<set>/<task>".
        groups.setdefault(f"{case.parent.parent.name}/{case.parent.name}", []).append(case)
    for dataset, cases in _limited(groups, max_per_dataset).items():
        modality = MEDSCRIBBLE_MODALITIES.get(dataset.rsplit("/", 1)[-1], "unknown")
        for case in cases:
            image = read_rgb(case / "image.png")
            for mask_path in sorted(case.glob("mask_*.png")):
                target = mask_path.stem[len("mask_"):]
                yield EvalSample(dataset, case.name, target, image, _checked_mask(mask_path, image), modality)


def _checked_mask(path: Path, image: np.ndarray) -> np.ndarray:
    mask = _binary(read_mask(path))
    if mask.shape != image.shape[:2]:
        raise DataError(f"{path}: mask shape {mask.shape} differs from its image's {image.shape[:2]}")
    return mask


def _paired_samples(folder: Path, max_per_dataset):
    modality, target = PAIRED_SETS.get(folder.name.lower(), ("unknown", "foreground"))
    images = _limited({folder.name: _image_files(folder / "images")}, max_per_dataset)[folder.name]
    masks = {p.stem: p for p in _image_files(folder / "masks")}
    for path in images:
        image = read_rgb(path)
        yield EvalSample(folder.name, path.stem, target, image, _checked_mask(masks[path.stem], image), modality)


def _biomedparse_modality(stem: str) -> str:
    parts = stem.split("_")
    token = parts[1] if len(parts) > 1 else "unknown"
    return "MRI" if token.upper().startswith("MRI") else token


def _biomedparse_owners(images: list[Path], masks: list[Path]) -> dict[Path, list[Path]]:
    """Each image's masks: a mask belongs to the longest image stem it starts with, plus '_'."""
    owned: dict[Path, list[Path]] = {path: [] for path in images}
    by_length = sorted(images, key=lambda p: len(p.stem), reverse=True)
    for mask in masks:
        owner = next((p for p in by_length if mask.stem.startswith(p.stem + "_")), None)
        if owner is not None:
            owned[owner].append(mask)
    return owned


def _biomedparse_samples(folder: Path, max_per_dataset):
    images = _image_files(folder / "images")
    owned = _biomedparse_owners(images, _image_files(folder / "masks"))
    groups: dict[str, list[Path]] = {}
    for path in images:
        if owned[path]:
            groups.setdefault(f"{folder.name}/{_biomedparse_modality(path.stem)}", []).append(path)
    for dataset, paths in _limited(groups, max_per_dataset).items():
        for path in paths:
            image = read_rgb(path)
            for mask_path in owned[path]:
                target = mask_path.stem[len(path.stem) + 1:].replace("+", "_")
                yield EvalSample(dataset, path.stem, target, image, _checked_mask(mask_path, image),
                                 _biomedparse_modality(path.stem))


def iter_eval_samples(path, prompt_free_only: bool = False, split: str = "all", val_fraction: float = 0.1,
                      seed: int = 0, max_per_dataset: int | None = None) -> Iterator[EvalSample]:
    """The samples of one evaluation folder, whatever its layout.

    `prompt_free_only`: only foreground/background targets (for prompt-free evaluation), judged by
    `datasets.is_prompt_free_target` (train_pool sets: per image, see `PairEntry.prompt_free`).
    `split`, `val_fraction`, `seed`: the case-level split of train_pool-layout data (ignored by the
    other layouts, which are evaluation-only sets). `max_per_dataset`: at most that many images
    per dataset (the first ones in file order), for quick runs.
    """
    folder = Path(path).expanduser()
    layout = detect_layout(folder)
    if layout == "train_pool":
        yield from _train_pool_samples(folder, prompt_free_only, split, val_fraction, seed, max_per_dataset)
        return
    if layout == "medscribble":
        samples = _medscribble_samples(folder, max_per_dataset)
    elif layout == "paired":
        samples = _paired_samples(folder, max_per_dataset)
    else:
        samples = _biomedparse_samples(folder, max_per_dataset)
    for sample in samples:
        if not prompt_free_only or is_prompt_free_target(sample.dataset, sample.modality, sample.target):
            yield sample
