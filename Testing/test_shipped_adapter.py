"""The shipped adapter: listed in the manifest with its sha256, loaded by default, and far better
than the base decoder with a single click on expert-annotated slices it never saw."""

from __future__ import annotations

import json

import pytest

from conftest import shared_path

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _default_entry() -> tuple[str, dict]:
    from SegMoTELib.resources import load_manifest

    entries = [(name, e) for name, e in load_manifest()["adapters"].items()
               if e.get("default") and e.get("backbone") == "litemedsam"]
    assert len(entries) == 1, "exactly one default adapter for LiteMedSAM"
    return entries[0]


def test_manifest_sha256_matches_the_shipped_file():
    from SegMoTELib.backbones.checkpoints import file_sha256
    from SegMoTELib.resources import resources_dir

    name, entry = _default_entry()
    path = resources_dir() / entry["file"]
    assert path.stat().st_size < 16_000_000, "the shipped adapter stays small (fp16)"
    assert file_sha256(path) == entry["sha256"], name


def test_manifest_and_file_agree_on_backbone_config_and_box_policy():
    from SegMoTELib.modeling.adapter_io import read_adapter
    from SegMoTELib.resources import resources_dir

    _, entry = _default_entry()
    payload = read_adapter(resources_dir() / entry["file"], expected_backbone="litemedsam")
    assert payload["config"].to_dict() == entry["config"]
    assert payload["metadata"]["use_for_boxes"] == entry["use_for_boxes"]
    import torch

    assert all(v.dtype == torch.float16 for v in payload["adapter"].values() if v.is_floating_point())


def test_a_corrupted_copy_is_refused(tmp_path, monkeypatch):
    import shutil

    from SegMoTELib.errors import CheckpointError
    from SegMoTELib.predictor import resolve_default_adapter
    from SegMoTELib.resources import load_manifest, resources_dir

    _, entry = _default_entry()
    copy = tmp_path / "Resources"
    shutil.copytree(resources_dir(), copy)
    damaged = copy / entry["file"]
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setenv("SEGMOTE_RESOURCES", str(copy))
    load_manifest.cache_clear()
    try:
        with pytest.raises(CheckpointError, match="sha256"):
            resolve_default_adapter("litemedsam")
    finally:
        monkeypatch.delenv("SEGMOTE_RESOURCES")
        load_manifest.cache_clear()


# The shipped adapter's click curve on medscribble (17 expert-annotated slices it never saw), measured
# with `segmote evaluate ../shared/data/dev_eval/... --prompt click --clicks 10` on the CPU (MODEL_CARD.md):
# macro Dice after 1 and 3 clicks. The guard allows 5 points for platform differences.
MEDSCRIBBLE_ONE_CLICK, MEDSCRIBBLE_THREE_CLICKS, MARGIN = 0.654, 0.830, 0.05


def test_click_curve_on_medscribble_holds_the_shipped_figures():
    from SegMoTELib.evaluation import decoder_views, evaluate
    from SegMoTELib.predictor import SegMoTEPredictor
    from SegMoTELib.training.evalsets import iter_eval_samples

    predictor = SegMoTEPredictor(device="cpu", cache_size=32)  # the default: the shipped adapter
    assert predictor.uses_adapter and predictor.notice is None
    samples = list(iter_eval_samples(shared_path("dev_eval", "medscribble")))
    report = evaluate(samples, decoder_views(predictor), prompt="click", clicks=3)
    curves = report.macro_curves()
    ours, base = curves["segmote"]["dice_per_click"], curves["base"]["dice_per_click"]
    print(f"\nmedscribble click curve, macro Dice: SegMoTE {[round(100 * v, 1) for v in ours]}, "
          f"base {[round(100 * v, 1) for v in base]} ({len(samples)} targets)\n" + json.dumps(report.per_dataset()))
    assert ours[0] >= MEDSCRIBBLE_ONE_CLICK - MARGIN
    assert ours[2] >= MEDSCRIBBLE_THREE_CLICKS - MARGIN
    assert ours[2] >= ours[0], "correcting clicks made the macro Dice worse"
    assert ours[0] >= base[0] + 0.30
