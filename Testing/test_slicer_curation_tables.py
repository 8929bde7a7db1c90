"""The curation module's table and chart on Slicer's real table and plot nodes (slicer-core)."""

from __future__ import annotations

import math

import pytest
from slicer_scene import real_glue_modules, real_scene  # noqa: F401  (fixture)

pytest.importorskip("slicer")

RECORDS = [
    {"image": "a.png", "label_name": "liver", "dice": 0.91, "score": 0.8, "passed": True},
    {"image": "b.png", "label_name": "liver", "dice": None, "score": 0.4, "passed": False},  # not measured
    {"image": "c.png", "label_name": "spleen", "dice": 0.75, "score": 0.6, "passed": True},
]


def test_a_missing_value_keeps_a_numeric_column_numeric(real_scene):  # noqa: F811
    """A None among numbers turned the whole column into text, which sorts "10" before "9"."""
    with real_glue_modules():
        from SegMoTEGlue.curationtables import fillRecordTable

        tableNode = real_scene.scene.AddNewNodeByClass("vtkMRMLTableNode")
        fillRecordTable(tableNode, RECORDS, ["image", "dice", "passed"])
    table = tableNode.GetTable()
    dice = table.GetColumnByName("dice")
    assert dice.IsNumeric() and dice.GetValue(0) == pytest.approx(0.91) and math.isnan(dice.GetValue(1))
    assert table.GetColumnByName("passed").IsNumeric()
    assert not table.GetColumnByName("image").IsNumeric() and table.GetColumnByName("image").GetValue(2) == "c.png"
    assert table.GetNumberOfRows() == 3


def test_rerunning_the_chart_reuses_its_nodes(real_scene):  # noqa: F811
    scene = real_scene.scene
    with real_glue_modules():
        from SegMoTEGlue.curationtables import scoreHistogramChart

        chart = scoreHistogramChart(RECORDS, ("label",))
        counts = [scene.GetNumberOfNodesByClass(name) for name in ("vtkMRMLPlotSeriesNode", "vtkMRMLTableNode")]
        assert counts == [2, 1] and chart.GetNumberOfPlotSeriesNodes() == 2
        again = scoreHistogramChart(RECORDS[:1], ("label",), chart)
    assert again is chart and chart.GetNumberOfPlotSeriesNodes() == 1
    assert [scene.GetNumberOfNodesByClass(name) for name in ("vtkMRMLPlotSeriesNode", "vtkMRMLTableNode")] == [1, 1]
