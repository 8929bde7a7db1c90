"""The one prompt value (SegMoTELib.slice_prompt): its checks, its wire form against the service's
schema, its mapping onto a slice (RAS and IJK alike), and its encoding into model inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from SegMoTELib.errors import InputError
from SegMoTELib.geometry import SliceRef, prompt_on_slice, prompt_slice, slice_pixels_to_ras
from SegMoTELib.slice_prompt import WIRE_FIELDS, SlicePrompt, parse_vertex_list
from SegMoTELib.volume import Volume


# --- the value ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arguments, message", [
    ({"points": [[1, 2, 3]]}, r"points: expected shape \(N, 2\)"),
    ({"points": [[1, 2]], "labels": [2]}, "labels: each label must be 1"),
    ({"labels": [1]}, "labels: labels were given without points"),
    ({"lassos": [[[0, 0], [5, 5]]]}, r"lasso 1: expected shape \(N, 2\) .* N >= 3"),
    ({"negative_scribbles": [[[0, 0], [np.nan, 1]]]}, "negative scribble 1: contains NaN"),
    ({"frame": "voxel"}, "frame: expected one of pixel, ras, ijk"),
    ({"frame": "ijk", "box": [[0, 0, 0], [1, 1, 1], [2, 2, 2]]}, "box: expected 2 corners"),
    ({"points": np.zeros((65, 2))}, "points: 65 vertices; at most 64"),
    ({"scribbles": [[[0, 0]]] * 33}, "strokes: 33 scribbles and lassos; at most 32"),
])
def test_bad_values_are_refused_naming_the_field(arguments, message):
    with pytest.raises(InputError, match=message):
        SlicePrompt.build(**arguments)


def test_pixel_checks_against_the_image():
    SlicePrompt.build(points=[[0, 0], [99, 49]], box=[0, 0, 99, 49]).check_inside(50, 100)
    # a stroke may leave the image (it is clipped where it is drawn), a click may not
    SlicePrompt.build(lassos=[[[-5, -5], [120, -5], [120, 60]]]).check_inside(50, 100)
    with pytest.raises(InputError, match=r"points: \(100, 3\) is outside the image"):
        SlicePrompt.build(points=[[100, 3]]).check_inside(50, 100)
    with pytest.raises(InputError, match="box: .* is inverted"):
        SlicePrompt.build(box=[10, 10, 5, 20]).check_inside(50, 100)


def test_vertex_lists_parse_as_the_cli_writes_them():
    np.testing.assert_array_equal(parse_vertex_list("1,2, 3,4", 2, "--scribble"), [[1, 2], [3, 4]])
    with pytest.raises(InputError, match="--ras-lasso: expected 3 numbers per vertex"):
        parse_vertex_list("1,2,3,4", 3, "--ras-lasso")
    with pytest.raises(InputError, match="--scribble: expected comma-separated numbers"):
        parse_vertex_list("1,a", 2, "--scribble")


def test_wire_form_round_trips_and_is_what_the_service_schema_validates():
    pytest.importorskip("pydantic")
    from SegMoTELib.service.schemas import PromptFields, SliceRequest

    prompt = SlicePrompt.build("ras", points=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], labels=[1, 0],
                               box=[[0, 0, 3], [9, 9, 3]], scribbles=[[[1, 1, 3], [2, 2, 3]]],
                               negative_scribbles=[[[5, 5, 3]]], lassos=[[[0, 0, 3], [4, 0, 3], [4, 4, 3]]])
    wire = prompt.to_wire()
    assert tuple(wire) == WIRE_FIELDS
    assert set(PromptFields.model_fields) == set(WIRE_FIELDS)  # the schema mirrors the value, field for field
    assert SlicePrompt.from_wire(wire).to_wire() == wire
    assert SliceRequest(**wire, orientation="axial").slice_prompt().to_wire() == wire
    # the value's own checks answer through the schema (a 422 naming the field)
    with pytest.raises(ValueError, match="lasso 1: expected shape"):
        SliceRequest(frame="ijk", lassos=[{"vertices": [[0, 0, 0], [1, 1, 0]]}])


# --- onto a slice ------------------------------------------------------------------------------
def _oblique_volume() -> Volume:
    angle = np.radians(20.0)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1.0]])
    return Volume(np.zeros((12, 40, 50), np.int16), origin_lps=(5.0, -3.0, 7.0), spacing=(0.8, 0.9, 2.5),
                  direction_lps=direction)


def test_ras_and_ijk_forms_of_one_prompt_give_the_same_pixels_on_an_oblique_volume():
    volume = _oblique_volume()
    ref = SliceRef(2, 6)
    ijk = {"points": [[10.0, 12.0, 6.0]], "labels": [0], "scribbles": [[[3.0, 4.0, 6.0], [20.5, 30.2, 6.0]]],
           "negative_lassos": [[[5.0, 5.0, 6.0], [25.0, 5.0, 6.0], [25.0, 25.0, 6.0]]], "box": [[2, 3, 6], [30, 20, 6]]}
    in_ijk = SlicePrompt.build("ijk", **ijk)
    as_ras = in_ijk.mapped(volume.ijk_to_ras_points, "ras").with_(box=None)  # 2 RAS corners mean a RAS box
    assert prompt_slice(volume, "axial", in_ijk) == prompt_slice(volume, "axial", as_ras) == ref
    pixels_ijk, pixels_ras = prompt_on_slice(volume, ref, in_ijk), prompt_on_slice(volume, ref, as_ras)
    assert pixels_ijk.frame == pixels_ras.frame == "pixel"
    assert pixels_ijk.points == pixels_ras.points and pixels_ijk.labels == (0,)
    for ours, theirs in zip(pixels_ijk.scribbles + pixels_ijk.lassos, pixels_ras.scribbles + pixels_ras.lassos):
        np.testing.assert_allclose(ours.array, theirs.array, atol=1e-6)
        assert ours.positive == theirs.positive
    # the scribble's vertices land where the slice's own pixel → RAS mapping says
    back = slice_pixels_to_ras(volume, ref, pixels_ras.scribbles[0].array)
    np.testing.assert_allclose(back, as_ras.scribbles[0].array, atol=1e-6)
    assert pixels_ijk.box is not None and pixels_ijk.pixel_box().tolist() == [2, 3, 30, 20]


def test_a_seed_mask_needs_its_slices_shape_and_a_dense_prompt_alone_needs_a_slice_index():
    volume = _oblique_volume()
    seed = np.zeros((40, 50), bool)
    seed[10:20, 5:15] = True
    prompt = SlicePrompt.build("ras", seed_mask=seed)
    with pytest.raises(InputError, match="slice_index: an earlier result or a seed mask alone"):
        prompt_slice(volume, "axial", prompt)
    on_slice = prompt_on_slice(volume, prompt_slice(volume, "axial", prompt, slice_index=6), prompt)
    assert on_slice.frame == "pixel" and on_slice.seed_mask.sum() == 100
    with pytest.raises(InputError, match=r"seed_mask: expected the slice's shape \(40, 50\)"):
        prompt_on_slice(volume, SliceRef(2, 6), SlicePrompt.build("ras", seed_mask=seed.T))
    with pytest.raises(InputError, match="seed_mask: give either mask_input"):
        SlicePrompt.build(seed_mask=seed, mask_input=np.zeros((256, 256)))


# --- into model inputs -------------------------------------------------------------------------
def test_strokes_encode_as_points_along_them_a_box_and_dense_maps():
    from SegMoTELib.preprocessing import ImageTransform
    from SegMoTELib.prompt_encoding import SCRIBBLE_POINTS, encode_prompts

    transform = ImageTransform.for_image(64, 128, 256)  # input = 2 × the image, padded below
    prompt = SlicePrompt.build(scribbles=[[[10, 20], [110, 20]]], lassos=[[[25, 30], [45, 30], [45, 50], [25, 50]]],
                               negative_lassos=[[[75, 20], [100, 20], [100, 45], [75, 45]]])
    inputs = encode_prompts([prompt], transform, 256, with_maps=True, device="cpu")
    points, labels = inputs.points[0], inputs.labels[0]
    assert points.shape == (SCRIBBLE_POINTS + 1, 2) and labels.tolist() == [1] * SCRIBBLE_POINTS + [0]
    # along the stroke at 1/6, 1/2, 5/6 of its length, in model-input pixels
    torch.testing.assert_close(points[:SCRIBBLE_POINTS, 0], torch.tensor([160 / 3, 120.0, 560 / 3]))
    torch.testing.assert_close(points[:SCRIBBLE_POINTS, 1], torch.tensor([40.0, 40.0, 40.0]))
    # the negative lasso's point lies inside its loop
    x, y = points[-1].tolist()
    assert 150 <= x <= 200 and 40 <= y <= 90
    torch.testing.assert_close(inputs.boxes[0], torch.tensor([50.0, 60.0, 90.0, 100.0]))
    maps = inputs.strokes[0]
    assert maps.shape == (4, 256, 256)
    assert abs(float(maps[2].sum()) - 40 * 40) < 0.15 * 40 * 40   # the filled positive loop
    assert float(maps[3].sum()) > 0 and float(maps[1].sum()) == 0   # a negative lasso, no negative scribble
    line = maps[0].nonzero()
    assert line[:, 0].min() >= 37 and line[:, 0].max() <= 43      # a thin line at y = 40


# --- the command line ----------------------------------------------------------------------------
def test_cli_stroke_options_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """Vertex lists starting with a minus sign parse as values; a bad stroke ends with one line,
    exit status 2, before any model work."""
    from conftest import shared_path

    import SegMoTELib.commands.segment as segment_command
    from SegMoTELib.cli import attach_number_lists, main
    from SegMoTELib.io import read_volume

    assert attach_number_lists(["--ras-lasso", "-6,0,-3.5e1,1,2,3", "--point", "-4", "5"]) == \
        ["--ras-lasso=-6,0,-3.5e1,1,2,3", "--point", "-4", "5"]
    monkeypatch.setattr(segment_command, "predictor_from_args", lambda *a, **k: pytest.fail("the model loaded"))
    ct = shared_path("volumes", "totalseg_tests", "tests", "reference_files", "example_ct_sm.nii.gz")
    volume = read_volume(ct)
    on_slice = volume.ijk_to_ras_points([[40, 50, 10], [60, 50, 10], [60, 70, 10]])
    off_slice = volume.ijk_to_ras_points([[40, 50, 10], [60, 50, 12]])

    def numbers(points):
        return ",".join(f"{v:.3f}" for v in np.asarray(points).ravel())

    cases = [(["--ras-lasso", numbers(on_slice)[:-8]], "--ras-lasso: expected 3 numbers per vertex"),
             (["--ras-scribble", numbers(off_slice)], "--ras-scribble: the vertex at .* lies on axial slice 12"),
             (["--ras-negative-scribble", numbers(on_slice)], "negative prompts need a positive one too"),
             (["--scribble", "1,2,3,4"], "is a volume of 30 slices; give prompts in RAS mm")]
    for options, message in cases:
        assert main(["segment", str(ct), *options, "-o", str(tmp_path / "out.seg.nrrd")]) == 2
        assert re.search(message, capsys.readouterr().err), (options, message)
    assert not (tmp_path / "out.seg.nrrd").exists()
