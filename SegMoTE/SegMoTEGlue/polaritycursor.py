"""The slice-view cursor of the effect: a crosshair in the colour of the next click, with its sign.

Green "+" adds to the segment, red "-" removes from it (the colours of the click markers). The Segment
Editor puts an effect's `createCursor()` on every slice view when the effect is activated
(qMRMLSegmentEditorWidget.cxx, setActiveEffect); the effect puts a new one there when the polarity
changes (`showOnSliceViews`). Drawn once per polarity with Qt; nothing else here.
"""

from __future__ import annotations

import qt
import slicer

from .markers import NEGATIVE_COLOR, POSITIVE_COLOR

_SIZE, _CENTRE, _GAP, _ARM = 32, 16, 3, 8
_cursors: dict = {}


def polarityCursor(positive: bool) -> qt.QCursor:
    if positive not in _cursors:
        _cursors[positive] = _drawCursor(positive)
    return _cursors[positive]


def _drawCursor(positive: bool) -> qt.QCursor:
    pixmap = qt.QPixmap(_SIZE, _SIZE)
    pixmap.fill(qt.QColor(0, 0, 0, 0))
    painter = qt.QPainter(pixmap)
    painter.setRenderHint(qt.QPainter.Antialiasing, True)
    red, green, blue = (int(255 * value) for value in (POSITIVE_COLOR if positive else NEGATIVE_COLOR))
    # a dark halo under the colour, so the cursor reads on bright and dark images alike
    for colour, width in ((qt.QColor(0, 0, 0, 190), 4), (qt.QColor(red, green, blue), 2)):
        pen = qt.QPen(colour)
        pen.setWidth(width)
        painter.setPen(pen)
        c = _CENTRE
        painter.drawLine(c - _ARM, c, c - _GAP, c)
        painter.drawLine(c + _GAP, c, c + _ARM, c)
        painter.drawLine(c, c - _ARM, c, c - _GAP)
        painter.drawLine(c, c + _GAP, c, c + _ARM)
        painter.drawLine(22, 6, 30, 6)  # the sign, top right: "-", and "+" with its vertical bar
        if positive:
            painter.drawLine(26, 2, 26, 10)
    painter.end()
    return qt.QCursor(pixmap, _CENTRE, _CENTRE)


def showPolarity(button, polarity, onSliceViews: bool, segmentationNode=None) -> None:
    """`polarity` (interaction.Polarity) on the effect's checkable button, in its colour, and on the
    slice views' cursor when `onSliceViews` (the effect is active)."""
    wasBlocked = button.blockSignals(True)
    button.checked = not polarity.positive
    button.blockSignals(wasBlocked)
    button.text = polarity.describe()
    button.styleSheet = "color: #1b8a3a" if polarity.positive else "color: #c62828"
    if onSliceViews:
        showOnSliceViews(polarity.positive, segmentationNode)


def showOnSliceViews(positive: bool, segmentationNode) -> None:
    """Put the cursor of `positive` on the slice views that show `segmentationNode` (none without a
    main window). Only those: the Segment Editor gives the effect's cursor to the views where the
    segmentation is displayable and, when the effect ends, restores the default cursor only there
    (qMRMLSegmentEditorWidget::setEffectCursor, vtkSlicerSegmentEditorLogic::
    IsSegmentationDisplayableInView, Slicer 5.10); any other view would keep this cursor for good."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None or segmentationNode is None:
        return
    cursor = polarityCursor(positive)
    for name in layoutManager.sliceViewNames():
        sliceWidget = layoutManager.sliceWidget(name)
        if not displayedInView(segmentationNode, sliceWidget.mrmlSliceNode()):
            continue
        sliceView = sliceWidget.sliceView()
        sliceView.setViewCursor(cursor)
        sliceView.setDefaultViewCursor(cursor)


def displayedInView(segmentationNode, viewNode) -> bool:
    """vtkSlicerSegmentEditorLogic::IsSegmentationDisplayableInView: one of its display nodes is."""
    viewNodeId = viewNode.GetID() if viewNode is not None else None
    if not viewNodeId:
        return False
    for index in range(segmentationNode.GetNumberOfDisplayNodes()):
        displayNode = segmentationNode.GetNthDisplayNode(index)
        if displayNode is not None and displayNode.IsDisplayableInView(viewNodeId):
            return True
    return False
