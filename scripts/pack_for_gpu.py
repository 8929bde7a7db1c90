"""Pack training data small enough to travel to a GPU machine (64 MiB limit, weights included).

    python scripts/pack_for_gpu.py curation CURATION_OUT DEST [--per-dataset N] [--quality Q]
    python scripts/pack_for_gpu.py walks VOLUMES3D_ROOT DEST

`curation`: every gate-passing record of a `segmote curate` output (its manifest.csv), in the
train_pool layout one folder per dataset: images as lossy WebP (the model card says so), masks as
the original lossless label maps, manifest rows restricted to the passing label (`label`) with
the record's quality `score`. At most N images per dataset (seeded choice) so that the few sets of
hundreds of near-identical ultrasound frames neither fill the transfer nor dominate training.
Prompt-free sets keep one unrestricted row per image, so their merged targets (both lungs) exist.

`walks`: the training cases of volumes3d (hold-out excluded) as `WalkStack` npz files.
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


def pack_walks(root: Path, destination: Path) -> None:
    from SegMoTELib.training.walks import read_walk_stack, volumes3d_pairs

    destination.mkdir(parents=True, exist_ok=True)
    pairs = volumes3d_pairs(root, "train")
    for pair in pairs:
        stem = pair.image.name.split(".")[0]
        read_walk_stack(pair).save(destination / f"{pair.dataset}__{pair.case}__{stem}.npz")
    (destination / "cases.json").write_text(json.dumps(sorted({f"{p.dataset}/{p.case}" for p in pairs}), indent=1))
    print(f"{len(pairs)} training studies -> {destination}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("curation", "walks"))
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--per-dataset", type=int, default=150)
    parser.add_argument("--quality", type=int, default=85)
    arguments = parser.parse_args()
    if arguments.what == "curation":
        pack_curation(arguments.source, arguments.destination, arguments.per_dataset, arguments.quality)
    else:
        pack_walks(arguments.source, arguments.destination)
