"""`segmote bench --server`: the engine through a local `segmote serve` against in-process, one run.

Both sides have the same model settings (the speed options of the device, as Slicer uses them),
the same CT-like tube volume and the same prompts; calls are timed in turns. Click and box: a
prompt on a slice whose embedding is cached, up to the labelmap in the volume (each side in
blocks of calls, never directly after the other's: see `_timed_in_blocks`). Propagation: from
a box on the middle slice through the volume, embeddings included (each repeat shifts the voxel
values by 1 HU so that no side finds a cached slice). Then the emulated Slicer GUI thread
(`gil_emulation`): a click from a worker thread, in-process vs the service client; and the glue's
real path, a click through Qt's asynchronous HTTP on a main thread whose event loop holds the GIL
as Slicer's does, against the same click with the loop idle (PySide6 standing in for PythonQt),
and the previous glue path (a worker thread, results delivered by a 25 ms timer) under the same loop.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..slice_prompt import SlicePrompt
from ..walk_rules import PropagationRules

IN_PROCESS, SERVER = "in-process", "server"
# The propagation row measures the engine, not the stop rules: with the hand rules and no score floor
# the walk crosses the tube volume end to end (the shipped adapter's predicted IoU dips below 0.5 on
# this synthetic tube).
WALK_RULES = PropagationRules(decision="rules", min_score=0.0)
SECTIONS = ("prompts", "propagation", "during", "gil", "glue")  # --only for `bench --server`


def run_service_benchmark(device: str = "auto", quick: bool = False, repeats: int | None = None,
                          volume_slices: int | None = None, threads: int | None = 2, fast: bool = True,
                          runtime: str = "auto", log=print, sections: tuple[str, ...] = SECTIONS) -> dict:
    import torch

    from .data import BENCH_MAPPING, tube_volume
    from .timing import machine_info
    from ..device import select_device
    from ..modeling.speed import fast_options
    from ..predictor import SegMoTEPredictor
    from ..segment3d import VolumeSegmenter
    from ..service.launcher import LocalEngine

    chosen = select_device(device)
    gpu = chosen.type == "cuda"
    if threads and chosen.type == "cpu":
        torch.set_num_threads(int(threads))
    repeats = repeats or (5 if quick else 20) if gpu else repeats or (3 if quick else 10)
    slices = volume_slices or (300 if gpu else (6 if quick else 16))
    volume_repeats = 2 if quick or not gpu else 3
    log(f"making the {slices}-slice tube volume ...")
    tube = tube_volume(n_slices=slices)
    options = fast_options(str(chosen)) if fast else {}
    log(f"loading the in-process predictor on {chosen} and starting a local server ...")
    predictor = SegMoTEPredictor(device=str(chosen), cache_size=slices + 16, runtime=runtime, **options)
    engine = LocalEngine(options=["--device", str(chosen), "--runtime", runtime, *(["--fast"] if fast else []),
                                  "--cache-mb", "16384", "--max-voxels", str(max(tube.volume.array.size, 1 << 28))])
    engine.start()
    result = {"machine": machine_info(chosen), "settings": {"device": str(chosen), "repeats": repeats,
                                                             "volume_slices": slices, "fast": fast, "threads": threads,
                                                             "runtime": predictor.runtime_name},
              "rows": [], "errors": []}
    try:
        client = engine.client()
        result["server"] = client.info()
        segmenter = VolumeSegmenter(predictor, tube.volume, BENCH_MAPPING)
        remote = client.open_volume(tube.volume, BENCH_MAPPING)
        click = _click_ras(tube)
        # In-process work runs on one worker thread, as in Slicer's effect and as the server's own
        # calls do: on a loaded CPU, torch called from the main thread ran up to 4x slower here.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-process") as worker:
            if "prompts" in sections:
                result["rows"] += _prompt_rows(segmenter, remote, tube, click, repeats, log, worker)
            if "propagation" in sections:
                result["rows"].append(_propagation_row(predictor, engine, tube, BENCH_MAPPING, volume_repeats, log,
                                                       worker))
        if "during" in sections:
            result["rows"].append(_click_during_propagation_row(engine, tube, BENCH_MAPPING, remote, click, log))
        if "gil" in sections:
            result["rows"] += _gil_rows(segmenter, remote, click, max(3, repeats // 4), log)
        if "glue" in sections:
            glue_rows, note = _glue_rows(engine, remote, click, max(8, repeats), log)
            result["rows"] += glue_rows
            if note:
                result["errors"].append(note)
        remote.close()
        client.close()
    finally:
        engine.stop()
    result["machine"] = machine_info(chosen)  # the load average at the end
    return result


def _click_ras(tube) -> np.ndarray:
    ys, xs = np.nonzero(tube.truth[tube.seed_index])
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return tube.volume.ijk_to_ras_points([[xs[nearest], ys[nearest], tube.seed_index]])


def _row(measurement: str, timings: dict, detail: str = "") -> dict:
    return {"measurement": measurement, "results": {name: t.as_dict() for name, t in timings.items()},
            "detail": detail}


def _timed_in_blocks(calls: dict, repeats: int, sync, rounds: int = 2, pause_s: float = 0.5) -> dict:
    """Each side timed in blocks of calls, the blocks alternating (A, B, A, B), with a pause before
    each: calls of the two processes never follow each other directly, because a CPU's torch threads
    keep spinning for a while after their work and would slow the other process's next call."""
    from .timing import Timing

    seconds = {name: [] for name in calls}
    per_round = [repeats // rounds + (1 if index < repeats % rounds else 0) for index in range(rounds)]
    for count in per_round:
        for name, call in calls.items():
            time.sleep(pause_s)
            call()  # warm-up
            for _ in range(count):
                sync()
                started = time.perf_counter()
                call()
                sync()
                seconds[name].append(time.perf_counter() - started)
    return {name: Timing(values) for name, values in seconds.items()}


def _prompt_rows(segmenter, remote, tube, click, repeats: int, log, worker) -> list[dict]:
    from .timing import synchronizer

    sync = synchronizer(segmenter.predictor.device)
    rows = []
    prompts = {"click (1 positive point)": SlicePrompt.build("ras", points=click),
               "box": SlicePrompt.build("ras", box=tube.seed_box_ras)}
    for name, prompt in prompts.items():
        log(f"{name} latency ...")
        def local_call(prompt=prompt):
            return worker.submit(lambda: segmenter.segment_slice(prompt, "axial").labelmap).result()

        def served_call(prompt=prompt):
            return remote.segment_slice(prompt, "axial").labelmap

        same = bool(np.array_equal(local_call(), served_call()))
        area = int(local_call().sum())
        timings = _timed_in_blocks({IN_PROCESS: local_call, SERVER: served_call}, repeats, sync)
        rows.append(_row(f"{name} → labelmap, embedding cached", timings,
                         f"masks equal: {same}; {area} pixels"))
    return rows


def _propagation_row(predictor, engine, tube, mapping, repeats: int, log, worker) -> dict:
    from .timing import Timing, synchronizer
    from ..evaluation import dice_score
    from ..segment3d import VolumeSegmenter

    sync = synchronizer(predictor.device)
    client = engine.client()
    seconds = {IN_PROCESS: [], SERVER: []}
    agreement = []
    for repeat in range(repeats):
        shifted = tube.volume.with_array(tube.volume.array + np.int16(repeat + 1), modality="CT")
        log(f"propagation {repeat + 1}/{repeats} ...")
        predictor.clear_cache()
        segmenter = VolumeSegmenter(predictor, shifted, mapping)
        seed = worker.submit(segmenter.segment_slice, SlicePrompt.build("ras", box=tube.seed_box_ras), "axial").result()
        sync()
        time.sleep(0.5)
        started = time.perf_counter()
        local = worker.submit(segmenter.propagate, seed, rules=WALK_RULES).result()
        sync()
        seconds[IN_PROCESS].append(time.perf_counter() - started)
        with client.open_volume(shifted, mapping) as remote:
            remote_seed = remote.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial")
            time.sleep(0.5)
            started = time.perf_counter()
            served = remote.propagate(remote_seed, rules=WALK_RULES)
            seconds[SERVER].append(time.perf_counter() - started)
        agreement.append(dice_score(local, served))
    client.close()
    timings = {name: Timing(values) for name, values in seconds.items()}
    slices = tube.volume.array.shape[0]
    walked = int(local.any(axis=(1, 2)).sum())
    stops = "; ".join(f"{'up' if stop.direction > 0 else 'down'}: {stop.reason} at slice {stop.last_index}"
                      for stop in segmenter.last_stops)
    return _row(f"propagation through {slices} slices (box seed, embeddings included)", timings,
                f"Dice server vs in-process: min {min(agreement):.4f}; {int(local.sum())} voxels on {walked} "
                f"slices ({stops})")


def _click_during_propagation_row(engine, tube, mapping, remote, click, log) -> dict:
    """Clicks of one client (its slice embedded), back to back, while another client's propagation
    crosses the volume: each waits at most for the propagation's current model call (the device
    queue serves clicks first), then shares the GPU with its background embedding."""
    import threading

    from .timing import Timing

    log("clicks while another session propagates ...")
    click_prompt = SlicePrompt.build("ras", points=click)
    idle = [_seconds(lambda: remote.segment_slice(click_prompt, "axial")) for _ in range(10)]
    busy: list[float] = []
    running, ended, walk = threading.Event(), threading.Event(), {}

    def propagate():
        client = engine.client()
        # voxels shifted unlike the propagation row's repeats, so that no slice is cached
        shifted = tube.volume.with_array(tube.volume.array + np.int16(11), modality="CT")
        with client.open_volume(shifted, mapping) as other:
            seed = other.segment_slice(SlicePrompt.build("ras", box=tube.seed_box_ras), "axial")
            started = time.perf_counter()
            running.set()
            try:
                walk["labelmap"] = other.propagate(seed, rules=WALK_RULES)
            finally:
                walk["seconds"] = time.perf_counter() - started
                ended.set()
        client.close()

    thread = threading.Thread(target=propagate, name="other client")
    thread.start()
    running.wait(600)
    while not ended.is_set():
        seconds = _seconds(lambda: remote.segment_slice(click_prompt, "axial"))
        if not ended.is_set():  # a click that outlasted the propagation does not count
            busy.append(seconds)
        time.sleep(0.005)
    thread.join()
    kept = int(walk["labelmap"].any(axis=(1, 2)).sum()) if "labelmap" in walk else 0
    busy = busy or idle
    return _row("click through the server while another session propagates",
                {"idle server": Timing(idle), "during the propagation": Timing(busy)},
                f"{len(busy)} clicks during the other session's propagation ({kept} slices, "
                f"{walk.get('seconds', 0.0):.2f} s): 90th percentile {1000 * np.percentile(busy, 90):.1f} ms, "
                f"slowest {1000 * max(busy):.1f} ms")


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _gil_rows(segmenter, remote, click, repeats: int, log) -> list[dict]:
    from .timing import Timing
    from . import gil_emulation

    if not gil_emulation.available():
        return []
    log("click from a worker thread beside an emulated Slicer GUI thread ...")
    click_prompt = SlicePrompt.build("ras", points=click)
    calls = {IN_PROCESS: lambda: segmenter.segment_slice(click_prompt, "axial").labelmap,
             SERVER: lambda: remote.segment_slice(click_prompt, "axial").labelmap}
    rows = []
    for held, label in ((False, "main thread idle"), (True, f"main thread holds the GIL, polls every "
                                                           f"{gil_emulation.POLL_MS:g} ms")):
        seconds = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                time.sleep(0.5)  # the other process's torch threads stop spinning
                seconds[name].append(gil_emulation.timed_in_worker(call, held))
        rows.append(_row(f"worker-thread click, {label}", {n: Timing(v) for n, v in seconds.items()}))
    return rows


def _glue_rows(engine, remote, click, repeats: int, log) -> tuple[list[dict], str | None]:
    """The Slicer glue's click: Qt's asynchronous HTTP on the main thread (`service.qt_client`), the
    main thread's event loop idle or holding the GIL (Slicer); the previous glue path beside it."""
    from ..service import operations, pyside_qt
    from ..service.qt_client import QtRunner
    from . import gil_emulation
    from .timing import Timing

    if not gil_emulation.qt_available():
        return [], "glue-path rows skipped: they need PySide6 (pip install pyside6-essentials) on Linux"
    log("click through the glue's Qt path beside an emulated Slicer main thread ...")
    qt = pyside_qt.namespace()
    runner = QtRunner(qt, engine.url, engine.token)
    calls = operations.SessionCalls(remote.id, remote.volume)
    failures: list = []

    def on_qt(operation):
        def start(done):
            runner.start(operation(), lambda _result: done(), lambda error: (failures.append(error), done()))
        return start

    def click_operation():
        return calls.segment_slice(SlicePrompt.build("ras", points=click), "axial")

    paths = {  # (what, path): start(done)
        ("click", "qt"): on_qt(click_operation),
        ("click", "worker"): gil_emulation.worker_thread_delivery(
            lambda: remote.segment_slice(SlicePrompt.build("ras", points=click), "axial")),
        ("round trip", "qt"): on_qt(operations.info),
        ("round trip", "worker"): gil_emulation.worker_thread_delivery(remote.client.info),
    }
    seconds = {(key, held): [] for key in paths for held in (False, True)}
    gil_emulation.timed_on_qt_main_thread(paths[("click", "qt")], False)  # warm-up: connection, first decode
    for _ in range(repeats):
        for key, start in paths.items():
            for held in (False, True):  # in pairs, so that a slow spell of the machine hits both
                time.sleep(0.3 if key[0] == "click" else 0.05)  # the server's torch threads stop spinning
                seconds[(key, held)].append(gil_emulation.timed_on_qt_main_thread(start, held))
    if failures:
        raise failures[0]
    idle, slicer = "main thread idle", "main thread holds the GIL in its event loop (Slicer)"
    titles = {("click", "qt"): "click (1 point, embedding cached), the glue's path: Qt HTTP on the main thread",
              ("click", "worker"): "click, the previous glue path: a worker thread, delivered by a 25 ms timer",
              ("round trip", "qt"): "round trip without model work (GET /v1/info), the glue's path",
              ("round trip", "worker"): "round trip without model work, the previous glue path"}
    rows = []
    for key, title in titles.items():
        pairs = np.array(seconds[(key, True)]) - np.array(seconds[(key, False)])
        rows.append(_row(title, {idle: Timing(seconds[(key, False)]), slicer: Timing(seconds[(key, True)])},
                         f"{repeats} pairs; per pair, held − idle: median {1000 * np.median(pairs):+.1f} ms, "
                         f"q1–q3 {1000 * np.percentile(pairs, 25):+.1f} to {1000 * np.percentile(pairs, 75):+.1f} ms"))
    return rows, None


def format_markdown(result: dict) -> str:
    machine = result["machine"]
    where = machine.get("gpu") or f"{machine.get('cpu', '')}, {machine.get('torch_threads')} torch threads"
    lines = [f"Engine through a local `segmote serve` vs in-process, {result['settings']['device']} ({where}); "
             f"{result['settings']}", "",
             "| measurement | in-process, median (q1–q3) | through the server | server − in-process |",
             "|---|---|---|---|"]
    for row in result["rows"]:
        (first, local), (second, served) = row["results"].items()
        named = (first, second) != (IN_PROCESS, SERVER)  # a row comparing something else says what
        extra = served["median_s"] - local["median_s"]
        lines.append(f"| {row['measurement']} | {first + ': ' if named else ''}{_ms(local)} | "
                     f"{second + ': ' if named else ''}{_ms(served)} | {extra * 1000:+.1f} ms "
                     f"({100 * extra / local['median_s']:+.0f} %) |")
    lines += [""] + [f"- {row['measurement']}: {row['detail']}" for row in result["rows"] if row.get("detail")]
    lines += [f"- error: {error}" for error in result.get("errors", [])]
    return "\n".join(lines)


def _ms(stats: dict) -> str:
    return f"{stats['median_s'] * 1000:.1f} ms ({stats['q1_s'] * 1000:.1f}–{stats['q3_s'] * 1000:.1f})"
