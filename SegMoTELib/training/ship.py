"""Ship a trained adapter as the default: fp16 copy in Resources/adapters + manifest entry.

    python -m SegMoTELib.training.ship ADAPTER --name NAME --box-eval EVAL_BOX_JSON

`use_for_boxes` is decided from a `segmote evaluate --prompt box` JSON of the validation split:
the adapter serves boxes only if its macro Dice is not below the base decoder's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..backbones.checkpoints import file_sha256
from ..errors import InputError
from ..modeling.adapter_io import read_adapter, save_adapter
from ..resources import MANIFEST_NAME, load_manifest, resources_dir


def boxes_decision(box_eval: dict) -> tuple[bool, str]:
    macro = box_eval["macro"]
    if macro.get("segmote") is None or macro.get("base") is None:
        raise InputError("box evaluation: needs macro Dice of both the segmote and the base decoder")
    ours, base = 100 * macro["segmote"], 100 * macro["base"]
    if ours >= base:
        return True, f"validation box Dice {ours:.1f} >= base decoder {base:.1f}"
    return False, f"validation box Dice {ours:.1f} < base decoder {base:.1f}: boxes keep the base decoder"


def ship(adapter: Path, name: str, box_eval_path: Path, notes: dict | None = None) -> dict:
    payload = read_adapter(adapter)
    use_for_boxes, reason = boxes_decision(json.loads(Path(box_eval_path).read_text()))
    metadata = dict(payload["metadata"], use_for_boxes=use_for_boxes, boxes_reason=reason, **(notes or {}))
    folder = resources_dir()
    relative = Path("adapters") / f"{name}.pt"
    save_adapter(folder / relative, payload["adapter"], payload["config"], payload["backbone"],
                 decoder_state=payload["decoder"], metadata=metadata, half=True)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for entry in manifest["adapters"].values():
        if entry.get("backbone") == payload["backbone"]:
            entry["default"] = False
    manifest["adapters"][name] = {
        "file": str(relative), "sha256": file_sha256(folder / relative), "backbone": payload["backbone"],
        "config": payload["config"].to_dict(), "use_for_boxes": use_for_boxes, "boxes_reason": reason,
        "license": "research use only (trained on non-commercial data sets, see MODEL_CARD.md)",
        "card": "MODEL_CARD.md", "default": True,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    load_manifest.cache_clear()
    return manifest["adapters"][name]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter")
    parser.add_argument("--name", required=True)
    parser.add_argument("--box-eval", required=True, help="segmote evaluate --prompt box JSON (validation split)")
    args = parser.parse_args(argv)
    print(json.dumps(ship(Path(args.adapter), args.name, Path(args.box_eval)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
