"""Pack training data small enough to travel to a GPU machine (64 MiB limit, weights included).

    python scripts/pack_for_gpu.py curation CURATION_OUT DEST [--per-dataset N] [--quality Q]
    python scripts/pack_for_gpu.py walks ROOT [ROOT ...] DEST [--max-side 256] [--no-compact]
    python scripts/pack_for_gpu.py holdout ROOT [ROOT ...] DEST
    python scripts/pack_for_gpu.py val POOL DEST

`curation`: every gate-passing record of a `segmote curate` output (its manifest.csv), in the
train_pool layout one folder per dataset: images as lossy WebP (the model card says so), masks as
the original lossless label maps, manifest rows restricted to the passing label (`label`) with
the record's quality `score`. At most N images per dataset (seeded choice) so that the few sets of
hundreds of near-identical ultrasound frames neither fill the transfer nor dominate training.
Prompt-free sets keep one unrestricted row per image, so their merged targets (both lungs) exist.

`walks`: the training cases of volumes3d-layout folders (each ROOT holds one INVENTORY.json per
set; the hold-out excluded) as `WalkStack` npz files: the labelled extent ± 2 slices along each
study's slice axis, slices at most `--max-side` on their longest side (the model's input size: the
model sees nothing finer) and stored as WebP (labels lossless), so that dozens of studies fit the
transfer beside the weights.

`val`: only the validation cases of a packed pool (`curation` output; the trainer's case split,
which depends on the case alone, so the copy's validation side is the same cases), so the 2D
regression check of an adapter travels in a few MiB beside the 3D hold-out.

`holdout`: the hold-out pairs of the same folders for `segmote evaluate-3d` on a machine without
SimpleITK: per set an INVENTORY.json (every pair marked "split": "holdout") and, per pair, the
image and the label map as LiteMedSAM-layout npz (`imgs` with the geometry; original intensities,
so the volume is mapped to 8 bits as from its NIfTI: CT stays in HU as int16, other images are
stored as the 8-bit image the evaluation makes of them, which it then passes through unchanged;
the new sets are cut to their labelled slices ± 8 along the slice axis).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image


def pack_curation(curation: Path, destination: Path, per_dataset: int, quality: int, seed: int = 0) -> None:
    from SegMoTELib.training.datasets import PROMPT_FREE_DATASETS, normalise_name

    rows = [r for r in csv.DictReader((curation / "manifest.csv").open()) if r["passed"] in ("True", "true", "1")]
    by_dataset: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_dataset[row["dataset"]][row["image_file"]].append(row)
    generator = random.Random(seed)
    images = 0
    for dataset, files in sorted(by_dataset.items()):
        chosen = sorted(files)
        if len(chosen) > per_dataset:
            chosen = sorted(generator.sample(chosen, per_dataset))
        source_folder = Path(files[chosen[0]][0]["image_file"]).resolve().parent.parent
        folder = destination / dataset
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        if (source_folder / "labels.json").exists():
            shutil.copy(source_folder / "labels.json", folder / "labels.json")
        source_rows = {r["file"]: r for r in csv.DictReader((source_folder / "manifest.csv").open())}
        prompt_free = PROMPT_FREE_DATASETS.get(normalise_name(dataset)) is not None
        out_rows = []
        for image_file in chosen:
            records = files[image_file]
            name = Path(image_file).name
            stem = Path(name).stem
            with Image.open(image_file) as image:
                mode = "RGB" if len(image.getbands()) >= 3 else "L"
                image.convert(mode).save(folder / "images" / f"{stem}.webp", quality=quality, method=6)
            shutil.copy(records[0]["mask_file"], folder / "masks" / f"{stem}.png")
            base = dict(source_rows[name])
            base["file"] = f"{stem}.webp"
            labels = [""] if prompt_free else sorted({r["mask_value"] for r in records}, key=int)
            score = max(float(r["score"]) for r in records)
            for label in labels:
                out_rows.append({**base, "dataset": dataset, "label": label, "score": f"{score:.4f}"})
            images += 1
        with (folder / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(out_rows[0]))
            writer.writeheader()
            writer.writerows(out_rows)
    print(f"{images} images of {len(by_dataset)} datasets from {len(rows)} passing records -> {destination}")


def pack_walks(roots: list[Path], destination: Path, max_side: int | None, compact: bool, quality: int,
               max_per_set: int | None, seed: int = 0) -> None:
    from SegMoTELib.training import walks
    from SegMoTELib.training.walks import read_walk_stack, volumes3d_pairs

    walks.WEBP_QUALITY = quality
    destination.mkdir(parents=True, exist_ok=True)
    pairs = [pair for root in roots for pair in volumes3d_pairs(root, "train")]
    if max_per_set is not None:  # a seeded choice of studies per set, to fit the transfer
        generator = random.Random(seed)
        by_set: dict[str, list] = defaultdict(list)
        for pair in pairs:
            by_set[pair.dataset].append(pair)
        pairs = [p for group in by_set.values()
                 for p in (group if len(group) <= max_per_set else generator.sample(group, max_per_set))]
    sizes: dict[str, int] = defaultdict(int)
    for pair in pairs:
        stem = pair.image.name.split(".")[0]
        case = pair.case.replace(" ", "_")
        path = destination / f"{pair.dataset}__{case}__{stem}.npz"
        read_walk_stack(pair, max_side).save(path, compact=compact)
        sizes[pair.dataset] += path.stat().st_size
    (destination / "cases.json").write_text(json.dumps(sorted({f"{p.dataset}/{p.case}" for p in pairs}), indent=1))
    for dataset, size in sorted(sizes.items()):
        print(f"  {dataset}: {sum(p.dataset == dataset for p in pairs)} studies, {size / 2**20:.1f} MiB")
    print(f"{len(pairs)} training studies -> {destination} ({sum(sizes.values()) / 2**20:.1f} MiB)")


def pack_val(pool: Path, destination: Path, val_fraction: float = 0.1, seed: int = 0) -> None:
    from SegMoTELib.training.datasets import PairDataset, mask_path

    entries = PairDataset([pool], split="val", val_fraction=val_fraction, seed=seed).entries
    by_folder: dict[Path, set[str]] = defaultdict(set)
    for entry in entries:
        by_folder[entry.folder].add(entry.file)
    size = 0
    for folder, files in sorted(by_folder.items()):
        out = destination / folder.name
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "masks").mkdir(parents=True, exist_ok=True)
        for extra in ("labels.json",):
            if (folder / extra).exists():
                shutil.copy(folder / extra, out / extra)
        for name in sorted(files):
            shutil.copy(folder / "images" / name, out / "images" / name)
            shutil.copy(mask_path(folder, name), out / "masks" / mask_path(folder, name).name)
            size += (out / "images" / name).stat().st_size + (out / "masks" / mask_path(folder, name).name).stat().st_size
        with (folder / "manifest.csv").open() as source, (out / "manifest.csv").open("w", newline="") as target:
            reader = csv.DictReader(source)
            writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(row for row in reader if row["file"] in files)
    print(f"{len(entries)} validation targets of {len(by_folder)} datasets -> {destination} ({size / 2**20:.1f} MiB)")


def _compact(volume, labels: bool = False):
    """The voxels in a smaller type that the evaluation reads the same: label maps as the smallest
    integer type; CT (HU) as int16, since its window and the walk's "CT" family are read from the
    values; every other image as the 8-bit image the evaluation would make of it (`to_uint8` under
    "auto": percentiles), which "auto" then passes through unchanged."""
    import numpy as np

    from SegMoTELib.intensity import IntensityMapping, looks_like_ct, to_uint8

    array = volume.array
    if labels:
        values = np.rint(array).astype(np.int64)
        kind = np.uint8 if values.min() >= 0 and values.max() <= 255 else np.int32
        return volume.with_array(values.astype(kind))
    if (volume.modality or "").upper() == "CT" or looks_like_ct(array):
        return volume.with_array(np.clip(np.rint(array), -32768, 32767).astype(np.int16), modality=volume.modality)
    return volume.with_array(to_uint8(array, IntensityMapping(modality=volume.modality or "auto")))


def _crop_to_slices(image, labels, axis: int, margin: int):
    """Image and labels cut along voxel `axis` to the labelled slices ± `margin` (geometry kept right)."""
    import numpy as np

    from SegMoTELib.volume import Volume

    fixed = 2 - axis  # array dimension of voxel axis `axis`
    present = np.flatnonzero(np.rint(labels.array).any(axis=tuple(d for d in range(3) if d != fixed)))
    first, last = max(int(present[0]) - margin, 0), min(int(present[-1]) + margin, labels.array.shape[fixed] - 1)
    take = [slice(None)] * 3
    take[fixed] = slice(first, last + 1)
    offset = [0, 0, 0]
    offset[axis] = first
    origin = (image.ijk_to_lps @ np.array([*offset, 1.0]))[:3]

    def cut(volume):
        return Volume(volume.array[tuple(take)], origin, volume.spacing, volume.direction_lps, modality=volume.modality)

    return cut(image), cut(labels)


CROP_MARGIN = 8  # slices kept beyond a new hold-out structure's ends (room to measure a walk's overrun)


def pack_holdout(roots: list[Path], destination: Path, max_per_set: dict | None = None) -> None:
    """The hold-out of every set; the sets with a "split" field (the new ones) are cut to their labelled
    slices ± CROP_MARGIN along the slice axis (volumes3d's are kept whole, so its figures stay comparable);
    `max_per_set` {set: n} keeps the first n hold-out pairs of a set."""
    from SegMoTELib.io import read_labelmap, read_volume
    from SegMoTELib.io.npz import write_npz_case
    from SegMoTELib.volume_cases import INVENTORY, is_held_out

    total = 0
    for root in roots:
        folders = [root] if (root / INVENTORY).is_file() else sorted(p.parent for p in root.glob(f"*/{INVENTORY}"))
        for folder in folders:
            inventory = json.loads((folder / INVENTORY).read_text())
            dataset = str(inventory.get("dataset") or folder.name)
            held = [p for p in inventory["pairs"] if is_held_out(dataset, p, inventory["pairs"], unknown=False)]
            held = held[:(max_per_set or {}).get(dataset, len(held))]
            if not held:
                continue
            out = destination / dataset
            out.mkdir(parents=True, exist_ok=True)
            pairs = []
            for pair in held:
                stem = f"{pair['case']}_{pair.get('frame', '')}".replace(" ", "_").strip("_")
                image, labels = read_volume(folder / pair["image"]["path"]), read_labelmap(folder / pair["label"]["path"])
                if "split" in pair:
                    image, labels = _crop_to_slices(image, labels, int(pair["slice_axis_itk"]), CROP_MARGIN)
                for name, volume in ((f"{stem}_image.npz", _compact(image)),
                                     (f"{stem}_label.npz", _compact(labels, labels=True))):
                    write_npz_case(out / name, volume)
                    total += (out / name).stat().st_size
                pairs.append({**{k: v for k, v in pair.items() if k not in ("image", "label")}, "split": "holdout",
                              "image": {"path": f"{stem}_image.npz"}, "label": {"path": f"{stem}_label.npz"}})
            names = inventory.get("label_names") or {}
            (out / INVENTORY).write_text(json.dumps({"dataset": dataset, "label_names": names, "pairs": pairs}, indent=1))
            print(f"  {dataset}: {len(pairs)} hold-out pairs")
    print(f"hold-out -> {destination} ({total / 2**20:.1f} MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("curation", "walks", "holdout", "val"))
    parser.add_argument("paths", type=Path, nargs="+", help="source folder(s), then the destination")
    parser.add_argument("--per-dataset", type=int, default=150)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--max-side", type=int, default=256, help="walks: longest slice side kept (0: as stored)")
    parser.add_argument("--no-compact", action="store_true", help="walks: slices lossless instead of WebP")
    parser.add_argument("--walk-quality", type=int, default=75, help="walks: WebP quality of the slices")
    parser.add_argument("--max-per-set", type=int, default=None, help="walks: at most this many studies per set")
    parser.add_argument("--holdout-limits", default="", metavar="SET=N,...",
                        help="holdout: keep the first N hold-out pairs of these sets (to fit the transfer)")
    arguments = parser.parse_args()
    *sources, target = arguments.paths
    if not sources:
        parser.error("give the source folder(s) and the destination")
    if arguments.what == "curation":
        pack_curation(sources[0], target, arguments.per_dataset, arguments.quality)
    elif arguments.what == "val":
        pack_val(sources[0], target)
    elif arguments.what == "walks":
        pack_walks(sources, target, arguments.max_side or None, not arguments.no_compact, arguments.walk_quality,
                   arguments.max_per_set)
    else:
        limits = dict(item.split("=") for item in arguments.holdout_limits.split(",") if item)
        pack_holdout(sources, target, {name: int(count) for name, count in limits.items()})
