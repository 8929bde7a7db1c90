"""Pack a curated training set small enough to travel to a GPU machine (64 MiB limit).

Images become JPEG (quality 95), masks 1-bit PNG; the manifest names the JPEG files. Masks stay
lossless. The model card says which runs used such a copy.

    python scripts/pack_for_gpu.py SOURCE_TRAINING_SET DEST_FOLDER
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def pack(source: Path, destination: Path, quality: int = 95) -> None:
    (destination / "images").mkdir(parents=True, exist_ok=True)
    (destination / "masks").mkdir(parents=True, exist_ok=True)
    with (source / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        stem = Path(row["file"]).stem
        with Image.open(source / "images" / row["file"]) as image:
            image.convert("RGB" if image.mode == "RGB" else "L").save(destination / "images" / f"{stem}.jpg",
                                                                       quality=quality)
        with Image.open(source / "masks" / row["file"]) as mask:
            Image.fromarray(np.array(mask) > 0).save(destination / "masks" / f"{stem}.png", optimize=True)
        row["file"] = f"{stem}.jpg"
    with (destination / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for extra in ("labels.json",):
        if (source / extra).exists():
            shutil.copy(source / extra, destination / extra)


if __name__ == "__main__":
    pack(Path(sys.argv[1]), Path(sys.argv[2]))
