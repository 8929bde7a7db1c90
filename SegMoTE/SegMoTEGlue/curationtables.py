"""Curation records shown in Slicer: a table node and a plot of the scores per class.

Columns follow the CLI's manifest (SegMoTELib.curation.tables.MANIFEST_COLUMNS): identity, metrics,
gate verdicts, passed, failures, score, selected.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

HISTOGRAM_BINS = 20


def _isNumber(value) -> bool:
    return isinstance(value, (bool, int, float, np.number))


def fillRecordTable(tableNode: slicer.vtkMRMLTableNode, records: list[dict], columns) -> None:
    """Replace the table's content by one row per record: a column of numbers (a missing value, None,
    shown as empty: NaN) stays numeric and sorts as numbers; any other column is text."""
    table = tableNode.GetTable()
    with slicer.util.NodeModify(tableNode):
        tableNode.RemoveAllColumns()
        for name in columns:
            values = [record.get(name) for record in records]
            present = [value for value in values if value is not None]
            if present and all(_isNumber(value) for value in present):
                numbers = [np.nan if value is None else float(value) for value in values]
                array = numpy_support.numpy_to_vtk(np.asarray(numbers, dtype=np.float64), deep=True)
            else:
                array = vtk.vtkStringArray()
                array.SetNumberOfValues(len(values))
                for row, value in enumerate(values):
                    array.SetValue(row, "" if value is None else str(value))
            array.SetName(name)
            table.AddColumn(array)
        table.Modified()


HISTOGRAM_TABLE_ROLE = "SegMoTEHistogramTable"  # node reference from the chart to its table


def scoreHistogramChart(records: list[dict], classBy: tuple, chartNode: slicer.vtkMRMLPlotChartNode | None = None
                        ) -> slicer.vtkMRMLPlotChartNode:
    """A plot chart with one line per class: the histogram of quality scores (0..1).

    Given the chart of an earlier run, its histogram table is refilled and its series replaced, so
    repeated runs do not pile up table, chart and series nodes in the scene.
    """
    from SegMoTELib.curation.sampler import class_key

    classes: dict[tuple, list[float]] = {}
    for record in records:
        classes.setdefault(class_key(record, classBy), []).append(float(record.get("score") or 0.0))
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2.0
    names = ["/".join(key) for key in sorted(classes)]
    counts = [np.histogram(classes[key], bins=edges)[0].astype(np.float64) for key in sorted(classes)]

    scene = slicer.mrmlScene
    if chartNode is None or not scene.IsNodePresent(chartNode):
        chartNode = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "SegMoTE scores per class")
    tableNode = chartNode.GetNodeReference(HISTOGRAM_TABLE_ROLE)
    if tableNode is None:
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", "SegMoTE score histogram")
        chartNode.SetNodeReferenceID(HISTOGRAM_TABLE_ROLE, tableNode.GetID())
    slicer.util.updateTableFromArray(tableNode, [centres, *counts], ["score", *names])
    oldSeries = [chartNode.GetNthPlotSeriesNode(index) for index in range(chartNode.GetNumberOfPlotSeriesNodes())]
    chartNode.RemoveAllPlotSeriesNodeIDs()
    for series in oldSeries:
        if series is not None:
            scene.RemoveNode(series)
    for name in names:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"scores {name}")
        series.SetAndObserveTableNodeID(tableNode.GetID())
        series.SetXColumnName("score")
        series.SetYColumnName(name)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeLine)
        series.SetUniqueColor()
        chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
    chartNode.SetTitle("Quality score per class")
    chartNode.SetXAxisTitle("score")
    chartNode.SetYAxisTitle("slices")
    return chartNode


def showInLayout(tableNode: slicer.vtkMRMLTableNode, chartNode: slicer.vtkMRMLPlotChartNode) -> None:
    """Switch to the four-up plot + table layout and show both there."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:  # no main window (tests, batch)
        return
    layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    selectionNode.SetActiveTableID(tableNode.GetID())
    selectionNode.SetActivePlotChartID(chartNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()
    slicer.app.applicationLogic().PropagatePlotChartSelection()
