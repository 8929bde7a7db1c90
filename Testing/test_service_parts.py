"""The service's parts without a server: wire codec, device queue order and thread (no model, no timing)."""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from SegMoTELib.errors import InputError
from SegMoTELib.service.codec import decode_mask, decode_voxels, encode_mask, encode_voxels
from SegMoTELib.service.device_queue import BATCH, INTERACTIVE, PREFETCH, DeviceQueue, DeviceQueueClosed


def test_masks_round_trip_compactly():
    rng = np.random.default_rng(3)
    labelmap = np.zeros((40, 300, 200), dtype=bool)
    labelmap[12, 100:180, 50:120] = rng.random((80, 70)) > 0.3
    encoded = encode_mask(labelmap)
    assert encoded["extent"] == [[12, 12], [100, 179], [50, 119]]
    assert len(encoded["bits"]) < 80 * 70 // 8 * 2  # a fraction of a byte per voxel of the block
    np.testing.assert_array_equal(decode_mask(encoded, labelmap.shape), labelmap)
    empty = encode_mask(np.zeros((3, 4, 5), dtype=bool))
    assert empty["extent"] is None and not decode_mask(empty, (3, 4, 5)).any()
    with pytest.raises(InputError, match="does not fit"):
        decode_mask(encoded, (10, 300, 200))


def test_voxels_round_trip_and_refuse_wrong_sizes_and_bombs():
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    np.testing.assert_array_equal(decode_voxels(encode_voxels(array), (2, 3, 4), "int16"), array)
    with pytest.raises(InputError, match="expected 48 bytes"):
        decode_voxels(encode_voxels(array[:1]), (2, 3, 4), "int16")
    bomb = zlib.compress(b"\0" * 50_000_000)  # 50 MB from ~50 kB: stops at the announced size + 1
    with pytest.raises(InputError, match="expected 48 bytes"):
        decode_voxels(bomb, (2, 3, 4), "int16")
    with pytest.raises(InputError, match="not zlib"):
        decode_voxels(b"plain bytes", (2, 3, 4), "int16")
    with pytest.raises(InputError, match="volume.dtype"):
        decode_voxels(encode_voxels(array), (2, 3, 4), "object")


def test_device_queue_serves_a_waiting_click_before_the_next_propagation_slice():
    queue = DeviceQueue()
    order = []
    holding, started = threading.Event(), threading.Event()

    def first_slice():
        order.append("slice 1")
        started.set()
        holding.wait(5)

    callers = [threading.Thread(target=queue.run, args=(BATCH, first_slice))]
    callers[0].start()
    started.wait(5)
    for name, priority in (("slice 2", BATCH), ("prefetch", PREFETCH), ("click", INTERACTIVE)):
        callers.append(threading.Thread(target=queue.run, args=(priority, lambda name=name: order.append(name))))
        callers[-1].start()
    while queue.waiting < 3:  # all three queue behind the slice being computed
        time.sleep(0.001)
    holding.set()
    for thread in callers:
        thread.join(5)
    assert order == ["slice 1", "click", "prefetch", "slice 2"]
    queue.close()


def test_device_queue_runs_every_call_on_its_one_thread_and_hands_back_results_and_errors():
    """One thread for all model calls: PyTorch keeps cuDNN's plans per thread (see device_queue)."""
    queue = DeviceQueue()
    threads = set()

    def record(value):
        threads.add(threading.get_ident())
        return value * 2

    callers = [threading.Thread(target=queue.run, args=(INTERACTIVE, lambda v=v: record(v))) for v in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(5)
    assert threads == {queue.thread.ident} and queue.thread.ident != threading.get_ident()
    assert queue.run(BATCH, lambda: record(21)) == 42
    assert queue.run(BATCH, lambda: queue.run(INTERACTIVE, lambda: "nested")) == "nested"  # no self-deadlock
    with pytest.raises(InputError, match="bad prompt"):
        queue.run(INTERACTIVE, lambda: (_ for _ in ()).throw(InputError("bad prompt")))
    queue.close()
    assert not queue.thread.is_alive()
    with pytest.raises(DeviceQueueClosed, match="stopping") as refused:
        queue.run(INTERACTIVE, lambda: None)
    assert refused.value.status == 503  # the server is going away, not a client's mistake


def test_a_propagation_on_the_device_thread_lets_a_queued_click_run_between_its_slices():
    queue = DeviceQueue()
    order = []
    first_slice_done, click_queued = threading.Event(), threading.Event()

    def propagation():  # one BATCH call; each slice's model call goes through the queue from its thread
        for index in range(3):
            queue.run(BATCH, lambda index=index: order.append(f"slice {index}"))
            if index == 0:
                first_slice_done.set()
                click_queued.wait(5)
                while queue.waiting < 1:
                    time.sleep(0.001)
        return "labelmap"

    job = threading.Thread(target=lambda: order.append(queue.run(BATCH, propagation)))
    job.start()
    first_slice_done.wait(5)
    click = threading.Thread(target=queue.run, args=(INTERACTIVE, lambda: order.append("click")))
    click.start()
    click_queued.set()
    for thread in (job, click):
        thread.join(5)
    assert order == ["slice 0", "click", "slice 1", "slice 2", "labelmap"]
    queue.close()


def test_device_queue_awaited_from_an_event_loop_returns_results_and_raises_errors():
    import asyncio

    queue = DeviceQueue()

    async def main():
        assert await queue.run_async(INTERACTIVE, threading.get_ident) == queue.thread.ident
        with pytest.raises(InputError, match="bad prompt"):
            await queue.run_async(INTERACTIVE, lambda: (_ for _ in ()).throw(InputError("bad prompt")))

    asyncio.run(main())
    queue.close()


class _CachingPredictor:
    """The part of SegMoTEPredictor that EngineHost manages: a content-keyed LRU of embeddings."""

    def __init__(self):
        from collections import OrderedDict

        self._cache = OrderedDict()
        self.cache_size = 100
        self.device = "cpu"

    @staticmethod
    def _key(pixels):
        return str(int(pixels.sum()))

    def set_image(self, image):
        import torch
        from types import SimpleNamespace

        key = self._key(image)
        if key not in self._cache:  # 1 MiB embedding + 1 MiB early features
            self._cache[key] = SimpleNamespace(embedding=torch.zeros(262144), early=torch.zeros(262144))
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def test_embedding_cache_is_capped_in_bytes_across_sessions_and_a_closed_sessions_part_dropped():
    pytest.importorskip("torch")
    from SegMoTELib.service.host import EngineHost

    host = EngineHost(_CachingPredictor(), cache_bytes=7 * 1024 * 1024)  # room for 3 entries of 2 MiB
    first, second = set(), set()
    slices = [np.full((4, 4), value, np.uint8) for value in range(1, 6)]
    for image in slices[:3]:
        host.session_predictor(first).prefetch(image)
    for image in slices[2:]:
        host.session_predictor(second).prefetch(image)
    cache = host.predictor._cache
    assert list(cache) == ["48", "64", "80"] and host.cached_bytes == 3 * 2 * 1024 * 1024  # LRU across sessions
    assert first == {"16", "32", "48"} and second == {"48", "64", "80"}
    host.forget(first, still_used=second)  # slice 3 is still the second session's
    assert list(cache) == ["48", "64", "80"]
    host.forget(second, still_used=set())
    assert not cache


def test_while_a_walk_waits_for_a_background_embedding_the_host_runs_the_queued_clicks():
    pytest.importorskip("torch")
    from SegMoTELib.service.host import EngineHost

    host = EngineHost(_CachingPredictor(), cache_bytes=1 << 20)
    order = []

    def walk_step(predictor):  # a propagation slice whose embedding is still on the GPU
        click = threading.Thread(target=host.device_queue.run, args=(INTERACTIVE, lambda: order.append("click")))
        click.start()
        while host.device_queue.waiting < 1:
            time.sleep(0.001)
        predictor.while_embedding_pending()  # what SegMoTEPredictor calls until the embedding is ready
        order.append("slice decoded")
        return click

    host.call(None, set(), BATCH, walk_step).join(5)
    assert order == ["click", "slice decoded"]
    host.close()


def test_serve_takes_its_token_from_the_environment_or_a_file_never_the_command_line(tmp_path, monkeypatch):
    from SegMoTELib.cli import build_parser
    from SegMoTELib.commands.serve import read_token

    monkeypatch.delenv("SEGMOTE_TOKEN", raising=False)
    with pytest.raises(InputError, match="set the SEGMOTE_TOKEN environment variable or give --token-file"):
        read_token(None)
    monkeypatch.setenv("SEGMOTE_TOKEN", "short")
    with pytest.raises(InputError, match="at least 16 characters"):
        read_token(None)
    monkeypatch.setenv("SEGMOTE_TOKEN", "a-long-enough-token-from-the-env")
    assert read_token(None) == "a-long-enough-token-from-the-env"
    token_file = tmp_path / "token"
    token_file.write_text("a-long-enough-token-from-a-file\n")
    token_file.chmod(0o600)
    assert read_token(str(token_file)) == "a-long-enough-token-from-a-file"
    with pytest.raises(InputError, match="--token-file: cannot read"):
        read_token(str(tmp_path / "missing"))
    with pytest.raises(SystemExit):  # there is no option that takes the token itself
        build_parser().parse_args(["serve", "--token", "a-long-enough-token-on-the-command-line"])


def test_serve_refuses_a_taken_port_before_loading_the_model(monkeypatch, capsys):
    import socket

    from SegMoTELib.cli import main

    monkeypatch.setenv("SEGMOTE_TOKEN", "a-long-enough-token-from-the-env")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"segmote serve: error: --host/--port: cannot listen on 127.0.0.1:{port}"), error


def test_a_call_whose_turn_comes_after_its_deadline_is_refused_without_running():
    import asyncio

    from SegMoTELib.service.device_queue import DeadlinePassed

    queue = DeviceQueue()
    holding, started, ran = threading.Event(), threading.Event(), []
    blocker = threading.Thread(target=queue.run, args=(BATCH, lambda: (started.set(), holding.wait(5))))
    blocker.start()
    started.wait(5)

    async def late_click():
        return await queue.run_async(INTERACTIVE, lambda: ran.append("click"), deadline=time.monotonic() + 0.05)

    async def scenario():
        click = asyncio.ensure_future(late_click())
        await asyncio.sleep(0.2)  # the device is busy past the click's deadline
        holding.set()
        return await asyncio.gather(click, return_exceptions=True)

    (outcome,) = asyncio.run(scenario())
    blocker.join(5)
    assert isinstance(outcome, DeadlinePassed) and outcome.status == 503 and "--request-budget" in outcome.message
    assert ran == []
    assert queue.run(INTERACTIVE, lambda: "on time") == "on time"
    queue.close()


def test_one_priority_order_for_the_glue_and_the_server():
    from SegMoTELib import priorities
    from SegMoTELib.service import device_queue

    assert priorities.INTERACTIVE < priorities.PREFETCH < priorities.BATCH
    assert (device_queue.INTERACTIVE, device_queue.PREFETCH, device_queue.BATCH) == priorities.PRIORITIES
    glue = (Path(__file__).resolve().parents[1] / "SegMoTE" / "SegMoTEGlue" / "worker.py").read_text()
    assert "from SegMoTELib.priorities import BATCH, INTERACTIVE, PREFETCH" in glue
    assert "INTERACTIVE = " not in glue and "BATCH = " not in glue


def test_a_slice_result_is_written_without_a_full_volume_allocation():
    """Issue 19, item 5: a click's mask is its one-slice block, pasted into the array the Segment
    Editor already holds (its modifier labelmap), never a new array of the volume's size."""
    import tracemalloc

    from SegMoTELib.service.codec import MaskBlock, encode_mask

    shape = (400, 512, 512)  # 105 MB as bool
    target = np.ones(shape, dtype=np.uint8)  # the modifier labelmap, with old content
    one_slice = np.zeros((1, 512, 512), dtype=bool)
    one_slice[0, 100:300, 50:250] = True
    encoded = encode_mask(one_slice)
    encoded["extent"][0] = [123, 123]  # the slice's place in the volume, as the server sends it
    tracemalloc.start()
    try:
        MaskBlock.decode(encoded, shape).paste_into(target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 512 * 512, f"{peak} bytes allocated for a one-slice mask"
    assert target[123, 100:300, 50:250].all() and target.sum() == 200 * 200  # old content cleared
