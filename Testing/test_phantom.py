"""The procedural phantom: deterministic, labels valid, anatomy where its declared geometry says."""

from __future__ import annotations

import numpy as np
import pytest

from SegMoTELib.errors import InputError
from SegMoTELib.phantom import DEFAULT_SHAPE, DEFAULT_SPACING, STRUCTURES, make_phantom, phantom_direction_lps


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=0)


def test_same_seed_gives_same_voxels_and_another_seed_differs(phantom):
    again = make_phantom(seed=0)
    np.testing.assert_array_equal(phantom.image.array, again.image.array)
    np.testing.assert_array_equal(phantom.labels, again.labels)
    other = make_phantom(seed=1)
    assert not np.array_equal(phantom.image.array, other.image.array)
    # another seed moves organs by a few mm only: the same structures stay largely in place
    for label, name, _ in STRUCTURES:
        a, b = phantom.labels == label, other.labels == label
        assert 2 * np.count_nonzero(a & b) / (a.sum() + b.sum()) > 0.6, name


def test_geometry_is_as_declared(phantom):
    image = phantom.image
    assert image.array.shape == DEFAULT_SHAPE
    assert image.array.dtype == np.int16
    np.testing.assert_allclose(image.spacing, DEFAULT_SPACING)
    np.testing.assert_allclose(image.direction_lps, phantom_direction_lps())
    # LPS-flipped: i runs towards the patient's right, j anterior; slightly oblique (not axis-aligned)
    direction_ras = image.direction_ras
    assert direction_ras[0, 0] > 0.99 and direction_ras[1, 1] > 0.99 and direction_ras[2, 2] == 1.0
    assert abs(direction_ras[1, 0]) > 0.05
    assert image.modality == "CT"
    assert phantom.label_volume.array.shape == image.array.shape
    np.testing.assert_allclose(phantom.label_volume.ijk_to_ras, image.ijk_to_ras)


def test_labels_are_in_range_and_every_structure_is_inside_the_volume(phantom):
    values = set(np.unique(phantom.labels).tolist())
    assert values == {0} | {label for label, _, _ in STRUCTURES}
    assert [s.name for s in phantom.segments] == [name for _, name, _ in STRUCTURES]
    for segment in phantom.segments:
        mask = phantom.mask(segment.name)
        assert mask.sum() > 1000, segment.name
        assert all(0.0 <= c <= 1.0 for c in segment.color)
    # the organs (not the aorta and spine, which run through) end inside the volume along k
    for name in ("liver", "spleen", "right kidney", "left kidney"):
        slices = np.flatnonzero(phantom.mask(name).any(axis=(1, 2)))
        assert 0 < slices[0] and slices[-1] < phantom.labels.shape[0] - 1, name
    with pytest.raises(InputError, match="pancreas"):
        phantom.mask("pancreas")


def _centroid_ras(phantom, name):
    kji = np.argwhere(phantom.mask(name)).mean(axis=0)
    return phantom.image.ijk_to_ras_points(kji[::-1])[0]


def test_anatomy_sits_where_the_ras_geometry_says(phantom):
    liver, spleen = _centroid_ras(phantom, "liver"), _centroid_ras(phantom, "spleen")
    right, left = _centroid_ras(phantom, "right kidney"), _centroid_ras(phantom, "left kidney")
    spine, aorta = _centroid_ras(phantom, "vertebrae"), _centroid_ras(phantom, "aorta")
    assert liver[0] > spine[0] + 20 and spleen[0] < spine[0] - 40  # R is +x in RAS
    assert right[0] > spine[0] + 30 and left[0] < spine[0] - 30
    assert aorta[1] > spine[1] + 10  # the aorta lies anterior to the spine
    assert right[1] < liver[1] and left[1] < aorta[1]  # the kidneys are posterior
    assert liver[2] > right[2]  # the liver is above the kidney


def test_hounsfield_values_are_ct_like(phantom):
    hu = phantom.image.array
    assert hu.min() >= -1024 and np.median(hu[:, :5, :5]) < -900  # air around the body (slice corners)
    for name, low, high in (("liver", 80, 130), ("spleen", 90, 140), ("aorta", 160, 210), ("vertebrae", 200, 700)):
        value = np.median(hu[phantom.mask(name)])
        assert low < value < high, (name, value)
    # noise: neighbouring liver voxels differ, but not by more than a few tens of HU
    liver = phantom.mask("liver")
    core = liver & np.roll(liver, 1, axis=2)
    differences = (hu.astype(np.float32) - np.roll(hu, 1, axis=2))[core]
    assert 3 < np.median(np.abs(differences)) < 30


def test_bad_arguments_are_refused():
    with pytest.raises(InputError, match="shape"):
        make_phantom(shape=(4, 100, 100))
    with pytest.raises(InputError, match="spacing"):
        make_phantom(spacing=(1.0, 0.0, 2.0))
