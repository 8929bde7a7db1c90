"""The glue's MRML conversions and the Logic's console calls on Slicer's real classes (slicer-core).

No fakes of MRML here: the scene, volume, markups, transform and segmentation nodes are Slicer's own
(see slicer_scene.py). The engine behind the Logic is SegMoTELib in this process (LiteMedSAM on the
CPU) with the session cache the engine connection keeps: one session per key, reused while the key
stays the same (SegMoTEGlue/engine.py, Engine.segmenterFor).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from slicer_scene import REPO_SELFTESTS, real_glue_modules, real_scene  # noqa: F401  (fixture)

from SegMoTELib.service.operations import run_in_process

pytest.importorskip("slicer")


@pytest.fixture
def glue(real_scene):  # noqa: F811
    with real_glue_modules():
        from SegMoTEGlue import mrmlconvert, volumelogic

        yield type("Glue", (), {"mrmlconvert": mrmlconvert, "volumelogic": volumelogic, "scene": real_scene})


def _vtk_matrix(array):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row][column]))
    return matrix


def _rotation(degrees, axis, translation):
    import vtk

    transform = vtk.vtkTransform()
    transform.Translate(*translation)
    transform.RotateWXYZ(degrees, *axis)
    return transform.GetMatrix()


# --- markups -----------------------------------------------------------------------------------------
def test_roi_corners_of_a_rotated_roi(glue):
    """`GetSize(size)` raised TypeError on the real class (VTK wraps only `GetSize()`)."""
    roi = glue.scene.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    roi.SetSize(40.0, 20.0, 10.0)
    objectToWorld = np.eye(4)
    angle = np.radians(30.0)
    objectToWorld[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    objectToWorld[:3, 3] = (5.0, -3.0, 12.0)
    roi.SetAndObserveObjectToNodeMatrix(_vtk_matrix(objectToWorld))
    corners = glue.mrmlconvert.roiCornersWorld(roi)
    assert corners.shape == (8, 3)
    local = (corners - objectToWorld[:3, 3]) @ objectToWorld[:3, :3]  # back to the ROI's own axes
    np.testing.assert_allclose(np.abs(local), np.tile([20.0, 10.0, 5.0], (8, 1)), atol=1e-6)


def test_only_placed_control_points_become_clicks(glue):
    """arrayFromMarkupsControlPoints returns unplaced and skipped points too (4 rows for 2 placed)."""
    points = glue.scene.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    points.AddControlPoint(1.0, 2.0, 3.0)
    unplaced = points.AddControlPoint(0.0, 0.0, 0.0)
    points.UnsetNthControlPointPosition(unplaced)
    points.AddControlPoint(4.0, 5.0, 6.0)
    skipped = points.AddControlPoint(7.0, 7.0, 7.0)
    points.SetNthControlPointPositionMissing(skipped)
    assert len(glue.scene.slicer.util.arrayFromMarkupsControlPoints(points, world=True)) == 4
    np.testing.assert_array_equal(glue.mrmlconvert.controlPointsWorld(points), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


# --- transforms ----------------------------------------------------------------------------------------
def test_a_linear_parent_under_a_grid_names_the_non_linear_chain(glue):
    from SegMoTELib.errors import InputError

    scene = glue.scene.scene
    volume = glue.scene.addVolume(np.zeros((4, 5, 6), np.int16))
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    linear = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    linear.SetAndObserveTransformNodeID(grid.GetID())
    volume.SetAndObserveTransformNodeID(linear.GetID())
    with pytest.raises(InputError) as error:
        glue.mrmlconvert.volumeFromNode(volume)
    message = str(error.value)
    assert "chain of transforms from it to the world is non-linear" in message
    assert "'warp' is a warp or grid transform, above its parent 'registration'" in message


def test_a_parent_transform_moves_the_voxels_a_ras_prompt_maps_to(glue):
    volume = glue.scene.addVolume(np.zeros((6, 7, 8), np.int16), ijkToRas=np.diag([-0.8, 1.2, 3.0, 1.0]))
    before = glue.mrmlconvert.volumeFromNode(volume)
    keyBefore = glue.mrmlconvert.volumeSessionKey(volume, "auto")
    transformNode = glue.scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transformNode.SetMatrixTransformToParent(_rotation(25.0, (0.3, 0.5, 0.8), (10.0, -4.0, 7.0)))
    volume.SetAndObserveTransformNodeID(transformNode.GetID())
    after = glue.mrmlconvert.volumeFromNode(volume)
    pointRas = before.ijk_to_ras_points([[3.0, 2.0, 1.0]])
    assert not np.allclose(after.ras_to_ijk_points(pointRas), [[3.0, 2.0, 1.0]], atol=0.5)
    world = [0.0, 0.0, 0.0]
    volume.TransformPointToWorld(list(pointRas[0]), world)  # where Slicer shows voxel (3, 2, 1) now
    np.testing.assert_allclose(after.ras_to_ijk_points([world]), [[3.0, 2.0, 1.0]], atol=1e-6)
    assert glue.mrmlconvert.volumeSessionKey(volume, "auto") != keyBefore


def test_a_colour_volume_becomes_its_luminance(glue):
    scene = glue.scene.scene
    rgb = np.zeros((3, 4, 5, 3), np.uint8)
    rgb[..., 1] = np.arange(5, dtype=np.uint8) * 40  # green varies along i, red and blue are 0
    volume = glue.scene.slicer.util.addVolumeFromArray(rgb, nodeClassName="vtkMRMLVectorVolumeNode")
    assert volume.IsA("vtkMRMLVectorVolumeNode") and scene.IsNodePresent(volume)
    converted = glue.mrmlconvert.volumeFromNode(volume)
    np.testing.assert_allclose(converted.array, 0.587 * rgb[..., 1], rtol=1e-6)


# --- the Logic's console calls -------------------------------------------------------------------------
class _Job:
    def reportProgress(self, done, total=None):
        pass


@pytest.fixture
def logic(glue, base_predictor):
    from SegMoTELib.segment3d import VolumeSegmenter

    class InProcessLogic(glue.volumelogic.VolumeSegmentationLogic):
        def __init__(self):
            self.sessions = {}

        def runOnEngine(self, key, volume, mapping, compute, progress=None):
            if key not in self.sessions:  # as EngineConnection.volumeSession: upload once per key
                self.sessions[key] = VolumeSegmenter(base_predictor, volume, mapping)
            return run_in_process(compute(self.sessions[key], volume, _Job()))

    return InProcessLogic()


@pytest.fixture
def phantom_node(glue):
    sys.path.insert(0, str(REPO_SELFTESTS))
    try:
        from SegMoTESelfTestCase import BOX_IJK, makeSelfTestPhantom
    finally:
        sys.path.remove(str(REPO_SELFTESTS))
    phantom = makeSelfTestPhantom()
    node = glue.scene.addVolume(phantom.image.array.copy(), ijkToRas=phantom.image.ijk_to_ras, name="phantom")
    return node, BOX_IJK


def _voxel_rectangle(glue, logic, volumeNode, boxIjk):
    """The self-test's box as its 4 voxel corners mapped to world RAS now (given as 8)."""
    (i0, j0, k), (i1, j1, _) = boxIjk
    corners = glue.mrmlconvert.geometryOfNode(volumeNode).ijk_to_ras_points(
        [(i0, j0, k), (i1, j0, k), (i1, j1, k), (i0, j1, k)])
    segmentationNode = logic.createSegmentationNode(volumeNode)
    segmentId = logic.segmentWithBox(volumeNode, np.vstack([corners, corners]), segmentationNode=segmentationNode)
    return glue.scene.segmentArray(segmentationNode, segmentId, volumeNode)


def test_rotated_parent_transform_gives_the_same_voxels(glue, logic, phantom_node):
    """The Slicer self-test of the same name, on the real classes: the session key lacked the geometry,
    so the second call reused the session of the untransformed volume and mapped the box wrongly."""
    from conftest import dice

    volumeNode, boxIjk = phantom_node
    plain = _voxel_rectangle(glue, logic, volumeNode, boxIjk)
    transformNode = glue.scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transformNode.SetMatrixTransformToParent(_rotation(20.0, (0.2, 0.3, 1.0), (15.0, -10.0, 5.0)))
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    moved = _voxel_rectangle(glue, logic, volumeNode, boxIjk)
    assert plain.sum() > 500 and np.flatnonzero(plain.any(axis=(1, 2))).tolist() == [boxIjk[0][2]]
    assert dice(plain, moved) >= 0.98
    assert len(logic.sessions) == 2


def test_console_segment_never_changes_other_segments(glue, logic, phantom_node):
    """A new segment per call: the user's overlapping segment keeps every voxel (Slicer puts the new
    one on a layer of its own)."""
    volumeNode, boxIjk = phantom_node
    segmentationNode = logic.createSegmentationNode(volumeNode)
    userSegment = segmentationNode.GetSegmentation().AddEmptySegment("", "user")
    users = np.zeros(volumeNode.GetImageData().GetDimensions()[::-1], np.uint8)
    users[boxIjk[0][2] - 2: boxIjk[0][2] + 3, 60:120, 100:170] = 1
    glue.scene.slicer.util.updateSegmentBinaryLabelmapFromArray(users, segmentationNode, userSegment, volumeNode)
    corners = glue.mrmlconvert.geometryOfNode(volumeNode).ijk_to_ras_points(list(boxIjk))
    segmentId = logic.segmentWithBox(volumeNode, corners, segmentationNode=segmentationNode, segmentName="liver")
    assert glue.scene.segmentArray(segmentationNode, segmentId, volumeNode).any()
    np.testing.assert_array_equal(glue.scene.segmentArray(segmentationNode, userSegment, volumeNode), users > 0)


# --- the effect's segment watch --------------------------------------------------------------------------
def test_segment_watch_follows_a_replaced_segmentation_and_removes_only_its_own_observers(real_scene):  # noqa: F811
    """Loading data into an existing segmentation node replaces its vtkSegmentation
    (vtkMRMLSegmentationStorageNode.cxx, SetAndObserveSegmentation): the watch kept observing the old
    object, so Undo-like changes to the loaded segments went unnoticed. Stopping removes observers from
    the objects they were added to (VTK numbers tags per object), and the node's own stay."""
    slicer = real_scene.slicer
    with real_glue_modules():
        from SegMoTEGlue.segmentwatch import SegmentWatch

        volumeNode = real_scene.addVolume(np.zeros((3, 4, 5), np.int16))
        segmentationNode, (segmentId,) = real_scene.addSegmentation(volumeNode, "a")
        editorNode = real_scene.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        editorNode.SetAndObserveSegmentationNode(segmentationNode)
        editorNode.SetSelectedSegmentID(segmentId)
        edits = []
        watch = SegmentWatch(lambda: None, edits.append)
        watch.start(editorNode)
        loaded = slicer.vtkSegmentation()
        loaded.DeepCopy(segmentationNode.GetSegmentation())
        segmentationNode.SetAndObserveSegmentation(loaded)  # what reading a file into the node does
        loaded.AddEmptySegment("", "b")
        assert edits, "a change to the replaced segmentation went unnoticed"
        watch.stop()
        added = []
        segmentationNode.AddObserver(slicer.vtkSegmentation.SegmentAdded, lambda caller, event: added.append(event))
        loaded.AddEmptySegment("", "c")
        assert added, "the segmentation node no longer passes on its segmentation's events"


def test_the_polarity_cursor_goes_only_to_views_that_show_the_segmentation(real_scene):  # noqa: F811
    """The Segment Editor puts the effect's cursor on, and later takes it off, only the views where the
    segmentation is displayable (qMRMLSegmentEditorWidget::setEffectCursor, Slicer 5.10): a cursor put
    on any other view stayed there after the effect ended."""
    import types

    from slicer_fakes import fake_qt, glue_modules, import_glue

    slicer = real_scene.slicer
    volumeNode = real_scene.addVolume(np.zeros((3, 4, 5), np.int16))
    segmentationNode, _ = real_scene.addSegmentation(volumeNode, "a")
    views = {}
    for name in ("Red", "Yellow"):
        sliceNode = real_scene.scene.AddNewNodeByClass("vtkMRMLSliceNode")
        sliceNode.SetName(name)
        view = types.SimpleNamespace(cursors=[])
        view.setViewCursor = view.setDefaultViewCursor = view.cursors.append
        views[name] = types.SimpleNamespace(mrmlSliceNode=lambda node=sliceNode: node, sliceView=lambda v=view: v,
                                            cursors=view.cursors)
    segmentationNode.GetDisplayNode().AddViewNodeID(views["Red"].mrmlSliceNode().GetID())
    layout = types.SimpleNamespace(sliceViewNames=lambda: list(views), sliceWidget=views.get)
    with glue_modules(slicer, qt_module=fake_qt()):
        saved = slicer.app if hasattr(slicer, "app") else None
        slicer.app = types.SimpleNamespace(layoutManager=lambda: layout)
        try:
            polaritycursor = import_glue("SegMoTEGlue.polaritycursor")
            polaritycursor.showOnSliceViews(False, segmentationNode)
        finally:
            slicer.app = saved
    assert len(views["Red"].cursors) == 2 and views["Yellow"].cursors == []


def test_console_correction_re_walks_and_keeps_the_slices_beyond_and_the_other_segments(glue, logic):
    """`correctSegment` on Slicer's real classes: the slices the engine re-segmented are written, every
    other slice of the segment keeps its voxels exactly, and another segment keeps every voxel. (The
    fixture's engine is the base decoder, poor at clicks: what the masks look like is the engine's
    tests' business — test_walk.py; here it is where they go.)"""
    sys.path.insert(0, str(REPO_SELFTESTS))
    try:
        from SegMoTESelfTestCase import makeSelfTestPhantom
    finally:
        sys.path.remove(str(REPO_SELFTESTS))
    phantom = makeSelfTestPhantom()
    volumeNode = glue.scene.addVolume(phantom.image.array.copy(), ijkToRas=phantom.image.ijk_to_ras, name="phantom")
    truth = phantom.mask("liver")
    present = np.flatnonzero(truth.any(axis=(1, 2)))
    middle = int(present[len(present) // 2])
    spoilt = truth.copy()
    columns = np.flatnonzero(truth[middle].any(axis=0))
    spoilt[middle - 1:middle + 2, :, : int(np.median(columns))] = False  # half the liver lost on three slices
    segmentationNode = logic.createSegmentationNode(volumeNode)
    segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", "liver")
    other = segmentationNode.GetSegmentation().AddEmptySegment("", "other")
    users = np.zeros_like(truth, dtype=np.uint8)
    users[present[0]:present[-1], :20, :20] = 1
    update = glue.scene.slicer.util.updateSegmentBinaryLabelmapFromArray
    update(spoilt.astype(np.uint8), segmentationNode, segmentId, volumeNode)
    update(users, segmentationNode, other, volumeNode)
    missed = np.argwhere(truth[middle] & ~spoilt[middle])
    j, i = missed[len(missed) // 2]
    click = glue.mrmlconvert.geometryOfNode(volumeNode).ijk_to_ras_points([(i, j, middle)])
    changed = logic.correctSegment(volumeNode, segmentationNode, segmentId, click, labels=[1], orientation="axial")
    corrected = glue.scene.segmentArray(segmentationNode, segmentId, volumeNode)
    assert middle in changed and not np.array_equal(corrected[middle], spoilt[middle])
    beyond = np.setdiff1d(np.arange(truth.shape[0]), changed)
    np.testing.assert_array_equal(corrected[beyond], spoilt[beyond])
    np.testing.assert_array_equal(glue.scene.segmentArray(segmentationNode, other, volumeNode), users > 0)
