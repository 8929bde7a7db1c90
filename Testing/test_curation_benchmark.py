"""The curation benchmark runs every implementation on the same slices and they agree."""

from __future__ import annotations

import numpy as np
from conftest import shared_path

from SegMoTELib.benchmarks.curation import benchmark_curation
from SegMoTELib.curation import metrics_batch
from SegMoTELib.benchmarks.curation import (folder_slices, format_markdown, reference_opencv, reference_scipy,
                                           synthetic_slices)


def test_benchmark_reports_every_implementation_on_one_and_several_processes():
    result = benchmark_curation(n_slices=48, size=64, repeats=2, workers=2)
    names = {name.rsplit(",", 1)[0] for name in result["results"]}
    assert names == {"segmote (stacks)", "reference scipy (per slice)", "reference opencv (per slice)"}
    assert {stats["processes"] for stats in result["results"].values()} == {1, 2}
    for stats in result["results"].values():
        assert len(stats["runs"]) == 2 and stats["min"] <= stats["slices_per_second_median"] <= stats["max"]
    assert max(result["max_relative_difference_vs_scipy"].values()) < 1e-9
    assert result["machine"]["cores"] >= 1 and "segmote (stacks)" in format_markdown(result)


def test_synthetic_slices_look_like_segmentation_data():
    images, masks = synthetic_slices(40, 128, seed=3)
    metrics = metrics_batch(images, masks)
    assert images.dtype == np.uint8 and masks.dtype == bool and images.shape == (40, 128, 128)
    assert (metrics["fg_ratio"] > 0).all() and np.median(metrics["fg_ratio"]) < 0.5
    assert (metrics["n_components"] >= 1).all() and (metrics["std"] > 6).all()
    assert np.array_equal(synthetic_slices(40, 128, seed=3)[0], images)  # deterministic


def test_both_references_agree_with_ours_on_real_slices():
    images, masks = folder_slices(shared_path("train_pool"), 40)
    ours = metrics_batch(images, masks)
    for k in range(len(images)):
        for reference in (reference_scipy(images[k], masks[k]), reference_opencv(images[k], masks[k])):
            for name, value in reference.items():
                assert abs(ours[name][k] - value) <= 1e-9 * max(1.0, abs(value)), (name, k)
