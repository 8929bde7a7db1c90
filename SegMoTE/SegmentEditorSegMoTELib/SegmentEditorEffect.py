"""Segment Editor effect "SegMoTE": clicks, boxes, scribbles, lassos and prompt-free masks, and 3D.

Left click = a click of the current polarity (positive by default; key N switches, Shift + click
inverts it for one click), drag = box (Scribble / Lasso mode: a stroke of that polarity, drawn by
SegMoTEGlue.strokedrawing), in any slice view (Red, Yellow, Green or oblique; an oblique
view segments the nearest voxel slice). Each prompt replaces the selected segment on that slice only;
the prompts of one slice of one segment refine each other (previous logits go along as a dense
prompt), and the first prompt on a slice where the segment already has voxels refines that mask
(it goes along as `seed_mask`). "Propagate to 3D" extends the segment's last slice mask through the
volume (or the slice range). Results are written by SegMoTEGlue.segmentwrite: one undo step each,
every voxel outside the written slices kept, masking and overwrite settings as for any effect. A
result is written only into the segment it was computed for, and only while the effect is active.
Mouse and key rules: SegMoTEGlue.interaction.

All model work runs in the engine (`SegMoTEGlue.engine`: another process, reached through Qt's
asynchronous HTTP on the main thread); the GUI only converts MRML <-> arrays and shows results, and
every prompt can be cancelled. Activating the effect starts and uploads nothing: the first prompt
(or *Start engine* in the SegMoTE module) does. Once the volume is on the engine, the slice under
the mouse is embedded ahead of time, so a prompt costs only the decoder.
"""

from __future__ import annotations

import os
import time

import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

import SegMoTEGlue  # noqa: F401  (makes SegMoTELib importable from a source checkout)
from SegMoTEGlue.engine import engineFor, engineStatus
from SegMoTEGlue.feedback import BusyFeedback, describeError
from SegMoTEGlue.interaction import MODE_HELP, Gesture, Polarity, effectHelpHtml, pressStartsGesture, shortcutAction
from SegMoTEGlue.jobtargets import EditTarget, PendingJobs, dropReason
from SegMoTEGlue.markers import PromptMarkers
from SegMoTEGlue.mrmlconvert import (
    geometryOfNode,
    orientedImageSessionKey,
    orientedImageToVolume,
    sliceNormalWorld,
)
from SegMoTEGlue.promptbook import MODE_AUTO, MODE_BOX, MODE_CLICK, MODE_LASSO, MODES, STROKE_MODES
from SegMoTEGlue.promptbook import PromptBook, SliceKey, SlicePrompts
from SegMoTEGlue.segmentseed import segmentSliceMask
from SegMoTEGlue.segmentwatch import SegmentWatch, labelmapToken
from SegMoTEGlue.segmentwrite import replaceSegmentOnSlab
from SegMoTEGlue.sliceprefetch import SlicePrefetch
from SegMoTEGlue.strokedrawing import StrokeDrawing
from SegMoTEGlue.volumeactions import VolumeActions
from SegMoTELib.priorities import INTERACTIVE
from SegMoTELib import geometry
from SegMoTELib.errors import InputError
from SegMoTELib.intensity import MODALITIES, IntensityMapping

_ICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SegmentEditorEffect.png")


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "SegMoTE"
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.promptBook = PromptBook()
        self.markers = PromptMarkers()
        self.strokeDrawing = StrokeDrawing(scriptedEffect)
        self.pendingJobs = PendingJobs()
        self.watch = SegmentWatch(self.showCurrentPrompts, self.onSegmentEdited)  # segment switch, outside edit
        self.active = False
        self.connections: list = []  # (Qt object, signal, slot), disconnected in cleanup()
        self.gesture = Gesture()
        self.draggedOutlineRas = None
        self.activeFeedbacks: set = set()
        self.latestSerial = 0
        self.volumeCache = (None, None)
        self.prefetch = SlicePrefetch(self, lambda: engineFor())  # the name at call time (tests replace it)
        self.propagatedTargets: set = set()  # segments made by "Propagate to 3D": a click there corrects in 3D
        self.listenedEngine = None  # the engine whose states the status line shows
        self.volumeActions = VolumeActions(self)

    def clone(self):
        clonedEffect = slicer.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def connectSignal(self, qtObject, signal: str, slot) -> None:
        """connect() and remember it: cleanup() disconnects it (Slicer 5.10, see cleanup())."""
        qtObject.connect(signal, slot)
        self.connections.append((qtObject, signal, slot))

    def icon(self):
        return qt.QIcon(_ICON) if os.path.exists(_ICON) else qt.QIcon()

    def helpText(self):
        return effectHelpHtml()

    # --- options panel -------------------------------------------------------------------------
    def setupOptionsFrame(self):
        self.modeButtons = {}
        modeLayout = qt.QHBoxLayout()
        for mode in MODES:
            button = qt.QRadioButton(mode.capitalize())
            button.toolTip = MODE_HELP[mode]
            self.connectSignal(button, "toggled(bool)", self.updateMRMLFromGUI)
            modeLayout.addWidget(button)
            self.modeButtons[mode] = button
        self.scriptedEffect.addLabeledOptionsWidget("Mode:", modeLayout)

        self.modalityComboBox = qt.QComboBox()
        for modality in MODALITIES:
            self.modalityComboBox.addItem(modality)
        self.modalityComboBox.toolTip = "How intensities become 8-bit for the model (auto: CT if Hounsfield-like)."
        self.connectSignal(self.modalityComboBox, "currentIndexChanged(int)", self.updateMRMLFromGUI)
        self.scriptedEffect.addLabeledOptionsWidget("Modality:", self.modalityComboBox)

        self.polarityButton = qt.QPushButton()
        self.polarityButton.checkable = True
        self.polarityButton.toolTip = "Polarity of the next clicks (key N). Shift + click: the other one, once."
        self.connectSignal(self.polarityButton, "toggled(bool)", self.updateMRMLFromGUI)
        self.scriptedEffect.addLabeledOptionsWidget("Clicks:", self.polarityButton)

        self.limitRangeCheckBox = qt.QCheckBox("Only slices")
        self.firstSliceSpinBox = qt.QSpinBox()
        self.lastSliceSpinBox = qt.QSpinBox()
        for spinBox in (self.firstSliceSpinBox, self.lastSliceSpinBox):
            spinBox.setRange(0, 100000)
            self.connectSignal(spinBox, "valueChanged(int)", self.updateMRMLFromGUI)
        self.connectSignal(self.limitRangeCheckBox, "toggled(bool)", self.updateMRMLFromGUI)
        rangeLayout = qt.QHBoxLayout()
        rangeLayout.addWidget(self.limitRangeCheckBox)
        rangeLayout.addWidget(self.firstSliceSpinBox)
        rangeLayout.addWidget(qt.QLabel("to"))
        rangeLayout.addWidget(self.lastSliceSpinBox)
        self.scriptedEffect.addLabeledOptionsWidget("3D range:", rangeLayout)

        self.propagateButton = qt.QPushButton("Propagate to 3D")
        self.propagateButton.toolTip = "Extend the last slice mask through the volume (whole extent or the slice range)."
        self.connectSignal(self.propagateButton, "clicked()", self.onPropagate)
        self.clearButton = qt.QPushButton("Clear prompts")
        self.connectSignal(self.clearButton, "clicked()", self.clearPrompts)
        buttonLayout = qt.QHBoxLayout()
        buttonLayout.addWidget(self.propagateButton)
        buttonLayout.addWidget(self.clearButton)
        self.scriptedEffect.addOptionsWidget(buttonLayout)

        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def setMRMLDefaults(self):
        self.scriptedEffect.setParameterDefault("Mode", MODE_CLICK)
        self.scriptedEffect.setParameterDefault("Modality", "auto")
        self.scriptedEffect.setParameterDefault("LimitRange", 0)
        self.scriptedEffect.setParameterDefault("FirstSlice", 0)
        self.scriptedEffect.setParameterDefault("LastSlice", 0)
        self.scriptedEffect.setParameterDefault("NegativeClicks", 0)

    def updateGUIFromMRML(self):
        mode = self.scriptedEffect.parameter("Mode")
        # All radio buttons blocked before any is set: checking one unchecks the previous one
        # (auto-exclusive), whose toggled() would otherwise write a half-updated mode to MRML.
        wasBlocked = {name: button.blockSignals(True) for name, button in self.modeButtons.items()}
        for name, button in self.modeButtons.items():
            button.checked = name == mode
        for name, button in self.modeButtons.items():
            button.blockSignals(wasBlocked[name])
        wasBlocked = self.modalityComboBox.blockSignals(True)
        self.modalityComboBox.setCurrentText(self.scriptedEffect.parameter("Modality"))
        self.modalityComboBox.blockSignals(wasBlocked)
        for widget, name in ((self.firstSliceSpinBox, "FirstSlice"), (self.lastSliceSpinBox, "LastSlice")):
            wasBlocked = widget.blockSignals(True)
            widget.value = self.scriptedEffect.integerParameter(name)
            widget.blockSignals(wasBlocked)
        wasBlocked = self.limitRangeCheckBox.blockSignals(True)
        self.limitRangeCheckBox.checked = self.scriptedEffect.integerParameter("LimitRange") != 0
        self.limitRangeCheckBox.blockSignals(wasBlocked)
        self.showPolarity()

    def updateMRMLFromGUI(self, *_unused):
        for name, button in self.modeButtons.items():
            if button.checked:
                self.scriptedEffect.setParameter("Mode", name)
        self.scriptedEffect.setParameter("Modality", self.modalityComboBox.currentText)
        self.scriptedEffect.setParameter("LimitRange", 1 if self.limitRangeCheckBox.checked else 0)
        self.scriptedEffect.setParameter("FirstSlice", self.firstSliceSpinBox.value)
        self.scriptedEffect.setParameter("LastSlice", self.lastSliceSpinBox.value)
        self.scriptedEffect.setParameter("NegativeClicks", 1 if self.polarityButton.checked else 0)

    @property
    def polarity(self) -> Polarity:
        return Polarity(positive=self.scriptedEffect.integerParameter("NegativeClicks") == 0)

    def togglePolarity(self) -> None:
        self.scriptedEffect.setParameter("NegativeClicks", 1 if self.polarity.positive else 0)
        self.showPolarity()

    def showPolarity(self) -> None:
        """The polarity on the button and, while active, as the slice views' cursor (green +, red -)."""
        from SegMoTEGlue.polaritycursor import showPolarity

        parameterSetNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterSetNode.GetSegmentationNode() if parameterSetNode is not None else None
        showPolarity(self.polarityButton, self.polarity, onSliceViews=self.active, segmentationNode=segmentationNode)

    def createCursor(self, widget):
        """The slice views' cursor while the effect is active (qMRMLSegmentEditorWidget puts it there)."""
        from SegMoTEGlue.polaritycursor import polarityCursor

        return polarityCursor(self.polarity.positive)

    # --- lifetime ------------------------------------------------------------------------------
    def activate(self):
        # Nothing starts and nothing is uploaded here: the first prompt does (issue 19, item 3).
        self.active = True
        self.watch.start(self.scriptedEffect.parameterSetNode())
        status = engineStatus()  # a remote engine needs no model packages in this Slicer
        if status.ready:
            self.setStatus("Click or drag in a slice view.")
        else:
            self.setStatus(status.describe() + (" Open the SegMoTE module to install them." if status.installable else ""))
        self.currentEngine()

    def currentEngine(self):
        """The engine of the saved settings (a new one once other settings are saved), whose states the
        status line shows."""
        engine = engineFor()
        if engine is not self.listenedEngine:
            self.stopListening()
            engine.addListener(self.onEngineState)
            self.listenedEngine = engine
        return engine

    def stopListening(self) -> None:
        if self.listenedEngine is not None:
            self.listenedEngine.removeListener(self.onEngineState)
            self.listenedEngine = None

    def onEngineState(self, engine) -> None:
        """The engine's state in the status line (starting, ready, failed with the reason)."""
        if self.active:
            self.setStatus(engine.describeState())

    def deactivate(self):
        # Results still on the worker are for a segment the user has left: cancel them, and
        # onDone drops any that was already running (self.active is False).
        self.active = False
        self.gesture = Gesture()  # a press still open (Esc with the button held) ends with the effect
        self.watch.stop()
        self.pendingJobs.cancelAll()
        self.stopListening()
        self.latestSerial += 1
        self.markers.remove()
        self.strokeDrawing.remove()
        self.promptBook.clear()  # Esc (the Segment Editor's "deselect effect") clears the prompts this way
        self.prefetch.stop()

    def cleanup(self):
        # Called by qMRMLSegmentEditorWidget before it deletes the effect
        # (qMRMLSegmentEditorWidget.cxx, ~qMRMLSegmentEditorWidgetPrivate). Since Slicer 5.10 effects
        # must disconnect their Qt connections there, or PythonQt keeps the effect alive
        # (AbstractScriptedSegmentEditorEffect.cleanup docstring, Slicer issue #7392).
        self.pendingJobs.cancelAll()
        self.stopListening()
        self.watch.stop()
        for qtObject, signal, slot in self.connections:
            qtObject.disconnect(signal, slot)
        self.connections = []
        self.prefetch.release()
        self.markers.remove()
        self.strokeDrawing.remove()
        AbstractScriptedSegmentEditorEffect.cleanup(self)

    # interactionNodeModified is deliberately not overridden: the base implementation
    # (qSlicerSegmentEditorAbstractEffect::interactionNodeModified,
    # Modules/Loadable/Segmentations/EditorEffects/qSlicerSegmentEditorAbstractEffect.cxx) deactivates
    # the effect when the user starts markups placement. Swallowing it left the effect active, and
    # the editor's view observers (which run first) consumed the clicks meant for the placement.

    def sourceVolumeNodeChanged(self):
        # Every registered effect hears this, active or not (qMRMLSegmentEditorWidget.cxx,
        # notifyEffectsOfSourceVolumeNodeChange): forget state, create nothing.
        self.clearPrompts()
        self.volumeCache = (None, None)

    def setStatus(self, text: str) -> None:
        if getattr(self, "statusLabel", None) is not None:
            self.statusLabel.text = text
        slicer.util.showStatusMessage("SegMoTE: " + text, 5000)

    # --- mouse and keys (rules: SegMoTEGlue.interaction) ------------------------------------------
    def processInteractionEvents(self, callerInteractor: vtk.vtkRenderWindowInteractor, eventId,
                                 viewWidget: slicer.qMRMLSliceWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.KeyPressEvent:
            action = shortcutAction(callerInteractor.GetKeySym(), bool(callerInteractor.GetShiftKey()),
                                    bool(callerInteractor.GetControlKey()), bool(callerInteractor.GetAltKey()))
            if action is not None:
                self.runShortcut(action)
            return action is not None
        xy = callerInteractor.GetEventPosition()
        viewName = viewWidget.mrmlSliceNode().GetName()
        mode = self.scriptedEffect.parameter("Mode")
        if eventId in (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonDoubleClickEvent):
            if not pressStartsGesture(bool(callerInteractor.GetControlKey()), bool(callerInteractor.GetAltKey())):
                return False  # Ctrl / Alt + drag: the slice view's blend, rotate, translate
            self.gesture.press(xy, viewName)  # taken, so a double click does not maximize the view
            if mode in STROKE_MODES:
                self.strokeDrawing.begin(viewWidget, self.xyToRas(xy, viewWidget), closed=mode == MODE_LASSO)
            return True
        if not self.gesture.belongsTo(viewName):
            return False
        if eventId == vtk.vtkCommand.MouseMoveEvent:
            if self.gesture.move(xy, canDrag=mode != MODE_AUTO):
                if mode in STROKE_MODES:
                    self.strokeDrawing.extend(self.xyToRas(xy, viewWidget))
                else:
                    self.showDraggedBox(self.gesture.pressXy, xy, viewWidget)
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent:
            inverted = bool(callerInteractor.GetShiftKey())
            self.onMouseReleased(self.gesture.release(xy), viewWidget, inverted)
            return True
        return False

    def runShortcut(self, action: str) -> None:
        if action.startswith("mode:"):
            self.scriptedEffect.setParameter("Mode", action.split(":", 1)[1])
            self.updateGUIFromMRML()
            self.setStatus(f"Mode: {self.scriptedEffect.parameter('Mode')}.")
        elif action == "toggle-polarity":
            self.togglePolarity()
            self.setStatus(f"Clicks are now {self.polarity.describe()}.")
        elif action == "clear":
            self.clearPrompts()
            self.setStatus("Prompts cleared; the mask stays.")

    def showDraggedBox(self, startXy, endXy, viewWidget: slicer.qMRMLSliceWidget) -> None:
        rectangleXy = [(startXy[0], startXy[1]), (endXy[0], startXy[1]), (endXy[0], endXy[1]), (startXy[0], endXy[1])]
        self.draggedOutlineRas = [self.xyToRas(cornerXy, viewWidget) for cornerXy in rectangleXy]
        prompts = self.prompts
        points = prompts.pointsRas if prompts is not None else []
        labels = prompts.labels if prompts is not None else []
        self.markers.show(points, labels, self.draggedOutlineRas)

    def onMouseReleased(self, release, viewWidget: slicer.qMRMLSliceWidget, inverted: bool) -> None:
        sliceNode = viewWidget.mrmlSliceNode()
        viewName = sliceNode.GetName()
        orientation = sliceNormalWorld(sliceNode)
        mode = self.scriptedEffect.parameter("Mode")
        releaseRas = self.xyToRas(release.releaseXy, viewWidget)
        stroke = self.strokeDrawing.finish() if self.strokeDrawing.drawing is not None else None
        if release.dragged and mode in STROKE_MODES and stroke:
            self.addStrokePrompt(mode, stroke, self.polarity.clickIsPositive(inverted), orientation, viewName)
        elif release.dragged:
            self.setBoxPrompt(self.xyToRas(release.pressXy, viewWidget), releaseRas, orientation, viewName,
                              outlineRas=self.draggedOutlineRas)
        elif mode == MODE_AUTO:
            self.segmentPromptFree(releaseRas, orientation, viewName)
        elif mode == MODE_BOX and (self.prompts is None or self.prompts.boxCornersRas is None):
            self.setStatus("Box mode: drag to draw a box first; clicks then refine it.")
        else:
            self.addPointPrompt(releaseRas, self.polarity.clickIsPositive(inverted), orientation, viewName)

    # --- prompt API (world RAS; also used by the self-tests) -----------------------------------
    def addPointPrompt(self, pointRas, positive: bool = True, orientation="axial", viewName: str = "API") -> None:
        prompts = self.promptsFor(pointRas, orientation, viewName)
        if prompts is not None:
            prompts.addPoint(pointRas, positive)
            self.submitSlicePrompt(prompts)

    def setBoxPrompt(self, cornerRas0, cornerRas1, orientation="axial", viewName: str = "API",
                     outlineRas=None) -> None:
        """A box by two opposite corners; `outlineRas`: the 4 rectangle corners drawn as its marker."""
        prompts = self.promptsFor(cornerRas1, orientation, viewName)
        if prompts is not None:
            prompts.setBox(cornerRas0, cornerRas1, outlineRas)
            self.submitSlicePrompt(prompts)

    def addStrokePrompt(self, kind: str, verticesRas, positive: bool = True, orientation="axial",
                        viewName: str = "API") -> None:
        """A scribble (kind "scribble") or a lasso ("lasso") on the slice of its first vertex."""
        prompts = self.promptsFor(verticesRas[0], orientation, viewName)
        if prompts is not None:
            prompts.addStroke(kind, verticesRas, positive)
            self.submitSlicePrompt(prompts)

    def addPointPromptIjk(self, ijk, positive: bool = True, orientation="axial", viewName: str = "API") -> None:
        """A click at voxel (i, j, k) of the source volume node."""
        self.addPointPrompt(self.sourceIjkToRas(ijk), positive, orientation, viewName)

    def setBoxPromptIjk(self, ijk0, ijk1, orientation="axial", viewName: str = "API") -> None:
        """A box with opposite corners at voxels ijk0 and ijk1 of the source volume node."""
        self.setBoxPrompt(self.sourceIjkToRas(ijk0), self.sourceIjkToRas(ijk1), orientation, viewName)

    def sourceIjkToRas(self, ijk) -> list:
        sourceNode = self.scriptedEffect.parameterSetNode().GetSourceVolumeNode()
        if sourceNode is None:
            raise InputError("source volume: select a source volume in the Segment Editor")
        return list(geometryOfNode(sourceNode).ijk_to_ras_points([ijk])[0])

    @property
    def prompts(self) -> SlicePrompts | None:
        """The selected segment's current prompt set (None when it has none)."""
        target = self.currentTarget()
        return self.promptBook.current(target.segmentationNodeId, target.segmentId)

    def currentTarget(self) -> EditTarget:
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        if parameterSetNode is None:
            return EditTarget(None, None)
        segmentationNode = parameterSetNode.GetSegmentationNode()
        return EditTarget(segmentationNode.GetID() if segmentationNode is not None else None,
                          parameterSetNode.GetSelectedSegmentID())

    def clearPrompts(self) -> None:
        self.promptBook.clear()
        self.propagatedTargets.clear()
        self.latestSerial += 1  # results still on their way are dropped
        self.showPrompts(None)

    def showCurrentPrompts(self) -> None:
        """The markers show the selected segment's prompts (none after a switch to a segment without)."""
        self.showPrompts(self.prompts)

    def showPrompts(self, prompts: SlicePrompts | None) -> None:
        """Clicks and box as markers, strokes as 2D actors in the view they were drawn in."""
        if prompts is None:
            self.markers.clear()
            self.strokeDrawing.show(None, [])
            return
        self.markers.show(prompts.pointsRas, prompts.labels, prompts.boxOutlineRas)
        layoutManager = slicer.app.layoutManager()
        viewWidget = layoutManager.sliceWidget(prompts.sliceKey.viewName) if layoutManager is not None else None
        self.strokeDrawing.show(viewWidget, prompts.strokes())

    def onSegmentEdited(self, segmentationNode) -> None:
        """Undo, Redo or another tool changed segments: their prompts describe a mask that is gone."""
        segmentationId = segmentationNode.GetID()
        changed = self.promptBook.forgetChanged(segmentationId, lambda segmentId: labelmapToken(segmentationNode,
                                                                                               segmentId))
        if changed:
            self.latestSerial += 1  # a result still on its way was computed from them
            # no longer the propagation's result: a click there is a slice prompt again
            self.propagatedTargets = {t for t in self.propagatedTargets if t.segmentationNodeId != segmentationId}
            self.showCurrentPrompts()

    def waitForIdle(self, timeoutSeconds: float = 600.0) -> None:
        """Process events until no SegMoTE job of this effect is pending (tests, scripts)."""
        elapsed = 0.0
        while self.activeFeedbacks and elapsed < timeoutSeconds:
            slicer.app.processEvents()
            time.sleep(0.02)
            elapsed += 0.02
        if self.activeFeedbacks:
            raise TimeoutError(f"SegMoTE: still busy after {timeoutSeconds} s")

    # --- slices and jobs -----------------------------------------------------------------------
    def context(self):
        """(segmentationNode, source image, Volume in world RAS, cache key); raises InputError."""
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        sourceVolumeNode = parameterSetNode.GetSourceVolumeNode()
        if sourceVolumeNode is None:
            raise InputError("source volume: select a source volume in the Segment Editor")
        if not parameterSetNode.GetSelectedSegmentID():
            raise InputError("segment: add or select a segment first")
        image = self.scriptedEffect.sourceVolumeImageData()
        key = orientedImageSessionKey(image, segmentationNode, sourceVolumeNode, self.scriptedEffect.parameter("Modality"))
        if self.volumeCache[0] != key:
            self.volumeCache = (key, orientedImageToVolume(image, segmentationNode, sourceVolumeNode))
        return segmentationNode, image, self.volumeCache[1], key

    def promptsFor(self, anchorRas, orientation, viewName: str) -> SlicePrompts | None:
        """The selected segment's prompt set on the slice through `anchorRas` (new when either changed).

        A new set of a segment that already has voxels on that slice is seeded with them."""
        try:
            segmentationNode, image, volume, _key = self.context()
            ref = geometry.slice_through(volume, orientation, anchorRas)
        except (InputError, ValueError) as error:
            self.setStatus(describeError(error))
            return None
        target = self.currentTarget()
        sliceKey = SliceKey(target.segmentationNodeId, target.segmentId, viewName, ref.axis, ref.index)
        prompts = self.promptBook.promptsFor(sliceKey, orientation)
        if prompts.empty and prompts.lastResult is None and prompts.segmentToken is None:
            prompts.segmentToken = labelmapToken(segmentationNode, target.segmentId)
            prompts.seedMask = segmentSliceMask(self.scriptedEffect, image, volume, ref)
        return prompts

    def mapping(self) -> IntensityMapping:
        return IntensityMapping(modality=self.scriptedEffect.parameter("Modality") or "auto")

    def submitSlicePrompt(self, prompts: SlicePrompts) -> None:
        self.showPrompts(prompts)
        if prompts.hasCorrection() and self.currentTarget() in self.propagatedTargets:
            self.volumeActions.correctPropagated(prompts)
            return
        arguments = prompts.arguments()
        self.submit(lambda segmenter: segmenter.segment_slice(**arguments), prompts, "Segmenting the slice...")

    def segmentPromptFree(self, pointRas, orientation, viewName: str) -> None:
        target = self.currentTarget()
        self.promptBook.forget(target.segmentationNodeId, target.segmentId)
        prompts = self.promptsFor(pointRas, orientation, viewName)
        if prompts is not None:
            self.markers.clear()
            index = prompts.sliceKey.index
            self.submit(lambda segmenter: segmenter.segment_auto(orientation, index), prompts,
                        "Segmenting the slice without prompts...")

    def editingConfirmed(self) -> bool:
        """Slicer's check that the selected segment is visible (it asks the user otherwise)."""
        return self.scriptedEffect.confirmCurrentSegmentVisible() != self.scriptedEffect.NotConfirmed

    def submit(self, predict, prompts: SlicePrompts, title: str) -> None:
        try:
            _segmentationNode, image, volume, key = self.context()
        except InputError as error:
            self.setStatus(str(error))
            return
        if not self.editingConfirmed():
            return
        engine = self.currentEngine()
        mapping = self.mapping()
        self.latestSerial += 1
        serial = self.latestSerial

        def run(call):
            return predict(engine.segmenterFor(key, volume, mapping))

        def onDone(result):
            if serial != self.latestSerial:
                return  # a newer prompt of this effect is on its way
            prompts.lastResult = result
            # the one-slice block, not a full-volume array (issue 19, item 5): segmentwrite takes its slab
            if self.writeLabelmap(result.mask_block(), image, result.ref.axis, result.ref.index, result.ref.index):
                refined = " (refining the segment's mask)" if prompts.seedMask is not None else ""
                self.setStatus(f"Slice {result.ref.index} segmented{refined} (predicted IoU {result.score:.2f}, "
                               f"{result.decoder} decoder).")

        self.startJob(engine, run, title, INTERACTIVE, onDone)

    def onPropagate(self) -> None:
        self.volumeActions.propagateSelected()

    def startJob(self, engine, run, title: str, priority: int, onDone) -> None:
        """Submit `run`; busy cursor, then a progress dialog (with Cancel, prompts included: a slow or
        unreachable engine never holds the user); `onDone(result)` on the main thread.

        The segmentation and segment selected now are the result's target: a result arriving
        after the effect was deactivated, or when another segment or segmentation is selected, is
        dropped (and the status line says so) instead of being written into the wrong segment.
        """
        holder = {}
        target = self.currentTarget()

        def finish():
            self.pendingJobs.done(holder.get("job"))
            feedback = holder.pop("feedback", None)
            if feedback is not None:
                feedback.close()
                self.activeFeedbacks.discard(feedback)

        def finished(result):
            finish()
            reason = dropReason(target, self.currentTarget(), self.active)
            if reason is not None:
                self.setStatus(f"Result dropped: {reason}.")
                return
            onDone(result)

        def failed(error):
            finish()
            self.setStatus(describeError(error))

        try:
            job = engine.submit(run, title, priority, onDone=finished, onError=failed)
        except Exception as error:  # dependencies missing: say so instead of a traceback
            self.setStatus(describeError(error))
            return
        if job.finished:  # refused before submit() returned (engine.Engine._next): its callbacks have run
            return
        holder["job"] = job
        self.pendingJobs.add(job)
        holder["feedback"] = BusyFeedback(job, title, cancellable=True)
        self.activeFeedbacks.add(holder["feedback"])

    def writeLabelmap(self, labelmap, image: slicer.vtkOrientedImageData, axis: int, first: int, last: int) -> bool:
        """Replace the selected segment on slices first..last along `axis` by `labelmap` [k, j, i], keeping
        every other voxel (SegMoTEGlue.segmentwrite); one undo step. False (and why) when refused."""
        try:
            with self.watch.ownWrite():
                replaceSegmentOnSlab(self.scriptedEffect, labelmap, image, axis, first, last)
        except InputError as error:
            self.setStatus(str(error))
            return False
        prompts, target = self.prompts, self.currentTarget()
        if prompts is not None:  # the segment as its prompts now describe it (see onSegmentEdited)
            prompts.segmentToken = labelmapToken(self.scriptedEffect.parameterSetNode().GetSegmentationNode(),
                                                 target.segmentId)
        return True

    # --- embedding ahead of time ---------------------------------------------------------------
    def processViewNodeEvents(self, callerViewNode: slicer.vtkMRMLAbstractViewNode, eventId, viewWidget):
        if callerViewNode is None or not callerViewNode.IsA("vtkMRMLSliceNode"):
            return
        self.strokeDrawing.positionActors(viewWidget)  # strokes follow a pan or zoom
        self.prefetch.schedule(callerViewNode)
