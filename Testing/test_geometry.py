"""Volume geometry and patient-axis slices: property tests on random geometries, hand-derived cases,
real volumes.

The random geometries cover oblique rotations, flips (LPS vs RAS, negative axis directions), axis
permutations and anisotropic spacing. Voxel values are all distinct, so "the pixel whose value
equals the voxel's value" identifies one voxel exactly, and the brute-force references below go
through `ras_to_ijk` matrices and rounding only, never through the display frame.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from SegMoTELib.errors import InputError
from SegMoTELib.geometry import (
    DISPLAY_AXES_RAS,
    SliceRef,
    display_frame,
    extract_slice,
    insert_slice,
    orientation_of_axis,
    ras_box_to_slice_box,
    ras_to_slice_pixels,
    ras_to_voxel,
    slice_axis_for,
    slice_extent_of_box,
    slice_pixels_to_ras,
    slice_through,
)
from SegMoTELib.volume import LPS_TO_RAS, Volume

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORIENTATION_NAMES = ("axial", "coronal", "sagittal")


# --- random geometries ------------------------------------------------------------------------
def _rotation(quaternion) -> np.ndarray:
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _signed_permutation(order, signs) -> np.ndarray:
    matrix = np.zeros((3, 3))
    for column, (row, sign) in enumerate(zip(order, signs)):
        matrix[row, column] = sign
    return matrix


quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(lambda q: np.linalg.norm(q) > 0.2)
small_quaternions = st.tuples(st.just(1.0), *[st.floats(-0.15, 0.15) for _ in range(3)])  # < ~17 degrees
signed_permutations = st.builds(_signed_permutation, st.sampled_from(list(permutations(range(3)))),
                                st.tuples(*[st.sampled_from((-1.0, 1.0)) for _ in range(3)]))


@st.composite
def volumes(draw, oblique=True):
    """A volume with distinct voxel values and random geometry."""
    rotation = _rotation(draw(quaternions if oblique else small_quaternions))
    direction = rotation @ draw(signed_permutations)
    spacing = draw(st.tuples(*[st.floats(0.1, 10.0) for _ in range(3)]))
    origin = draw(st.tuples(*[st.floats(-500.0, 500.0) for _ in range(3)]))
    shape = draw(st.tuples(*[st.integers(1, 9) for _ in range(3)]))
    seed = draw(st.integers(0, 2**31 - 1))
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).astype(np.int32).reshape(shape)
    return Volume(values, origin, spacing, direction)


def _inside_ijk(volume: Volume, draw_unit) -> np.ndarray:
    """A continuous voxel coordinate well inside the volume (never on a rounding boundary)."""
    unit = np.asarray(draw_unit, dtype=np.float64)
    return unit * (np.array(volume.shape_ijk) - 0.98) - 0.49


unit_points = st.tuples(*[st.floats(0.0, 1.0) for _ in range(3)])


def _voxel_value(volume: Volume, ijk) -> int:
    """Brute force: nearest voxel through the inverse matrix, rounding halves up."""
    i, j, k = np.floor(np.asarray(ijk) + 0.5).astype(int)
    return int(volume.array[k, j, i])


def _ras_to_ijk_reference(volume: Volume, ras) -> np.ndarray:
    ras1 = np.append(np.asarray(ras, dtype=np.float64), 1.0)
    return (np.linalg.inv(volume.ijk_to_ras) @ ras1)[:3]


def _pixel_of_value(image: np.ndarray, value: int) -> tuple[int, int]:
    rows, cols = np.nonzero(image == value)
    assert len(rows) == 1, "every voxel value is distinct"
    return int(cols[0]), int(rows[0])


# --- matrices ---------------------------------------------------------------------------------
@PROPERTY
@given(volumes(), st.lists(st.tuples(*[st.floats(-3.0, 12.0) for _ in range(3)]), min_size=1, max_size=6))
def test_ijk_ras_ijk_round_trip(volume, ijk_points):
    ijk = np.array(ijk_points)
    ras = volume.ijk_to_ras_points(ijk)
    np.testing.assert_allclose(volume.ras_to_ijk_points(ras), ijk, atol=1e-9)
    product = volume.ras_to_ijk @ volume.ijk_to_ras
    np.testing.assert_allclose(product[:, :3], np.eye(4)[:, :3], atol=1e-12)
    # The translation column cancels terms of the size of origin / spacing (thousands with a 0.1 mm
    # pixel 500 mm from the origin): hold it to the float64 bound of a 4-term dot product,
    # 4 eps times the sum of the magnitudes it adds up.
    magnitude = (np.abs(volume.ras_to_ijk) @ np.abs(volume.ijk_to_ras[:, 3])).max()
    np.testing.assert_allclose(product[:, 3], [0, 0, 0, 1], atol=4 * np.finfo(float).eps * magnitude)
    np.testing.assert_allclose(volume.ijk_to_ras, LPS_TO_RAS @ volume.ijk_to_lps, atol=0)
    # LPS and RAS differ by the sign of x and y only.
    lps = (volume.ijk_to_lps @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(volume.ijk_to_lps[:3, :3], axis=0), volume.spacing, rtol=1e-12)


@PROPERTY
@given(volumes())
def test_from_ijk_to_ras_recovers_the_geometry(volume):
    rebuilt = Volume.from_ijk_to_ras(volume.array, volume.ijk_to_ras)
    np.testing.assert_allclose(rebuilt.spacing, volume.spacing, rtol=1e-12)
    np.testing.assert_allclose(rebuilt.direction_lps, volume.direction_lps, atol=1e-12)
    np.testing.assert_allclose(rebuilt.origin_lps, volume.origin_lps, atol=1e-12)
    np.testing.assert_allclose(rebuilt.ijk_to_ras, volume.ijk_to_ras, atol=1e-12)


# --- slices and prompt mapping vs brute force -------------------------------------------------
@PROPERTY
@given(volumes(), unit_points, st.one_of(st.sampled_from(ORIENTATION_NAMES),
                                         st.tuples(*[st.floats(-1, 1) for _ in range(3)]).filter(any)))
def test_ras_point_lands_on_the_pixel_holding_its_voxel(volume, unit, orientation):
    ras = volume.ijk_to_ras_points(_inside_ijk(volume, unit))[0]
    ref = slice_through(volume, orientation, ras)
    image = extract_slice(volume, ref)
    x, y = np.floor(ras_to_slice_pixels(volume, ref, ras)[0] + 0.5).astype(int)
    expected = _voxel_value(volume, _ras_to_ijk_reference(volume, ras))
    assert image[y, x] == expected
    assert ras_to_voxel(volume, ras)[0].tolist() == np.floor(_ras_to_ijk_reference(volume, ras) + 0.5).astype(int).tolist()


@PROPERTY
@given(volumes(), st.integers(0, 2), st.integers(0, 8))
def test_extracted_pixels_match_brute_force_and_display_directions(volume, axis, index):
    ref = SliceRef(axis, index % volume.shape_ijk[axis])
    image = extract_slice(volume, ref)
    height, width = image.shape
    ys, xs = np.mgrid[0:height, 0:width]
    ras = slice_pixels_to_ras(volume, ref, np.c_[xs.ravel(), ys.ravel()])
    for (x, y), point in zip(np.c_[xs.ravel(), ys.ravel()], ras):
        assert image[y, x] == _voxel_value(volume, _ras_to_ijk_reference(volume, point))
    # Display semantics: +x and +y move towards the view's column and row patient directions.
    column_ras, row_ras = (np.array(d) for d in DISPLAY_AXES_RAS[orientation_of_axis(volume, axis)])
    origin, step_x, step_y = slice_pixels_to_ras(volume, ref, [[0, 0], [1, 0], [0, 1]])
    assert (step_x - origin) @ column_ras > 0
    assert (step_y - origin) @ row_ras > 0
    # A copy, C-contiguous (what the model input and hashing want), never a view into the volume.
    assert image.flags.c_contiguous and not np.shares_memory(image, volume.array)


@PROPERTY
@given(volumes(), st.integers(0, 2), st.integers(0, 8), st.integers(0, 2**31 - 1))
def test_insert_slice_is_the_inverse_of_extract(volume, axis, index, seed):
    ref = SliceRef(axis, index % volume.shape_ijk[axis])
    labelmap = volume.with_array(np.zeros(volume.array.shape, dtype=np.uint8))
    height, width = extract_slice(volume, ref).shape
    mask = np.random.default_rng(seed).integers(0, 2, (height, width)).astype(np.uint8)
    insert_slice(labelmap, ref, mask)
    np.testing.assert_array_equal(extract_slice(labelmap, ref), mask)
    assert labelmap.array.sum() == mask.sum()  # nothing outside the slice changed
    # The same through a bare array plus its geometry.
    bare = np.zeros(volume.array.shape, dtype=np.uint8)
    insert_slice(bare, ref, mask, geometry=volume)
    np.testing.assert_array_equal(bare, labelmap.array)


@PROPERTY
@given(volumes(), unit_points, unit_points, st.sampled_from(ORIENTATION_NAMES), st.booleans())
def test_box_on_a_slice_matches_brute_force(volume, unit_a, unit_b, orientation, two_corners):
    corners = volume.ijk_to_ras_points(np.stack([_inside_ijk(volume, unit_a), _inside_ijk(volume, unit_b)]))
    low, high = corners.min(axis=0), corners.max(axis=0)
    eight = np.array([[(low, high)[a][0], (low, high)[b][1], (low, high)[c][2]]
                      for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    ref = slice_through(volume, orientation, corners[0])
    # Brute force: each corner's nearest voxel (clamped into the volume: clamping commutes with the
    # per-axis display mapping), found by its value on the slice through it.
    pixels = []
    for corner in eight:
        ijk = np.clip(np.floor(_ras_to_ijk_reference(volume, corner) + 0.5), 0, np.array(volume.shape_ijk) - 1)
        through = SliceRef(ref.axis, int(ijk[ref.axis]))
        pixels.append(_pixel_of_value(extract_slice(volume, through), _voxel_value(volume, ijk)))
    xs, ys = np.array(pixels).T
    expected = [xs.min(), ys.min(), xs.max(), ys.max()]
    given_corners = corners if two_corners else eight
    if expected[2] <= expected[0] or expected[3] <= expected[1]:
        with pytest.raises(InputError, match="no area"):
            ras_box_to_slice_box(volume, ref, given_corners)
    else:
        assert ras_box_to_slice_box(volume, ref, given_corners).tolist() == expected


@PROPERTY
@given(volumes(), unit_points, unit_points, st.integers(0, 2))
def test_slice_extent_of_a_3d_box_matches_a_dense_sample(volume, unit_a, unit_b, axis):
    corners = volume.ijk_to_ras_points(np.stack([_inside_ijk(volume, unit_a), _inside_ijk(volume, unit_b)]))
    low, high = corners.min(axis=0), corners.max(axis=0)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 5)] * 3, indexing="ij"), -1).reshape(-1, 3)
    samples = low + grid * (high - low)  # includes the 8 corners of the RAS box
    indices = [np.floor(_ras_to_ijk_reference(volume, p)[axis] + 0.5) for p in samples]
    count = volume.shape_ijk[axis]
    expected = (int(max(min(indices), 0)), int(min(max(indices), count - 1)))
    assert slice_extent_of_box(volume, axis, corners) == expected


@PROPERTY
@given(volumes(oblique=False))
def test_named_orientation_picks_the_voxel_axis_closest_to_the_patient_axis(volume):
    cosines = np.abs(volume.direction_ras)  # rows: R, A, S; near a signed permutation here
    for row, name in ((0, "sagittal"), (1, "coronal"), (2, "axial")):
        assert slice_axis_for(volume, name) == int(np.argmax(cosines[row]))
        normal = np.eye(3)[row] * (-1 if row == 1 else 1)  # a normal's sign does not matter
        assert slice_axis_for(volume, normal) == int(np.argmax(cosines[row]))
    assert sorted(slice_axis_for(volume, name) for name in ORIENTATION_NAMES) == [0, 1, 2]


@PROPERTY
@given(volumes(), st.sampled_from(("i", "j", "k")), st.sampled_from((-1, 1)))
def test_points_outside_the_volume_are_refused(volume, axis_name, side):
    axis = "ijk".index(axis_name)
    ijk = (np.array(volume.shape_ijk) - 1) / 2.0
    ijk[axis] = -0.6 if side < 0 else volume.shape_ijk[axis] - 0.4
    ras = volume.ijk_to_ras_points(ijk)
    with pytest.raises(InputError, match="outside the volume"):
        ras_to_voxel(volume, ras)
    with pytest.raises(InputError, match="outside the volume"):
        ras_to_slice_pixels(volume, SliceRef(2, 0), ras)
    with pytest.raises(InputError, match="outside the volume"):
        slice_through(volume, "axial", ras)


# --- hand-derived cases -----------------------------------------------------------------------
def _grid_volume(direction_lps, shape=(4, 5, 6), spacing=(1.0, 2.0, 3.0)) -> Volume:
    return Volume(np.arange(np.prod(shape)).reshape(shape), (10.0, -20.0, 30.0), spacing, direction_lps)


def test_identity_lps_volume_shows_slices_like_slicer():
    volume = _grid_volume(np.eye(3))  # i -> left, j -> posterior, k -> superior
    a = volume.array
    np.testing.assert_array_equal(extract_slice(volume, slice_through(volume, "axial", volume.ijk_to_ras_points([1, 1, 2])[0])),
                                  a[2])
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(1, 3)), a[::-1, 3, :])  # coronal: superior up
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(0, 4)), a[::-1, :, 4])  # sagittal: anterior left


def test_ras_aligned_volume_is_flipped_in_plane():
    volume = _grid_volume(np.diag([-1.0, -1.0, 1.0]))  # NIfTI-style: i -> right, j -> anterior
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(2, 1)), volume.array[1][::-1, ::-1])


def test_sagittally_acquired_volume_takes_axial_slices_across_j():
    # i -> posterior, j -> inferior, k -> left (a typical sagittal MR acquisition), in LPS.
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    volume = _grid_volume(direction)
    assert slice_axis_for(volume, "axial") == 1
    assert slice_axis_for(volume, "sagittal") == 2
    assert slice_axis_for(volume, "coronal") == 0
    assert slice_axis_for(volume, [0.1, 0.0, -0.9]) == 1  # a slice-view normal close to inferior
    assert orientation_of_axis(volume, 2) == "sagittal"
    # Axial display: columns go left (= +k), rows go posterior (= +i).
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(1, 2)), volume.array[:, 2, :].T)
    # Sagittal display: columns go posterior (= +i), rows go inferior (= +j).
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(2, 1)), volume.array[1])


def test_slicer_view_names_are_accepted():
    volume = _grid_volume(np.eye(3))
    assert [slice_axis_for(volume, name) for name in ("Red", "Green", "Yellow")] == [2, 1, 0]
    with pytest.raises(InputError, match="orientation"):
        slice_axis_for(volume, "oblique")
    with pytest.raises(InputError, match="normal"):
        slice_axis_for(volume, [0, 0, 0])


def test_boxes_of_zero_extent_and_outside_boxes_are_refused():
    volume = _grid_volume(np.eye(3))
    ref = SliceRef(2, 1)
    corner = volume.ijk_to_ras_points([2, 2, 1])[0]
    with pytest.raises(InputError, match="no area"):
        ras_box_to_slice_box(volume, ref, [corner, corner])
    far = volume.ijk_to_ras_points([[20, 20, 1], [30, 30, 1]])
    with pytest.raises(InputError, match="outside the volume"):
        ras_box_to_slice_box(volume, ref, far)
    with pytest.raises(InputError, match="corners"):
        ras_box_to_slice_box(volume, ref, np.zeros((3, 3)))
    # A box reaching past the volume is clamped to the slice.
    partly = volume.ijk_to_ras_points([[-3, 1, 1], [2.4, 10, 1]])
    assert ras_box_to_slice_box(volume, ref, partly).tolist() == [0, 1, 2, 4]


def test_rounding_is_half_up_never_truncation():
    volume = _grid_volume(np.eye(3), spacing=(1.0, 1.0, 1.0))
    ras = volume.ijk_to_ras_points([[1.5, 0.49, 2.51], [0.7, 1.2, 0.0]])
    assert ras_to_voxel(volume, ras).tolist() == [[2, 0, 3], [1, 1, 0]]


def test_bad_slice_arguments_are_refused():
    volume = _grid_volume(np.eye(3))
    with pytest.raises(InputError, match="slice index"):
        extract_slice(volume, SliceRef(2, 4))
    with pytest.raises(InputError, match="slice axis"):
        SliceRef(3, 0)
    with pytest.raises(InputError, match="mask2d"):
        insert_slice(volume.with_array(np.zeros((4, 5, 6), np.uint8)), SliceRef(2, 0), np.zeros((6, 5)))
    with pytest.raises(InputError, match="geometry"):
        insert_slice(np.zeros((4, 5, 6), np.uint8), SliceRef(2, 0), np.zeros((5, 6)))


def test_two_dimensional_rgb_image_axial_slice_is_the_image():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    volume = Volume(rgb, rgb=True)
    assert volume.array.shape == (1, 7, 9, 3)
    np.testing.assert_array_equal(extract_slice(volume, slice_through(volume, "axial", [0, 0, 0])), rgb)
    # Pixel (x, y) of the image is RAS (-x, -y, 0): identity LPS geometry.
    np.testing.assert_allclose(ras_to_slice_pixels(volume, SliceRef(2, 0), [[-4.0, -2.0, 0.0]]), [[4.0, 2.0]])


# --- real volumes -----------------------------------------------------------------------------
def test_real_ct_axial_slice_and_a_voxel_round_trip():
    from SegMoTELib.io import read_volume

    path = shared_path("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")
    volume = read_volume(path)  # NIfTI via ITK: LPS direction diag(-1, -1, 1)
    np.testing.assert_array_equal(extract_slice(volume, SliceRef(2, 12)), volume.array[12][::-1, ::-1])
    ras = volume.ijk_to_ras_points([40, 30, 12])
    ref = slice_through(volume, "axial", ras)
    assert ref == SliceRef(2, 12)
    width, height = volume.shape_ijk[0], volume.shape_ijk[1]
    np.testing.assert_allclose(ras_to_slice_pixels(volume, ref, ras), [[width - 1 - 40, height - 1 - 30]], atol=1e-9)


def test_real_anisotropic_nrrd_mapping():
    from SegMoTELib.io import read_volume

    volume = read_volume(shared_path("volumes", "pyradiomics_testcases", "data", "brain1_image.nrrd"))
    np.testing.assert_allclose(volume.spacing, [0.78125, 0.78125, 6.5], rtol=1e-9)
    ras = volume.ijk_to_ras_points([100, 50, 12])
    assert ras_to_voxel(volume, ras).tolist() == [[100, 50, 12]]
    ref = slice_through(volume, "axial", ras)
    assert ref == SliceRef(2, 12)
    # LPS direction diag(1, -1, 1): i already runs to the left, j runs anterior -> rows flipped.
    np.testing.assert_allclose(ras_to_slice_pixels(volume, ref, ras), [[100, 255 - 50]], atol=1e-9)
    corners = volume.ijk_to_ras_points([[90, 40, 10], [120, 80, 14]])
    assert slice_extent_of_box(volume, ref, corners) == (10, 14)
    assert ras_box_to_slice_box(volume, ref, corners).tolist() == [90, 255 - 80, 120, 255 - 40]


def test_npz_ct_displays_anatomically_upright():
    """The DeepLesion npz geometry (i -> posterior, j -> left) makes the axial view the transposed
    array: the spine and table (brightest pixels) must end up in the lower half, as in Slicer."""
    from SegMoTELib.io import read_npz_case

    folder = shared_path("volumes", "medsam2_deeplesion_npz", "data", "RECIST_train_npz")
    for path in sorted(folder.glob("*.npz")):
        image, _ = read_npz_case(path)
        frame = display_frame(image, 2)
        assert (frame.orientation, frame.col_axis, frame.row_axis) == ("axial", 1, 0)
        middle = extract_slice(image, SliceRef(2, image.shape_ijk[2] // 2))
        rows, _ = np.nonzero(middle >= 240)
        assert rows.mean() / middle.shape[0] > 0.55, path.name


def test_roi_corners_follow_rotation_and_size():
    from SegMoTELib.geometry import roi_corners

    angle = np.deg2rad(30.0)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix[:3, 3] = [10.0, -5.0, 2.0]
    corners = roi_corners(matrix, [4.0, 2.0, 6.0])
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.mean(axis=0), [10.0, -5.0, 2.0])
    # the corner at local (+2, +1, +3) rotated by 30 degrees about S
    local = np.array([2.0, 1.0, 3.0])
    expected = matrix[:3, :3] @ local + matrix[:3, 3]
    assert np.min(np.linalg.norm(corners - expected, axis=1)) < 1e-9
    edge_lengths = sorted(np.linalg.norm(corners - corners[0], axis=1))
    np.testing.assert_allclose(edge_lengths[1:3], [2.0, 4.0])  # the two short edges at one corner
    np.testing.assert_allclose(edge_lengths[-1], np.sqrt(4.0**2 + 2.0**2 + 6.0**2))  # the space diagonal
    with pytest.raises(InputError, match="size"):
        roi_corners(matrix, [4.0, 0.0, 6.0])
