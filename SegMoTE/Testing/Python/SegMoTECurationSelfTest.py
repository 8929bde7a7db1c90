"""SegMoTE Curation in Slicer: a loaded volume and a segmentation → records, table, plot, export."""

from __future__ import annotations

import csv
import tempfile
import unittest
from pathlib import Path

import numpy as np
import slicer
from SegMoTESelfTestCase import makeSelfTestPhantom
from SegMoTETestSupport import loadPhantomVolume

import SegMoTEGlue  # noqa: F401
from SegMoTECuration import SegMoTECurationLogic


class SegMoTECurationSelfTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        self.volumeNode = loadPhantomVolume()
        phantom = makeSelfTestPhantom()
        self.segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        segmentation = self.segmentationNode.GetSegmentation()
        # Two of the phantom's structures, from its label map (same voxel grid as the volume).
        for name in ("liver", "vertebrae"):
            segmentId = segmentation.AddEmptySegment("", name)
            slicer.util.updateSegmentBinaryLabelmapFromArray(phantom.mask(name).astype(np.uint8),
                                                             self.segmentationNode, segmentId, self.volumeNode)

    def test_measure_sample_show_and_export(self):
        logic = SegMoTECurationLogic()
        inputs = logic.inputs([(self.volumeNode, self.segmentationNode)], orientation="axial")
        records = logic.measure(inputs)
        self.assertEqual({record["label_name"] for record in records}, {"liver", "vertebrae"})
        self.assertTrue(all(0.0 <= record["score"] <= 1.0 for record in records))
        passed = sum(1 for record in records if record["passed"])
        self.assertGreater(passed, 10)

        selected = logic.sample(records, target=10, classBy=("label",), seed=1)
        self.assertEqual(len(selected), 10)
        self.assertEqual(logic.sample(records, target=10, classBy=("label",), seed=1), selected)

        tableNode = logic.showRecords(records)
        self.assertEqual(tableNode.GetNumberOfRows(), len(records))
        self.assertGreaterEqual(tableNode.GetColumnIndex("score"), 0)
        chartNode = logic.plotScores(records, ("label",))
        self.assertEqual(chartNode.GetNumberOfPlotSeriesNodes(), 2)
        # A second run reuses the table, the chart and its histogram table (no new nodes).
        nodeCount = slicer.mrmlScene.GetNumberOfNodes()
        self.assertIs(logic.showRecords(records, tableNode), tableNode)
        self.assertIs(logic.plotScores(records, ("label",), chartNode), chartNode)
        self.assertEqual(chartNode.GetNumberOfPlotSeriesNodes(), 2)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount)

        with tempfile.TemporaryDirectory() as folder:
            trainingSet = Path(logic.export(inputs, records, folder))
            self.assertEqual(len(list((trainingSet / "images").glob("*.png"))), 10)
            self.assertEqual(len(list((trainingSet / "masks").glob("*.png"))), 10)
            with open(Path(folder) / "manifest.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            self.assertEqual(len(rows), len(records))
            self.assertEqual(sum(1 for row in rows if row["selected"] in ("True", "true", "1")), 10)
