"""Labelled volumes for 3D evaluation: where they are, which structures they hold, which are held out.

A `VolumeCase` is one image with a label map on the same grid (label value = structure). Cases come
from:
  * a folder with an `INVENTORY.json` (the `../shared/data/volumes3d` layout: `pairs` with image and
    label paths, `label_names`, per-pair fields), or a parent of such folders;
  * a LiteMedSAM `.npz` holding `imgs` and `gts`;
  * an explicit (image, label map) pair of NIfTI / NRRD / MHA files.

The hold-out of `volumes3d` is the one its README suggests ("A reasonable hold-out"). The README
states it in prose, not in a machine-readable field, so it is transcribed here, one rule per
dataset, each reading only fields that INVENTORY.json holds (the case name, `deepmedic_split`);
a dataset the rules do not know is refused rather than guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import DataError, InputError

INVENTORY = "INVENTORY.json"
SPLITS = ("all", "holdout", "train")


def _last_ids(count: int) -> Callable[[dict, list[dict]], bool]:
    """The pairs whose case number is among the `count` highest of the dataset ("last 4 ids")."""

    def rule(pair: dict, pairs: list[dict]) -> bool:
        numbers = sorted({_case_number(p["case"]) for p in pairs})
        return _case_number(pair["case"]) in numbers[-count:]

    return rule


def _case_number(case: str) -> int:
    digits = re.findall(r"\d+", case)
    if not digits:
        raise DataError(f"INVENTORY.json: case {case!r} has no number; the hold-out rule needs one")
    return int(digits[-1])


def _cases(*names: str) -> Callable[[dict, list[dict]], bool]:
    return lambda pair, pairs: pair["case"] in names


# ../shared/data/volumes3d/README.md, "A reasonable hold-out" (by case, never by slice or frame).
HOLDOUT_RULES: dict[str, Callable[[dict, list[dict]], bool]] = {
    "acdc_cine_mri": _cases("patient069", "patient093"),
    "msd_hippocampus_mri": _last_ids(4),
    "brats2015_deepmedic_mri": lambda pair, pairs: pair.get("deepmedic_split") == "test",
    "ibsi_sts_ct": _cases("STS_035", "STS_042"),
    "chaos_t2_mri": _cases("CHAOS_MR_39"),
    "sct_spinal_cord_mri": lambda pair, pairs: True,  # a single subject: test only
}


def is_held_out(dataset: str, pair: dict, pairs: list[dict], unknown: bool | None = None) -> bool:
    """Whether a pair of an INVENTORY.json is on the hold-out side: its own "split" field
    ("train" / "holdout") when it has one, else the volumes3d rule of its dataset. A dataset with
    neither gives `unknown` (None: refused)."""
    split = pair.get("split")
    if split is not None:
        if split not in ("train", "holdout"):
            raise DataError(f"INVENTORY.json: pair {pair.get('case')!r} has split {split!r}; expected train or holdout")
        return split == "holdout"
    rule = HOLDOUT_RULES.get(dataset)
    if rule is None:
        if unknown is None:
            raise InputError(f"--split: {dataset} has no suggested hold-out (no 'split' field in its pairs and no "
                             f"rule; known: {', '.join(HOLDOUT_RULES)}); use --split all")
        return unknown
    return bool(rule(pair, pairs))


@dataclass
class VolumeCase:
    """One image and its label map (read on first use: loading is cheap next to embedding)."""

    dataset: str
    case: str
    image_path: Path
    label_path: Path | None          # None: the labels live in the image file (npz `gts`)
    names: dict[int, str] = field(default_factory=dict)  # label value -> structure name

    @cached_property
    def _loaded(self):
        from .io import read_labelmap, read_npz_case, read_volume

        if self.label_path is None:
            image, labels = read_npz_case(self.image_path)
            if labels is None:
                raise DataError(f"{self.image_path}: no 'gts' label map in the npz; nothing to evaluate against")
        else:
            image, labels = read_volume(self.image_path), read_labelmap(self.label_path)
        if image.rgb:
            raise DataError(f"{self.image_path}: an RGB image; 3D evaluation needs a grey-level volume")
        if image.array.shape != labels.array.shape:
            raise DataError(f"{self.label_path}: label map of {labels.array.shape[::-1]} voxels (i, j, k) does not "
                            f"match the image {self.image_path} of {image.array.shape[::-1]}")
        if not (np.allclose(image.spacing, labels.spacing, rtol=1e-3)
                and np.allclose(image.origin_lps, labels.origin_lps, atol=1e-2 * float(min(image.spacing)))
                and np.allclose(image.direction_lps, labels.direction_lps, atol=1e-3)):
            raise DataError(f"{self.label_path}: label map geometry (spacing, origin or direction) differs from "
                            f"the image {self.image_path}; resample it onto the image grid first")
        return image, labels

    @property
    def image(self):
        return self._loaded[0]

    @property
    def labels(self) -> np.ndarray:
        """Integer label values [k, j, i] on the image grid."""
        return np.rint(self._loaded[1].array).astype(np.int64, copy=False)

    def release(self) -> None:
        """Forget the voxels (evaluation goes volume by volume)."""
        self.__dict__.pop("_loaded", None)

    def structure_name(self, value: int) -> str:
        return self.names.get(int(value), f"label {int(value)}")


# --- label names ----------------------------------------------------------------------------------
def read_label_names(path, key: str | None = None) -> dict[int, str]:
    """{value: name} from a JSON object mapping label values to names, or one such object under `key`
    of a JSON object holding several (e.g. TotalSegmentator's class map: "total", "total_mr")."""
    source = Path(path).expanduser()
    try:
        table = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DataError(f"--label-names: {source}: no such file") from error
    except (OSError, ValueError) as error:
        raise DataError(f"--label-names: {source}: not a readable JSON file ({error})") from error
    if not isinstance(table, dict):
        raise DataError(f"--label-names: {source}: expected a JSON object of label value -> name")
    nested = [name for name, value in table.items() if isinstance(value, dict)]
    if key is not None:
        if key not in nested:
            raise InputError(f"--label-names-key: {key!r} is not a table of {source}; it holds "
                             f"{', '.join(nested) or 'no nested tables'}")
        table = table[key]
    elif nested:
        raise InputError(f"--label-names: {source} holds several tables ({', '.join(nested)}); "
                         f"choose one with --label-names-key")
    return _as_names(table, str(source))


def _as_names(table: dict, where: str) -> dict[int, str]:
    names = {}
    for value, name in table.items():
        try:
            names[int(value)] = str(name)
        except (TypeError, ValueError) as error:
            raise DataError(f"{where}: label {value!r} is not an integer label value") from error
    return names


# --- finding cases --------------------------------------------------------------------------------
def inventory_cases(folder, split: str = "all") -> list[VolumeCase]:
    """The pairs of a folder's INVENTORY.json, restricted to a side of the suggested hold-out."""
    if split not in SPLITS:
        raise InputError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    folder = Path(folder)
    inventory = _read_inventory(folder / INVENTORY)
    dataset = str(inventory.get("dataset") or folder.name)
    pairs = inventory["pairs"]
    if split != "all":
        pairs = [pair for pair in pairs if is_held_out(dataset, pair, inventory["pairs"]) == (split == "holdout")]
    names = _as_names(inventory.get("label_names") or {}, str(folder / INVENTORY))
    cases = []
    for pair in pairs:
        case_names = dict(names)
        if "structure" in pair and len(pair["label"].get("labels", {})) == 1:  # SCT: one label, named per pair
            case_names[int(next(iter(pair["label"]["labels"])))] = str(pair["structure"])
        suffix = f" frame {pair['frame']}" if "frame" in pair else ""
        cases.append(VolumeCase(dataset, f"{pair['case']}{suffix}", folder / pair["image"]["path"],
                                folder / pair["label"]["path"], case_names))
    return cases


def _read_inventory(path: Path) -> dict:
    try:
        inventory = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable inventory ({error})") from error
    pairs = inventory.get("pairs") if isinstance(inventory, dict) else None
    if not isinstance(pairs, list) or not all(
            isinstance(p, dict) and "case" in p and "path" in p.get("image", {}) and "path" in p.get("label", {})
            for p in pairs):
        raise DataError(f"{path}: expected an object with 'pairs', each with 'case', 'image.path' and 'label.path'")
    return inventory


def find_cases(data: Iterable, pairs: Iterable = (), split: str = "all",
               names: dict[int, str] | None = None) -> list[VolumeCase]:
    """Cases from DATA items (inventory folders, their parents, npz files) and explicit
    (image, label map) pairs; `names` names the structures of cases that come without names."""
    names, pairs = names or {}, list(pairs)
    if split != "all" and pairs:
        raise InputError(f"--split {split}: only inventory folders have a suggested hold-out; --pair cases "
                         f"have none (use --split all)")
    cases: list[VolumeCase] = []
    for item in data:
        path = Path(item).expanduser()
        if (path / INVENTORY).is_file():
            cases += inventory_cases(path, split)
        elif path.is_dir():
            children = sorted(child for child in path.iterdir() if (child / INVENTORY).is_file())
            if not children:
                raise DataError(f"{path}: no {INVENTORY} in it or in its sub-folders; give an inventory folder, "
                                f"an .npz with 'gts' or --pair IMAGE LABELS")
            for child in children:
                cases += inventory_cases(child, split)
        elif path.is_file() and path.name.endswith(".npz"):
            cases.append(VolumeCase(path.parent.name, path.name[:-len(".npz")], path, None, dict(names)))
        elif path.exists():
            raise DataError(f"{path}: not an inventory folder or an .npz; give a volume with its label map as "
                            f"--pair IMAGE LABELS")
        else:
            raise DataError(f"{path}: no such file or folder")
    for image, labels in pairs:
        image, labels = Path(image).expanduser(), Path(labels).expanduser()
        for path in (image, labels):
            if not path.is_file():
                raise DataError(f"--pair: {path}: no such file")
        cases.append(VolumeCase(image.parent.name, _stem(image), image, labels, dict(names)))
    return cases


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npz"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return path.stem
