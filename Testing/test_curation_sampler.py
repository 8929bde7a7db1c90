"""Properties of the curation sampler (hypothesis), checked against an independent rendering of
the rules: largest-remainder quotas with exact fractions, rank-split slice-index buckets."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from SegMoTELib.curation import CurationWarning, QCConfig, sample_records
from SegMoTELib.errors import InputError


def lr_quotas(sizes: list[int], total: int) -> list[int]:
    """Largest remainder with exact fractions; ties to the earlier entry."""
    whole = sum(sizes)
    exact = [Fraction(size * total, whole) for size in sizes]
    quotas = [int(value) for value in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in order[:total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def buckets_of(members: list[int], records: list[dict], n_buckets: int) -> list[list[int]]:
    """Rank by slice index (missing first, then input order) and cut into near-equal runs."""
    ranked = sorted(members, key=lambda i: (records[i]["slice_index"] is not None, records[i]["slice_index"] or 0, i))
    size, extra = divmod(len(ranked), n_buckets)
    cuts, start = [], 0
    for b in range(n_buckets):
        stop = start + size + (1 if b < extra else 0)
        cuts.append(ranked[start:stop])
        start = stop
    return cuts


@st.composite
def record_sets(draw, all_pass=False):
    n_classes = draw(st.integers(1, 5))
    records = []
    for c in range(n_classes):
        size = draw(st.integers(1, 40))
        with_slices = draw(st.booleans())
        for k in range(size):
            records.append({"dataset": f"set{c}", "label_name": f"organ{k % 2}", "modality": "CT" if c % 2 else "MR",
                            "slice_index": draw(st.integers(0, 200)) if with_slices else None,
                            "passed": True if all_pass else draw(st.booleans()),
                            "score": draw(st.floats(0.01, 1.0))})
    return records


def _sample(records, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CurationWarning)
        return sample_records(records, target, **kwargs)


@settings(max_examples=150, deadline=None)
@given(records=record_sets(), target=st.integers(1, 220), seed=st.integers(0, 2**31))
def test_exactly_target_or_all_valid_and_only_valid(records, target, seed):
    selected = _sample(records, target, seed=seed)
    valid = [i for i, r in enumerate(records) if r["passed"]]
    assert len(selected) == min(target, len(valid))
    assert len(set(selected)) == len(selected) and set(selected) <= set(valid)
    assert selected == sorted(selected)


@settings(max_examples=150, deadline=None)
@given(records=record_sets(all_pass=True), data=st.data(), seed=st.integers(0, 2**31),
       class_by=st.sampled_from([("dataset",), ("label",), ("modality",), ("dataset", "label")]))
def test_class_and_bucket_counts_equal_the_largest_remainder_quotas(records, data, seed, class_by):
    target = data.draw(st.integers(1, len(records)))
    selected = set(_sample(records, target, seed=seed, class_by=class_by))
    fields = {"dataset": "dataset", "label": "label_name", "modality": "modality"}
    classes: dict[tuple, list[int]] = {}
    for i, record in enumerate(records):
        classes.setdefault(tuple(record[fields[name]] for name in class_by), []).append(i)
    keys = sorted(classes)
    for key, quota in zip(keys, lr_quotas([len(classes[k]) for k in keys], target)):
        assert len(selected & set(classes[key])) == quota
        buckets = buckets_of(classes[key], records, 5)
        for bucket, share in zip(buckets, lr_quotas([len(b) for b in buckets], quota)):
            assert len(selected & set(bucket)) == share


def test_bucket_shares_follow_the_slice_index_quantiles():
    # One class of 100 slices (shuffled in the input), target 20: 4 from each fifth of the volume.
    rng = np.random.default_rng(0)
    order = rng.permutation(100)
    records = [{"dataset": "ct", "slice_index": int(s), "passed": True, "score": float(rng.uniform(0.1, 1))}
               for s in order]
    for seed in range(20):
        picked = [records[i]["slice_index"] for i in sample_records(records, 20, seed=seed)]
        assert np.bincount(np.array(picked) // 20, minlength=5).tolist() == [4, 4, 4, 4, 4]


def test_higher_scores_are_selected_more_often():
    scores = np.linspace(0.05, 1.0, 40)
    records = [{"dataset": "a", "slice_index": None, "passed": True, "score": float(s)} for s in scores]
    config = QCConfig(n_buckets=1)
    counts = np.zeros(40)
    for seed in range(400):
        counts[sample_records(records, 8, seed=seed, config=config)] += 1
    correlation = np.corrcoef(np.argsort(np.argsort(counts)), np.arange(40))[0, 1]
    assert correlation > 0.9
    assert counts[-10:].sum() > 3 * counts[:10].sum()


def test_single_draw_probability_is_score_to_the_power_one_over_tau():
    records = [{"dataset": "a", "slice_index": None, "passed": True, "score": s} for s in (0.8, 0.2)]
    config = QCConfig(n_buckets=1)  # tau = 0.85
    wins = sum(sample_records(records, 1, seed=seed, config=config) == [0] for seed in range(4000))
    expected = 0.8 ** (1 / 0.85) / (0.8 ** (1 / 0.85) + 0.2 ** (1 / 0.85))  # 0.838, vs 0.8 without tau
    assert abs(wins / 4000 - expected) < 4 * np.sqrt(expected * (1 - expected) / 4000)


@settings(max_examples=50, deadline=None)
@given(records=record_sets(), target=st.integers(1, 100), seed=st.integers(0, 2**31))
def test_deterministic_for_a_seed(records, target, seed):
    assert _sample(records, target, seed=seed) == _sample(records, target, seed=seed)


def test_different_seeds_give_different_selections():
    records = [{"dataset": "a", "slice_index": k, "passed": True, "score": 0.5} for k in range(200)]
    assert sample_records(records, 50, seed=1) != sample_records(records, 50, seed=2)


def test_deficits_are_filled_from_other_classes():
    # Class "poor" has quota 50 of 100 but only 10 records pass: the 40 missing come from "good".
    records = [{"dataset": "poor", "slice_index": k, "passed": k < 10, "score": 0.9} for k in range(100)]
    records += [{"dataset": "good", "slice_index": k, "passed": True, "score": 0.5} for k in range(100)]
    selected = sample_records(records, 100, seed=3)
    assert len(selected) == 100
    assert sum(records[i]["dataset"] == "poor" for i in selected) == 10
    assert sum(records[i]["dataset"] == "good" for i in selected) == 90


def test_fewer_valid_than_target_selects_all_with_a_warning():
    records = [{"dataset": "a", "slice_index": k, "passed": k % 2 == 0, "score": 0.5} for k in range(10)]
    with pytest.warns(CurationWarning, match="only 5 records pass"):
        assert sample_records(records, 8) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("target", [0, -3, 2.5, True])
def test_non_positive_or_non_integer_target_is_an_input_error(target):
    with pytest.raises(InputError, match="target"):
        sample_records([{"dataset": "a", "passed": True, "score": 1.0}], target)


def test_unknown_class_is_an_input_error():
    with pytest.raises(InputError, match="class_by"):
        sample_records([{"dataset": "a", "passed": True, "score": 1.0}], 1, class_by=("organ",))
