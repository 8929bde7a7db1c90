"""The Segment Editor effect on Slicer's real classes (slicer-core): what a prompt does to a segment.

Real: the scene, volume, segmentation, segment editor node and `vtkSlicerSegmentEditorLogic` (the code
Slicer 5.10's effects write through), the markups, the engine (SegMoTELib's VolumeSegmenter with
LiteMedSAM on the CPU, in this process). Fakes: the Qt widgets of the options panel, the effect base
class (AbstractScriptedSegmentEditorEffect) and the worker's delivery of results to the main thread
(`deliver()`, which the worker's Qt timer does in Slicer). The scriptedEffect's calls are forwarded
to the real logic as Slicer forwards them (slicer_scene.SegmentEditorCalls).
"""

from __future__ import annotations

import inspect
import sys
import types

import numpy as np
import pytest
from slicer_fakes import glue_modules, import_glue
from slicer_scene import REPO_SELFTESTS, SegmentEditorCalls, real_scene  # noqa: F401  (fixture)

from SegMoTELib.service.operations import run_in_process

slicer = pytest.importorskip("slicer")

sys.path.insert(0, str(REPO_SELFTESTS))
from SegMoTESelfTestCase import BOX_IJK, CLICK_IJK, NEGATIVE_CLICK_IJK, makeSelfTestPhantom  # noqa: E402

sys.path.remove(str(REPO_SELFTESTS))


def box_on(k: int, shrink: int = 0):
    (i0, j0, _), (i1, j1, _) = BOX_IJK
    return (i0 + shrink, j0 + shrink, k), (i1 - shrink, j1 - shrink, k)


class ScriptedEffect(SegmentEditorCalls):
    """qSlicerSegmentEditorScriptedEffect: the real logic's calls, plus the parameters and panel calls."""

    NotConfirmed, ConfirmedWithoutDialog = 0, 1

    def __init__(self, *args):
        super().__init__(*args)
        self.parameters: dict[str, str] = {}
        self.actors2d: list = []  # (slice widget, vtkActor2D) shown

    def addActor2D(self, viewWidget, actor):
        self.actors2d.append((viewWidget, actor))

    def removeActor2D(self, viewWidget, actor):
        self.actors2d.remove((viewWidget, actor))

    def parameter(self, name):
        return self.parameters[name]

    def integerParameter(self, name):
        return int(self.parameters[name])

    def setParameter(self, name, value):
        self.parameters[name] = str(value)

    def setParameterDefault(self, name, value):
        self.parameters.setdefault(name, str(value))

    def confirmCurrentSegmentVisible(self):
        return self.ConfirmedWithoutDialog

    def addLabeledOptionsWidget(self, *args):
        pass

    def addOptionsWidget(self, *args):
        pass


class InProcessSession:
    """The engine handle (SegMoTEGlue.engine.Engine): calls run when the test delivers them, against
    SegMoTELib in this process, one VolumeSegmenter per key as the engine keeps one server session
    per key. (The engine itself, on a real Qt event loop and real servers: test_slicer_engine.py.)"""

    state = "stopped"

    def __init__(self, predictor):
        self.predictor, self.queue, self.segmenters, self.arguments = predictor, [], {}, []
        self.listeners = []

    def submit(self, run, title, priority, onDone=None, onError=None, replaceKey=None):
        job = types.SimpleNamespace(cancelled=False, finished=False, cancel=lambda: None, reportProgress=lambda *a: None)
        job.cancel = lambda: setattr(job, "cancelled", True)
        self.queue.append((job, run, onDone, onError))
        return job

    def addListener(self, listener):
        self.listeners.append(listener)

    def removeListener(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)

    def hasSession(self, key):
        return key in self.segmenters

    def segmenterFor(self, key, volume, mapping=None):
        from SegMoTELib.segment3d import VolumeSegmenter

        if key not in self.segmenters:
            self.segmenters[key] = VolumeSegmenter(self.predictor, volume, mapping)
        segmenter = self.segmenters[key]
        session = self

        class Recording:  # what the effect asked the engine for
            def __getattr__(self, name):
                method = getattr(segmenter, name)

                def call(*args, **kwargs):
                    session.arguments.append((name, kwargs))
                    return method(*args, **kwargs)

                return call

        return Recording()

    def deliver(self) -> None:
        queue, self.queue = self.queue, []
        for job, run, onDone, onError in queue:
            if job.cancelled:
                continue
            try:
                result = run(job)
                if inspect.isgenerator(result):  # a compute step written for the engine's operations
                    result = run_in_process(result)
                if hasattr(result, "mask2d") and not hasattr(result, "mask_block"):
                    # the engine's slice results hand the effect their one-slice block; in process,
                    # the labelmap (sliced by the same slab) stands for it
                    result.mask_block = lambda result=result: result.labelmap
            except Exception as error:  # noqa: BLE001  (handed over, as the engine does)
                onError(error)
            else:
                onDone(result)


class FakeFeedback:
    def __init__(self, *args, **kwargs):
        pass

    def close(self):
        pass


class Editor:
    """A phantom volume, a segmentation with segments "liver" and "other", and the active effect."""

    def __init__(self, scene, effectModule, session):
        phantom = makeSelfTestPhantom()
        self.scene = scene
        self.volumeNode = scene.addVolume(phantom.image.array.copy(), ijkToRas=phantom.image.ijk_to_ras)
        self.segmentationNode, (self.liver, self.other) = scene.addSegmentation(self.volumeNode, "liver", "other")
        self.calls = ScriptedEffect(scene, self.volumeNode, self.segmentationNode, self.liver)
        self.session = session
        self.effect = effectModule.SegmentEditorEffect(self.calls)
        self.effect.setMRMLDefaults()
        self.effect.setupOptionsFrame()
        self.effect.activate()

    def mask(self, segmentId=None) -> np.ndarray:
        return self.scene.segmentArray(self.segmentationNode, segmentId or self.liver, self.volumeNode)

    def slices(self, segmentId=None) -> list[int]:
        return np.flatnonzero(self.mask(segmentId).any(axis=(1, 2))).tolist()

    def paint(self, segmentId, voxels) -> None:
        """What another tool (Paint, Threshold, a loaded file) leaves in a segment."""
        self.scene.slicer.util.updateSegmentBinaryLabelmapFromArray(voxels.astype(np.uint8), self.segmentationNode,
                                                                    segmentId, self.volumeNode)

    def box(self, k: int, shrink: int = 0) -> None:
        self.effect.setBoxPromptIjk(*box_on(k, shrink), orientation="axial")
        self.session.deliver()


@pytest.fixture
def editor(real_scene, base_predictor, monkeypatch):  # noqa: F811
    with glue_modules(slicer):
        module = import_glue("SegmentEditorSegMoTELib.SegmentEditorEffect")
        session = InProcessSession(base_predictor)
        monkeypatch.setattr(module, "engineFor", lambda settings=None: session)
        monkeypatch.setattr(module, "BusyFeedback", FakeFeedback)
        monkeypatch.setattr(module, "engineStatus", lambda: types.SimpleNamespace(ready=False, installable=False,
                                                                                  describe=lambda: ""))
        editor = Editor(real_scene, module, session)
        # as Slicer's layout manager: no view of that name (the prompt API's "API") gives None
        slicer.app.layoutManager = lambda: types.SimpleNamespace(sliceWidget=lambda name: None, sliceViewNames=lambda: [])
        yield editor


# --- results keep everything outside their slices -------------------------------------------------------
def test_a_prompt_on_slice_b_keeps_slice_a(editor):
    """Slicer's Set with an extent cleared the whole segment first: slice 11 vanished with the box on 13."""
    editor.box(11)
    sliceA = editor.mask()[11].copy()
    editor.box(13)
    assert editor.slices() == [11, 13]
    np.testing.assert_array_equal(editor.mask()[11], sliceA)


def test_propagating_some_slices_keeps_the_rest_and_a_correction_keeps_the_propagation(editor):
    painted = np.zeros(editor.mask().shape, bool)
    painted[2, 60:80, 120:140] = painted[20, 60:80, 120:140] = True  # another tool's slices
    editor.paint(editor.liver, painted)
    editor.box(12)
    editor.calls.setParameter("LimitRange", 1)
    editor.calls.setParameter("FirstSlice", 11)
    editor.calls.setParameter("LastSlice", 13)
    editor.effect.onPropagate()
    editor.session.deliver()
    propagated = editor.mask()
    assert editor.slices() == [2, 11, 12, 13, 20]
    np.testing.assert_array_equal(propagated[[2, 20]], painted[[2, 20]])
    editor.box(13, shrink=15)  # a correction on one slice of the propagation
    corrected = editor.mask()
    np.testing.assert_array_equal(corrected[[2, 11, 12, 20]], propagated[[2, 11, 12, 20]])
    assert 0 < corrected[13].sum() < propagated[13].sum()


def test_an_editable_area_mask_is_honoured(editor):
    """Editable area "inside all segments" with "other" covering the box's left half, no overwriting: on
    slice 12 the result lands only inside "other"; the liver's slice 10, outside the editable area, stays."""
    editorNode = editor.calls.editorNode
    earlier = np.zeros(editor.mask().shape, bool)
    earlier[10, 70:100, 130:160] = True
    editor.paint(editor.liver, earlier)
    other = np.zeros(editor.mask().shape, bool)
    other[12, 40:140, 90:138] = True
    editor.paint(editor.other, other)
    editorNode.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideAllSegments)
    editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    editor.box(12)
    liver = editor.mask()
    assert liver[12].any() and not (liver[12] & ~other[12]).any()
    np.testing.assert_array_equal(liver[10], earlier[10])
    np.testing.assert_array_equal(editor.mask(editor.other), other)


def test_editing_inside_one_other_segment_gives_it_nothing(editor):
    """Editable area "inside segment other": Slicer's Remove would hand the liver's removed voxels to
    "other" (split by painting). The liver's slice-12 voxels outside "other" stay, "other" is unchanged,
    the liver's slice 10 stays."""
    editorNode = editor.calls.editorNode
    liverBefore = np.zeros(editor.mask().shape, bool)
    liverBefore[10, 70:100, 130:160] = liverBefore[12, 60:70, 150:170] = True
    editor.paint(editor.liver, liverBefore)
    other = np.zeros(editor.mask().shape, bool)
    other[12, 40:140, 90:138] = True
    editor.paint(editor.other, other)
    editorNode.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
    editorNode.SetMaskSegmentID(editor.other)
    editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    editor.box(12)
    liver = editor.mask()
    assert (liver[12] & other[12]).any() and not (liver[12] & ~other[12] & ~liverBefore[12]).any()
    np.testing.assert_array_equal(liver[12] & ~other[12], liverBefore[12] & ~other[12])
    np.testing.assert_array_equal(liver[10], liverBefore[10])
    np.testing.assert_array_equal(editor.mask(editor.other), other)


@pytest.mark.parametrize("maskMode", ["EditAllowedInsideAllSegments", "EditAllowedInsideSingleSegment"])
def test_refining_inside_an_editable_area_that_holds_the_segment_keeps_its_voxels(editor, maskMode):
    """Editable areas "inside all segments" and "inside segment liver" contain the liver itself, and
    Slicer computes the area anew on each modify call from the segments as they are then
    (vtkSlicerSegmentEditorLogic::UpdateMaskLabelmap, 5.10). Removing the slab first took the liver's
    slab voxels out of the area the result was then added in: a refinement emptied the slice outside
    "other". As Set: the liver's slice becomes the result inside the area as it was before the write."""
    editorNode = editor.calls.editorNode
    liverBefore = np.zeros(editor.mask().shape, bool)
    liverBefore[12, 70:110, 140:165] = True
    editor.paint(editor.liver, liverBefore)
    other = np.zeros(editor.mask().shape, bool)
    other[12, 40:140, 90:138] = True
    editor.paint(editor.other, other)
    editorNode.SetMaskMode(getattr(slicer.vtkMRMLSegmentationNode, maskMode))
    editorNode.SetMaskSegmentID(editor.liver)
    editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    editor.box(12)
    result = np.asarray(editor.effect.prompts.lastResult.labelmap[12], bool)
    editable = liverBefore[12] | other[12] if maskMode.endswith("AllSegments") else liverBefore[12]
    assert (result & liverBefore[12] & ~other[12]).any()  # the refinement covers liver voxels outside "other"
    np.testing.assert_array_equal(editor.mask()[12], result & editable)
    np.testing.assert_array_equal(editor.mask(editor.other), other)


def test_overwriting_other_segments_stays_on_the_written_slices(editor):
    """Overwrite "all segments": the other segment loses what the result covers on slice 12 only."""
    other = np.zeros(editor.mask().shape, bool)
    other[10:15, 60:120, 110:160] = True
    editor.paint(editor.other, other)
    editor.calls.editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
    editor.box(11)
    liverSlice11 = editor.mask()[11].copy()
    editor.box(12)
    remaining = editor.mask(editor.other)
    np.testing.assert_array_equal(remaining[[10, 13, 14]], other[[10, 13, 14]])
    assert not (remaining[12] & editor.mask()[12]).any() and remaining[12].sum() < other[12].sum()
    np.testing.assert_array_equal(editor.mask()[11], liverSlice11)


def test_undo_restores_the_segment_and_resets_the_prompts(editor):
    editor.box(11)
    editor.box(12)
    before = editor.mask()
    editor.effect.addPointPromptIjk(NEGATIVE_CLICK_IJK, positive=False, orientation="axial")
    editor.session.deliver()
    assert not np.array_equal(editor.mask(), before)
    editor.calls.undo()
    np.testing.assert_array_equal(editor.mask(), before)
    assert editor.effect.prompts is None  # the logits of the undone click are gone with it
    assert editor.effect.markers.positiveNode.GetNumberOfControlPoints() == 0
    assert editor.effect.markers.negativeNode.GetNumberOfControlPoints() == 0


def test_no_undo_state_when_the_segmentation_geometry_differs(editor):
    """The labelmap would land on other voxels: refused with a message, nothing saved for undo."""
    image = editor.calls.sourceVolumeImageData()
    smaller = slicer.vtkOrientedImageData()
    smaller.DeepCopy(image)
    smaller.SetExtent(0, 10, 0, 10, 0, 10)
    written = editor.effect.writeLabelmap(np.ones((24, 176, 208), bool), smaller, 2, 12, 12)
    assert written is False and "geometry" in editor.effect.statusLabel.text
    assert not editor.calls.logic.CanUndo() and not editor.mask().any()


# --- refining an existing segment ------------------------------------------------------------------------
def test_the_first_prompt_on_a_painted_slice_is_seeded_with_it(editor):
    """The segment's slice goes to the engine as seed_mask with the first prompt there, not with the next."""
    from SegMoTELib import geometry

    painted = np.zeros(editor.mask().shape, bool)
    painted[12, 70:110, 125:165] = True
    editor.paint(editor.liver, painted)
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    editor.session.deliver()
    name, first = editor.session.arguments[-1]
    volume = editor.effect.context()[2]
    ref = geometry.slice_through(volume, "axial", volume.ijk_to_ras_points([CLICK_IJK])[0])
    np.testing.assert_array_equal(first["prompt"].seed_mask, geometry.extract_slice(volume.with_array(painted), ref))
    assert name == "segment_slice" and first["prompt"].mask_input is None
    editor.effect.addPointPromptIjk((CLICK_IJK[0] - 10, CLICK_IJK[1], 12), orientation="axial")
    editor.session.deliver()
    second = editor.session.arguments[-1][1]["prompt"]
    assert second.seed_mask is None and second.mask_input is not None
    editor.effect.addPointPromptIjk((CLICK_IJK[0], CLICK_IJK[1], 5), orientation="axial")  # empty slice 5
    editor.session.deliver()
    assert editor.session.arguments[-1][1]["prompt"].seed_mask is None


# --- markers ----------------------------------------------------------------------------------------------
def test_markers_follow_the_selected_segment(editor):
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    editor.session.deliver()
    markers = editor.effect.markers
    assert markers.positiveNode.GetNumberOfControlPoints() == 1
    editor.calls.editorNode.SetSelectedSegmentID(editor.other)
    assert markers.positiveNode.GetNumberOfControlPoints() == 0
    editor.calls.editorNode.SetSelectedSegmentID(editor.liver)
    assert markers.positiveNode.GetNumberOfControlPoints() == 1


def test_markers_keep_the_active_place_node_and_leave_no_display_node(editor):
    """Slicer's markups logic makes every new markups node the active place node
    (vtkSlicerMarkupsLogic::OnMRMLSceneNodeAdded); the markers put the user's back. Removing a node
    leaves its display node in the scene: the markers remove both."""
    scene = editor.scene.scene
    user = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "user points")
    selection = editor.scene.selectionNode
    assert selection.GetActivePlaceNodeID() == user.GetID()
    displayNodes = scene.GetNumberOfNodesByClass("vtkMRMLMarkupsDisplayNode")
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode") == 4
    assert selection.GetActivePlaceNodeID() == user.GetID()
    editor.effect.deactivate()
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode") == 1
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsDisplayNode") == displayNodes


# --- geometry --------------------------------------------------------------------------------------------
def test_a_parent_transform_of_the_segmentation_moves_the_voxels_a_ras_prompt_maps_to(editor):
    import vtk

    volume = editor.effect.context()[2]
    keyBefore = editor.effect.context()[3]
    transform = vtk.vtkTransform()
    transform.RotateWXYZ(15.0, 0.0, 0.2, 1.0)
    transform.Translate(12.0, -6.0, 4.0)
    transformNode = editor.scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transformNode.SetMatrixTransformToParent(transform.GetMatrix())
    editor.segmentationNode.SetAndObserveTransformNodeID(transformNode.GetID())
    moved, keyAfter = editor.effect.context()[2:]
    assert keyAfter != keyBefore
    pointRas = volume.ijk_to_ras_points([CLICK_IJK])[0]
    world = [0.0, 0.0, 0.0]
    editor.segmentationNode.TransformPointToWorld(list(pointRas), world)
    np.testing.assert_allclose(moved.ras_to_ijk_points([world])[0], CLICK_IJK, atol=1e-6)
    assert not np.allclose(moved.ras_to_ijk_points([pointRas])[0], CLICK_IJK, atol=0.5)


def test_a_colour_source_volume_is_seen_as_its_luminance(real_scene, monkeypatch):  # noqa: F811
    """The Segment Editor's own source image of a colour volume is its red component only."""
    rgb = np.zeros((4, 6, 8, 3), np.uint8)
    rgb[..., 0] = 7
    rgb[..., 1] = np.arange(8, dtype=np.uint8) * 30
    volumeNode = slicer.util.addVolumeFromArray(rgb, nodeClassName="vtkMRMLVectorVolumeNode")
    segmentationNode, (segmentId,) = real_scene.addSegmentation(volumeNode, "s")
    with glue_modules(slicer):
        module = import_glue("SegmentEditorSegMoTELib.SegmentEditorEffect")
        effect = module.SegmentEditorEffect(ScriptedEffect(real_scene, volumeNode, segmentationNode, segmentId))
        effect.setMRMLDefaults()
        red = effect.scriptedEffect.sourceVolumeImageData()
        assert red.GetNumberOfScalarComponents() == 1
        volume = effect.context()[2]
    np.testing.assert_allclose(volume.array, 0.299 * 7 + 0.587 * rgb[..., 1], rtol=1e-5)


# --- mouse and keys --------------------------------------------------------------------------------------
class Interactor:
    """vtkRenderWindowInteractor's calls the effect makes (a Qt view delivers them in Slicer)."""

    def __init__(self, xy=(0, 0), key="", shift=False, control=False, alt=False):
        self.xy, self.key, self.shift, self.control, self.alt = xy, key, shift, control, alt

    def GetEventPosition(self):
        return self.xy

    def GetKeySym(self):
        return self.key

    def GetShiftKey(self):
        return self.shift

    def GetControlKey(self):
        return self.control

    def GetAltKey(self):
        return self.alt


class SliceView:
    """The qMRMLSliceWidget the events come from (Qt: a fake), with its real slice node."""

    def __init__(self, sliceNode):
        self.sliceNode = sliceNode
        self.renders = 0

    def className(self):
        return "qMRMLSliceWidget"

    def mrmlSliceNode(self):
        return self.sliceNode

    def sliceLogic(self):
        return types.SimpleNamespace(GetSliceNode=lambda: self.sliceNode)

    def sliceView(self):
        return types.SimpleNamespace(scheduleRender=lambda: setattr(self, "renders", self.renders + 1))


@pytest.fixture
def view(editor):
    """The Red view on the phantom's axial slice 12; view pixel (x, y) is voxel (x, y, 12)."""
    sliceNode = editor.scene.scene.AddNewNodeByClass("vtkMRMLSliceNode")
    sliceNode.SetName("Red")
    sliceNode.SetOrientationToAxial()
    geometryOfNode = sys.modules["SegMoTEGlue.mrmlconvert"].geometryOfNode(editor.volumeNode)
    editor.effect.xyToRas = lambda xy, widget: list(geometryOfNode.ijk_to_ras_points([(xy[0], xy[1], 12)])[0])
    sliceView = SliceView(sliceNode)
    slicer.app.layoutManager = lambda: types.SimpleNamespace(sliceWidget={"Red": sliceView}.get, sliceViewNames=lambda: [])
    return sliceView


def send(editor, view, event, **interactor):
    import vtk

    return editor.effect.processInteractionEvents(Interactor(**interactor), getattr(vtk.vtkCommand, event), view)


def test_a_double_click_is_two_clicks_and_does_not_maximize_the_view(editor, view):
    """The second press of a double click arrives as LeftButtonDoubleClickEvent, which the slice view
    turns into "maximize" (vtkMRMLSliceIntersectionWidget.cxx) unless the effect takes it."""
    at = CLICK_IJK[:2]
    assert send(editor, view, "LeftButtonPressEvent", xy=at) and send(editor, view, "LeftButtonReleaseEvent", xy=at)
    assert send(editor, view, "LeftButtonDoubleClickEvent", xy=at)
    assert send(editor, view, "LeftButtonReleaseEvent", xy=at)
    assert editor.effect.prompts.labels == [1, 1]
    editor.session.deliver()
    assert editor.slices() == [12]


def test_keys_switch_polarity_and_mode_and_clear_and_leave_slicers_keys_alone(editor, view):
    at = CLICK_IJK[:2]
    assert send(editor, view, "KeyPressEvent", key="n")
    assert editor.effect.polarityButton.text.startswith("negative")
    send(editor, view, "LeftButtonPressEvent", xy=at)
    send(editor, view, "LeftButtonReleaseEvent", xy=at)
    send(editor, view, "LeftButtonPressEvent", xy=(at[0] + 5, at[1]))
    send(editor, view, "LeftButtonReleaseEvent", xy=(at[0] + 5, at[1]), shift=True)  # the other polarity, once
    assert editor.effect.prompts.labels == [0, 1]
    editor.session.deliver()
    assert send(editor, view, "KeyPressEvent", key="c")
    assert editor.effect.prompts is None and editor.slices() == [12]  # the prompts go, the mask stays
    assert send(editor, view, "KeyPressEvent", key="o") and editor.calls.parameter("Mode") == "box"
    assert editor.effect.modeButtons["box"].checked
    for slicerKey in ("b", "f", "t", "v", "r", "z", "space", "Delete"):
        assert not send(editor, view, "KeyPressEvent", key=slicerKey)
    assert not send(editor, view, "KeyPressEvent", key="n", control=True)


def drag(editor, view, path, **modifiers) -> None:
    """Press at the first point, move through the others, release at the last."""
    send(editor, view, "LeftButtonPressEvent", xy=path[0])
    for xy in path[1:]:
        send(editor, view, "MouseMoveEvent", xy=xy)
    send(editor, view, "LeftButtonReleaseEvent", xy=path[-1], **modifiers)


def drawn_lines(editor, view) -> list[tuple]:
    """The colours of the line segments the stroke actor of `view` holds."""
    actor = next(actor for widget, actor in editor.calls.actors2d if widget is view)
    polyData = actor.GetMapper().GetInput()
    colours = polyData.GetCellData().GetScalars()
    return [tuple(int(v) for v in colours.GetTuple3(i)) for i in range(polyData.GetNumberOfCells())]


def test_scribbles_and_lassos_drawn_in_a_view_reach_the_engine_as_the_prompt_value(editor, view):
    """Scribble mode (key D): a drag is a stroke of the current polarity, drawn as a 2D actor while it is
    drawn and kept with the prompt set; Lasso mode (key L): a loop, Shift for the other polarity. The
    engine gets one SlicePrompt holding the set's strokes; each prompt is one result written."""
    from SegMoTEGlue.strokedrawing import COLOURS

    x, y = CLICK_IJK[:2]
    assert send(editor, view, "KeyPressEvent", key="d") and editor.calls.parameter("Mode") == "scribble"
    send(editor, view, "LeftButtonPressEvent", xy=(x - 8, y))
    send(editor, view, "MouseMoveEvent", xy=(x - 4, y + 1))
    send(editor, view, "MouseMoveEvent", xy=(x, y))
    assert drawn_lines(editor, view) == [COLOURS[None]] * 2  # the stroke being drawn, in yellow
    for xy in ((x + 4, y - 1), (x + 8, y)):
        send(editor, view, "MouseMoveEvent", xy=xy)
    send(editor, view, "LeftButtonReleaseEvent", xy=(x + 8, y))
    assert drawn_lines(editor, view) == [COLOURS[True]] * 4  # kept, green: positive
    editor.session.deliver()
    name, arguments = editor.session.arguments[-1]
    prompt = arguments["prompt"]
    assert name == "segment_slice" and prompt.frame == "ras" and arguments["slice_index"] == 12
    assert len(prompt.scribbles) == 1 and prompt.scribbles[0].positive and len(prompt.scribbles[0].vertices) == 5
    assert send(editor, view, "KeyPressEvent", key="l") and editor.calls.parameter("Mode") == "lasso"
    (i0, j0, _), (i1, j1, _) = BOX_IJK
    drag(editor, view, [(i0 - 2, j0 - 2), (i1 + 2, j0 - 2), (i1 + 2, j1 + 2), (i0 - 2, j1 + 2)])
    drag(editor, view, [(i0, j0), (i0 + 6, j0), (i0 + 6, j0 + 6), (i0, j0 + 6)], shift=True)  # negative, once
    assert [positive for _, positive in editor.effect.prompts.lassos] == [True, False]
    editor.session.deliver()
    prompt = editor.session.arguments[-1][1]["prompt"]
    assert len(prompt.scribbles) == 1 and [lasso.positive for lasso in prompt.lassos] == [True, False]
    assert prompt.mask_input is not None  # the set's earlier result refines
    assert drawn_lines(editor, view).count(COLOURS[False]) == 4  # the negative loop, closed, in red
    assert editor.slices() == [12] and editor.mask()[12].sum() > 200
    send(editor, view, "KeyPressEvent", key="c")
    assert drawn_lines(editor, view) == []  # cleared with the prompts


def test_a_lasso_around_the_phantom_liver_through_the_api_segments_it(editor):
    """The effect's prompt API in world RAS, as the self-tests and scripts call it."""
    (i0, j0, k), (i1, j1, _) = BOX_IJK
    loop = [editor.effect.sourceIjkToRas(ijk) for ijk in ((i0 - 3, j0 - 3, k), (i1 + 3, j0 - 3, k), (i1 + 3, j1 + 3, k),
                                                         (i0 - 3, j1 + 3, k))]
    editor.effect.addStrokePrompt("lasso", loop, positive=True, orientation="axial")
    editor.session.deliver()
    assert editor.slices() == [k]
    inside = editor.mask()[k]
    assert inside[j0:j1 + 1, i0:i1 + 1].sum() > 0.9 * inside.sum() > 0


def test_presses_with_ctrl_or_alt_are_left_to_slicers_view(editor, view):
    """Slicer's slice view binds Ctrl+left drag (blend the layers), Ctrl+Alt+left drag (rotate the
    slice intersections) and Alt+Shift+left drag (translate them) (vtkMRMLSliceIntersectionWidget.cxx,
    UpdateInteractionEventMapping, 5.10); Slicer's own effects take only an unmodified left press
    (SegmentEditorDrawEffect.py, qSlicerSegmentEditorPaintEffect.cxx). Shift+click stays the one-off
    other polarity."""
    at = CLICK_IJK[:2]
    for modifiers in ({"control": True}, {"control": True, "alt": True}, {"alt": True, "shift": True},
                      {"alt": True}):
        assert not send(editor, view, "LeftButtonPressEvent", xy=at, **modifiers)
        assert not send(editor, view, "MouseMoveEvent", xy=(at[0] + 20, at[1]), **modifiers)
        assert not send(editor, view, "LeftButtonReleaseEvent", xy=(at[0] + 20, at[1]), **modifiers)
        assert not send(editor, view, "LeftButtonDoubleClickEvent", xy=at, **modifiers)
    assert editor.effect.prompts is None and editor.session.queue == []
    assert send(editor, view, "LeftButtonPressEvent", xy=at, shift=True)
    assert send(editor, view, "LeftButtonReleaseEvent", xy=at, shift=True)
    assert editor.effect.prompts.labels == [0]


def test_a_press_left_open_by_deactivation_does_not_outlive_it(editor, view):
    """Esc with the button held deselects the effect; the release goes to the view. The open press
    made every mouse move the effect's after the next activation (a box drawn from the old point,
    Slicer's crosshair and hover blocked) until a release."""
    at = CLICK_IJK[:2]
    assert send(editor, view, "LeftButtonPressEvent", xy=at)
    editor.effect.deactivate()
    editor.effect.activate()
    assert not send(editor, view, "MouseMoveEvent", xy=(at[0] + 30, at[1] + 30))
    assert not send(editor, view, "LeftButtonReleaseEvent", xy=(at[0] + 30, at[1] + 30))
    assert editor.session.queue == []


# --- results belong to one segment; cancelling; the options panel; cleanup --------------------------------
def queued(editor, index):
    """The onDone / onError the effect gave the engine session for its `index`-th job."""
    return editor.session.queue[index][2:]


def test_result_is_dropped_when_the_segment_changed_meanwhile(editor):
    """Defect 5: the target is recorded at submission; the worker's delivery is done by the test."""
    written = []
    editor.effect.startJob(editor.session, None, "t", 0, written.append)
    editor.effect.startJob(editor.session, None, "t", 0, written.append)
    queued(editor, 0)[0]("mask for the liver")
    assert written == ["mask for the liver"]
    editor.calls.editorNode.SetSelectedSegmentID(editor.other)  # the user selects another segment meanwhile
    queued(editor, 1)[0]("another mask for the liver")
    assert written == ["mask for the liver"] and "Result dropped" in editor.effect.statusLabel.text


def test_deactivate_cancels_pending_jobs_and_drops_their_results(editor):
    written = []
    editor.effect.startJob(editor.session, None, "t", 0, written.append)
    editor.effect.deactivate()
    assert editor.session.queue[0][0].cancelled
    queued(editor, 0)[0]("late mask")  # a job already running still delivers
    assert written == [] and "deactivated" in editor.effect.statusLabel.text


def test_a_call_that_fails_at_once_leaves_no_busy_feedback(editor, monkeypatch):
    """The engine reports a call that cannot even start (a refused argument) before submit() returns
    (engine.Engine._next): its callbacks ran before the effect had made the call's busy feedback,
    which then stayed in activeFeedbacks (waitForIdle waited its full timeout)."""
    def failing(run, title, priority, onDone=None, onError=None, replaceKey=None):
        onError(ValueError("refused"))
        return types.SimpleNamespace(cancelled=False, finished=True, cancel=lambda: None)

    monkeypatch.setattr(editor.session, "submit", failing)
    module = sys.modules[type(editor.effect).__module__]
    made = []
    monkeypatch.setattr(module, "BusyFeedback", lambda *args, **kwargs: made.append(args) or FakeFeedback())
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    assert "refused" in editor.effect.statusLabel.text
    assert made == [] and not editor.effect.activeFeedbacks and len(editor.effect.pendingJobs) == 0


def test_hidden_segment_not_confirmed_means_nothing_is_submitted(editor, monkeypatch):
    """Defect 10: confirmCurrentSegmentVisible's answer (Slicer shows a dialog to get it)."""
    monkeypatch.setattr(editor.calls, "confirmCurrentSegmentVisible", lambda: ScriptedEffect.NotConfirmed)
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    assert editor.session.queue == []


def test_updating_the_gui_from_mrml_writes_nothing_back(editor, monkeypatch):
    """Defect 10. Fake radio buttons are auto-exclusive (checking one unchecks the other, which emits)."""
    effect = editor.effect
    effect.updateGUIFromMRML()
    writes = []
    monkeypatch.setattr(editor.calls, "setParameter", lambda name, value: writes.append((name, value)))
    for mode in ("box", "lasso", "click"):
        editor.calls.parameters["Mode"] = mode
        effect.updateGUIFromMRML()
        assert writes == []
        assert [name for name, button in effect.modeButtons.items() if button.checked] == [mode]


def test_cleanup_disconnects_every_connection_and_stops_watching(editor):
    """Defect 10 (Slicer 5.10 cleanup()). Fake widgets record connect/disconnect; PythonQt's reference
    keeping, which makes this matter, is not modelled. The VTK observers on the editor node go too."""
    from slicer_fakes import FakeWidget

    effect = editor.effect
    effect.processViewNodeEvents(types.SimpleNamespace(IsA=lambda name: True), None, None)  # creates the timer
    widgets = [*effect.modeButtons.values(), effect.modalityComboBox, effect.firstSliceSpinBox, effect.polarityButton,
               effect.lastSliceSpinBox, effect.limitRangeCheckBox, effect.propagateButton, effect.clearButton]
    assert all(widget.connected for widget in widgets)
    timer = effect.prefetch.timer
    assert effect.watch.editorNode is editor.calls.editorNode
    effect.cleanup()
    assert not any(widget.connected for widget in widgets) and isinstance(timer, FakeWidget) and not timer.connected
    assert effect.watch.editorNode is None


def test_the_status_line_follows_the_engine_of_the_saved_settings(editor, monkeypatch, base_predictor):
    """Settings saved in the SegMoTE module while the effect is active make a new engine
    (engine.engineFor): the effect listened to the old one for good (its states never shown, the
    effect kept alive by it) and removed its listener from the wrong one."""
    old, new = editor.session, InProcessSession(base_predictor)
    assert editor.effect.onEngineState in old.listeners
    monkeypatch.setattr(sys.modules[type(editor.effect).__module__], "engineFor", lambda settings=None: new)
    editor.effect.addPointPromptIjk(CLICK_IJK, orientation="axial")
    assert len(new.queue) == 1
    assert editor.effect.onEngineState in new.listeners and editor.effect.onEngineState not in old.listeners
    editor.effect.deactivate()
    assert new.listeners == [] and old.listeners == []


def test_effect_keeps_the_base_interaction_node_handling(editor):
    """Defect 7: not overriding interactionNodeModified leaves qSlicerSegmentEditorAbstractEffect's, which
    deactivates the effect when markups placement starts (qSlicerSegmentEditorAbstractEffect.cxx)."""
    assert "interactionNodeModified" not in vars(type(editor.effect))


def test_source_volume_change_creates_no_markups_node(editor):
    """Defect 4: every registered effect hears of it, active or not (qMRMLSegmentEditorWidget.cxx,
    notifyEffectsOfSourceVolumeNodeChange); nothing may be created then."""
    scene = editor.scene.scene
    editor.effect.deactivate()
    before = scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode")
    editor.effect.sourceVolumeNodeChanged()
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode") == before


def test_the_effects_own_writes_and_a_new_colour_keep_the_prompts_a_paint_stroke_does_not(editor):
    """Only a change of the voxels by something else makes the prompts stale."""
    editor.box(12)
    editor.calls.setParameter("LimitRange", 1)
    editor.calls.setParameter("FirstSlice", 11)
    editor.calls.setParameter("LastSlice", 13)
    editor.effect.onPropagate()
    editor.session.deliver()
    editor.segmentationNode.GetSegmentation().GetSegment(editor.liver).SetColor(0.1, 0.8, 0.2)
    assert editor.effect.prompts is not None and editor.effect.prompts.lastResult is not None
    stroke = editor.mask()
    stroke[5, 60:70, 120:130] = True
    editor.paint(editor.liver, stroke)
    assert editor.effect.prompts is None
