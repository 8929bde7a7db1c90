"""Paired training data (SegMoTELib.training.datasets): targets, case-level split, prompt-free flags."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from SegMoTELib.errors import DataError, InputError
from SegMoTELib.training.datasets import (
    PairDataset,
    case_split,
    is_prompt_free_target,
    read_folder_entries,
)


@pytest.fixture(scope="module")
def pool():
    return shared_path("train_pool")


@pytest.fixture(scope="module")
def splits(pool):
    return {split: PairDataset(pool, split=split) for split in ("train", "val", "all")}


def case_keys(dataset):
    return {(entry.dataset, entry.case) for entry in dataset.entries}


def test_split_never_puts_one_case_on_both_sides(splits):
    train, val, everything = splits["train"], splits["val"], splits["all"]
    assert not case_keys(train) & case_keys(val)
    assert len(train) + len(val) == len(everything)
    assert case_keys(train) | case_keys(val) == case_keys(everything)
    # Datasets with many slices per case (CAMUS, HC18, NIH pancreas): every slice of a case together.
    sides = defaultdict(set)
    for name, dataset in (("train", train), ("val", val)):
        for entry in dataset.entries:
            sides[(entry.dataset, entry.case)].add(name)
    assert all(len(side) == 1 for side in sides.values())
    multi_slice = [key for key, count in
                   _slices_per_case(everything).items() if count > 1 and key[0] == "nih_pancreas_ct"]
    assert multi_slice, "nih_pancreas_ct should have cases with several slices"


def _slices_per_case(dataset):
    counts = defaultdict(set)
    for entry in dataset.entries:
        counts[(entry.dataset, entry.case)].add(entry.file)
    return {key: len(files) for key, files in counts.items()}


def test_split_is_about_the_requested_fraction_deterministic_and_seeded(pool, splits):
    cases = case_keys(splits["all"])
    fraction = len(case_keys(splits["val"])) / len(cases)
    assert 0.07 < fraction < 0.13
    again = PairDataset(pool, split="val")
    assert again.entries == splits["val"].entries
    other_seed = PairDataset(pool, split="val", seed=1)
    assert case_keys(other_seed) != case_keys(splits["val"])
    assert case_split("ds", "case-7", 0.1, 0) == case_split("ds", "case-7", 0.1, 0)
    assert case_split("ds", "case-7", 0.0, 0) == "train" and case_split("ds", "case-7", 1.0, 0) == "val"


def test_multi_label_pair_gives_one_binary_target_per_label(pool):
    dataset = PairDataset(pool / "acdc_cardiac_mri", split="all")
    labels = json.loads((pool / "acdc_cardiac_mri" / "labels.json").read_text())
    first = dataset.entries[0].file
    items = [dataset[i] for i, entry in enumerate(dataset.entries) if entry.file == first]
    stored = np.array(Image.open(pool / "acdc_cardiac_mri" / "masks" / first))
    assert {item.target for item in items} == {labels[str(v)] for v in np.unique(stored) if v}
    for item in items:
        value = int({name: v for v, name in labels.items()}[item.target])
        assert item.image.dtype == np.uint8 and item.image.shape == (*stored.shape, 3)
        assert item.mask.dtype == bool and np.array_equal(item.mask, stored == value)
        assert item.modality == "MRI" and item.dataset == "acdc_cardiac_mri" and not item.prompt_free
    assert np.array_equal(np.logical_or.reduce([item.mask for item in items]), stored > 0)


def test_prompt_free_targets_in_the_pool(pool):
    entries = read_folder_entries(pool / "jsrt_scr_chest_xray")
    first = [entry for entry in entries if entry.file == entries[0].file]
    flags = {entry.target: entry.prompt_free for entry in first}
    assert flags == {"right_lung": False, "left_lung": False, "heart": False, "lungs": True}
    dataset = PairDataset(pool / "jsrt_scr_chest_xray", split="all")
    lungs = next(dataset[i] for i, e in enumerate(dataset.entries) if e.target == "lungs")
    stored = np.array(Image.open(pool / "jsrt_scr_chest_xray" / "masks" / lungs.file))
    assert np.array_equal(lungs.mask, (stored == 1) | (stored == 2))
    assert all(entry.prompt_free for entry in read_folder_entries(pool / "busi_breast_us"))
    assert not any(entry.prompt_free for entry in read_folder_entries(pool / "chaos_ct_liver"))
    assert not any(entry.prompt_free for entry in read_folder_entries(pool / "edd2020_endoscopy"))


def test_is_prompt_free_target_table_and_modality_rule():
    assert is_prompt_free_target("ham10000_skin_lesion", "dermoscopy", "skin_lesion")
    assert is_prompt_free_target("kvasir_seg_polyp", "endoscopy", "polyp")
    assert is_prompt_free_target("hc18_fetal_head_us", "ultrasound", "fetal_head")
    assert is_prompt_free_target("jsrt_scr_chest_xray", "X-ray", "lungs")
    assert not is_prompt_free_target("jsrt_scr_chest_xray", "X-ray", "heart")
    assert not is_prompt_free_target("edd2020_endoscopy", "endoscopy", "polyp")
    assert not is_prompt_free_target("chaos_ct_liver", "CT", "liver")
    # dev_eval sets, by modality and target name:
    assert is_prompt_free_target("biomedparse_demo/X-Ray", "X-Ray", "lung")
    assert is_prompt_free_target("biomedparse_demo/dermoscopy", "dermoscopy", "melanoma")
    assert not is_prompt_free_target("biomedparse_demo/X-Ray", "X-Ray", "COVID-19_infection")
    assert not is_prompt_free_target("medscribble/CHAOS", "CT", "liver")


def write_pair_folder(folder, rows, masks, labels=None, extra_columns=()):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    columns = ["file", "source_case", "slice_index", "modality", "target_names", *extra_columns]
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for row, mask in zip(rows, masks):
            writer.writerow(row)
            image = (np.indices(mask.shape).sum(0) % 256).astype(np.uint8)
            Image.fromarray(image).save(folder / "images" / row["file"])
            Image.fromarray(mask.astype(np.uint8)).save(folder / "masks" / row["file"])
    if labels:
        (folder / "labels.json").write_text(json.dumps(labels))


def test_curated_columns_label_filter_and_resize(tmp_path):
    mask = np.zeros((40, 80), np.uint8)
    mask[5:20, 10:30] = 1
    mask[22:35, 40:70] = 2
    rows = [{"file": "a.png", "source_case": "c1", "slice_index": "3", "modality": "CT",
             "target_names": "liver;spleen", "dataset": "src_set", "label": "spleen"},
            {"file": "b.png", "source_case": "", "slice_index": "", "modality": "CT",
             "target_names": "liver;spleen", "dataset": "", "label": ""}]
    write_pair_folder(tmp_path / "curated", rows, [mask, mask], {"1": "liver", "2": "spleen"},
                      extra_columns=("dataset", "label"))
    dataset = PairDataset(tmp_path, split="all", image_size=40)
    summary = [(e.dataset, e.case, e.target) for e in dataset.entries]
    assert summary == [("src_set", "c1", "spleen"), ("curated", "b", "liver"), ("curated", "b", "spleen")]
    item = dataset[0]
    assert item.image.shape == (20, 40, 3) and item.mask.shape == (20, 40)
    assert set(np.unique(item.mask)) == {False, True}
    assert item.mask[14, 27] and not item.mask[6, 10]  # spleen kept, liver dropped, after halving


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no manifest.csv"):
        PairDataset(tmp_path)
    with pytest.raises(DataError, match="not found"):
        PairDataset(tmp_path / "absent")
    with pytest.raises(InputError, match="split"):
        PairDataset(tmp_path, split="test")
    mask = np.ones((8, 8), np.uint8)
    write_pair_folder(tmp_path / "bad", [{"file": "x.png", "source_case": "x", "slice_index": "",
                                         "modality": "CT", "target_names": "kidney"}], [mask],
                      {"1": "liver"})
    with pytest.raises(DataError, match="labels.json"):
        PairDataset(tmp_path / "bad")
