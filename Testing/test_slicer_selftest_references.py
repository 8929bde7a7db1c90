"""The Slicer self-tests' reference masks are the engine's masks on the self-test phantom (defect 9).

The self-tests (SegMoTE/Testing/Python, run inside Slicer) compare what the Slicer path writes with
these files; here the cheap ones are recomputed headless (one slice embedding), so a reference that
no longer matches the engine, or that was not made from the project's phantom, fails in CI.
What this cannot show: the Slicer side of the comparison, which only runs in Slicer.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from slicer_index import GLUE, REPO

sys.path.insert(0, str(GLUE / "Testing" / "Python"))
import SegMoTESelfTestCase as case  # noqa: E402

sys.path.remove(str(GLUE / "Testing" / "Python"))


def load_script():
    spec = importlib.util.spec_from_file_location("make_selftest_references", REPO / "scripts" / "make_selftest_references.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_reference_is_stored_small_and_shaped_like_the_phantom():
    for name in case.REFERENCES:
        path = case.referencePath(name)
        assert path.is_file(), f"{path} missing: run scripts/make_selftest_references.py"
        assert path.stat().st_size < 64_000
        mask = case.readReference(name)
        assert mask.shape == case.PHANTOM_SHAPE and mask.any()
    assert {p.stem for p in case.REFERENCE_DIR.glob("*.npz")} == set(case.REFERENCES)


def test_references_cover_the_prompts_as_the_self_tests_expect():
    (i0, j0, k), (i1, j1, _) = case.BOX_IJK
    box = case.readReference("box")
    assert np.flatnonzero(box.any(axis=(1, 2))).tolist() == [k]
    i, j, k = case.NEGATIVE_CLICK_IJK
    assert box[k, j, i] and not case.readReference("box_negative_click")[k, j, i]
    assert case.readReference("box_propagated").any(axis=(1, 2)).sum() > 1
    spacing_k = case.makeSelfTestPhantom().image.spacing[2]
    assert case.readReference("rotated_roi").any(axis=(1, 2)).sum() <= int(case.ROI_SIZE_MM[2] / spacing_k) + 2


def test_slice_references_are_what_the_engine_gives_now():
    script = load_script()
    masks = script.engine_masks(["box", "click", "box_negative_click"], report=lambda line: None)
    for name, mask in masks.items():
        assert case.dice(mask, case.readReference(name)) >= 0.99, name
