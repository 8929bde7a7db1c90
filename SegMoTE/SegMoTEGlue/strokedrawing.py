"""Scribbles and lassos on the slice views, drawn as 2D actors the way Slicer's Draw effect draws its
outline (Modules/Loadable/Segmentations/EditorEffects/Python/SegmentEditorEffects/
SegmentEditorDrawEffect.py, DrawPipeline): vertices are kept in world RAS and mapped to the view's XY
through the inverse of the slice node's XYToRAS at every redraw, so a pan or zoom moves them along.

One actor per slice view holds the stroke being drawn (yellow) and the strokes of the selected
segment's prompt set (green: positive, red: negative); lassos are closed. No maths here: the strokes
go to SegMoTELib as RAS vertices.
"""

from __future__ import annotations

import slicer
import vtk

COLOURS = {True: (60, 220, 60), False: (240, 70, 50), None: (255, 230, 0)}  # positive, negative, being drawn


class _Pipeline:
    def __init__(self, scriptedEffect, sliceWidget: slicer.qMRMLSliceWidget):
        self.sliceWidget = sliceWidget
        self.rasPoints = vtk.vtkPoints()
        self.xyPoints = vtk.vtkPoints()
        self.polyData = vtk.vtkPolyData()
        self.polyData.SetPoints(self.xyPoints)
        self.polyData.SetLines(vtk.vtkCellArray())
        self.colours = vtk.vtkUnsignedCharArray()
        self.colours.SetNumberOfComponents(3)
        self.polyData.GetCellData().SetScalars(self.colours)
        mapper = vtk.vtkPolyDataMapper2D()
        mapper.SetInputData(self.polyData)
        mapper.SetScalarModeToUseCellData()
        mapper.SetColorModeToDirectScalars()
        self.actor = vtk.vtkActor2D()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetLineWidth(2)
        scriptedEffect.addActor2D(sliceWidget, self.actor)

    def draw(self, strokes) -> None:
        """strokes: (verticesRas, positive or None while drawn, closed) each."""
        self.rasPoints.Reset()
        lines = vtk.vtkCellArray()
        self.colours.Reset()
        for vertices, positive, closed in strokes:
            ids = [self.rasPoints.InsertNextPoint(*vertex) for vertex in vertices]
            if closed and len(ids) > 2:
                ids.append(ids[0])
            for first, second in zip(ids[:-1], ids[1:]):
                lines.InsertNextCell(2, [first, second])
                self.colours.InsertNextTuple3(*COLOURS[positive])
        self.polyData.SetLines(lines)
        self.positionActors()

    def positionActors(self) -> None:
        rasToXy = vtk.vtkTransform()
        rasToXy.SetMatrix(self.sliceWidget.sliceLogic().GetSliceNode().GetXYToRAS())
        rasToXy.Inverse()
        self.xyPoints.Reset()
        rasToXy.TransformPoints(self.rasPoints, self.xyPoints)
        self.polyData.Modified()
        sliceView: slicer.qMRMLSliceView = self.sliceWidget.sliceView()
        sliceView.scheduleRender()


class StrokeDrawing:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect
        self.pipelines: dict = {}       # slice widget -> _Pipeline
        self.shown: dict = {}           # slice widget -> the committed strokes drawn there
        self.drawing = None             # (slice widget, [vertex RAS...], closed) while the mouse draws

    def _pipeline(self, sliceWidget) -> _Pipeline:
        if sliceWidget not in self.pipelines:
            self.pipelines[sliceWidget] = _Pipeline(self.scriptedEffect, sliceWidget)
        return self.pipelines[sliceWidget]

    def _redraw(self, sliceWidget) -> None:
        strokes = list(self.shown.get(sliceWidget, []))
        if self.drawing is not None and self.drawing[0] is sliceWidget:
            strokes.append((self.drawing[1], None, self.drawing[2]))
        self._pipeline(sliceWidget).draw(strokes)

    def begin(self, sliceWidget, ras, closed: bool) -> None:
        self.drawing = (sliceWidget, [list(ras)], closed)
        self._redraw(sliceWidget)

    def extend(self, ras) -> None:
        if self.drawing is not None:
            self.drawing[1].append(list(ras))
            self._redraw(self.drawing[0])

    def finish(self) -> list:
        """The vertices (RAS) of the stroke just drawn; it stops being shown as one in progress."""
        sliceWidget, vertices, _closed = self.drawing
        self.drawing = None
        self._redraw(sliceWidget)
        return vertices

    def show(self, sliceWidget, strokes) -> None:
        """The committed strokes of one view (`SlicePrompts.strokes()`); the other views show none."""
        for widget in list(self.shown):
            if widget is not sliceWidget:
                self.shown.pop(widget)
                self._redraw(widget)
        if sliceWidget is not None:
            self.shown[sliceWidget] = list(strokes)
            self._redraw(sliceWidget)

    def positionActors(self, sliceWidget) -> None:
        """After a pan, zoom or slice change of the view (Draw's processViewNodeEvents does the same)."""
        if sliceWidget in self.pipelines:
            self.pipelines[sliceWidget].positionActors()

    def remove(self) -> None:
        for sliceWidget, pipeline in self.pipelines.items():
            self.scriptedEffect.removeActor2D(sliceWidget, pipeline.actor)
        self.pipelines, self.shown, self.drawing = {}, {}, None
