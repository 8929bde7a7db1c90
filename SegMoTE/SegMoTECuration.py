"""SegMoTE Curation: QC, score and sample slices of loaded studies into a training set.

Pick loaded volumes with their segmentation or label map; every (slice, label) is measured by
SegMoTELib.curation (hard gates, quality score, DESIGN §3), shown in a table (click a row to see
the slice) and a per-class score histogram, sampled to a target count, and exported in the CLI's
format (manifest.csv, rejects.csv, config.json, training_set/ in the train_pool layout).
Measuring and exporting run on SegMoTE's worker thread with a cancellable progress dialog.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SegMoTEGlue  # noqa: F401  (makes SegMoTELib importable from a source checkout)
from SegMoTEGlue.curationdata import CurationInput, curationInput, jumpToRecord
from SegMoTEGlue.curationtables import fillRecordTable, scoreHistogramChart, showInLayout
from SegMoTEGlue.feedback import BusyFeedback, describeError
from SegMoTEGlue.worker import BATCH, backgroundWorker
from SegMoTELib.errors import InputError
from SegMoTELib.intensity import MODALITIES

ORIENTATIONS = ("axial", "coronal", "sagittal")


class SegMoTECuration(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SegMoTE Curation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SegMoTE developers"]
        self.parent.helpText = (
            "Quality control and sampling of segmented slices into a training set (MedSeg-HQ): hard "
            "gates on intensity, contrast, foreground size and fragmentation, a quality score, and "
            "class-balanced sampling to a target number of slices.")
        self.parent.acknowledgementText = (
            "The quality gates, score and sampling follow the MedSeg-HQ curation of the SegMoTE paper; "
            "SegMoTE builds on Segment Anything (Meta AI) and LiteMedSAM / MedSAM (Bo Wang lab).")


# ---------------------------------------------------------------------------------------------
class SegMoTECurationLogic(ScriptedLoadableModuleLogic):
    """Usable from the Python console: inputs → records → selection → table, plot, export."""

    def inputs(self, pairs, orientation: str = "axial", modality: str = "auto") -> list[CurationInput]:
        """pairs: [(volume node, segmentation or label map node)]; main thread."""
        if not pairs:
            raise InputError("inputs: add at least one volume with its segmentation or label map")
        return [curationInput(volume, labels, orientation, modality) for volume, labels in pairs]

    def measure(self, inputs: list[CurationInput], config=None, progress=None) -> list[dict]:
        """Records of every (slice, label): metrics, gates, score. Pure numpy: any thread."""
        from SegMoTELib.curation import records_from_volume

        records = []
        for number, item in enumerate(inputs):
            records += records_from_volume(
                item.voxelsU8, item.labelmap, item.arrayAxis, source=item.volumeNodeId, case=item.case,
                modality=item.modality, label_names=item.labelNames, config=config, dataset=item.case)
            if progress is not None:
                progress(number + 1, len(inputs))
        return records

    def sample(self, records: list[dict], target: int, classBy=("label",), seed: int = 0, config=None) -> list[int]:
        from SegMoTELib.curation import sample_records

        selected = set(sample_records(records, int(target), classBy, seed, config))
        for index, record in enumerate(records):
            record["selected"] = index in selected
        return sorted(selected)

    def showRecords(self, records: list[dict], tableNode: slicer.vtkMRMLTableNode | None = None
                    ) -> slicer.vtkMRMLTableNode:
        from SegMoTELib.curation.tables import MANIFEST_COLUMNS

        if tableNode is None or not slicer.mrmlScene.IsNodePresent(tableNode):
            tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "SegMoTE curation")
        fillRecordTable(tableNode, records, MANIFEST_COLUMNS)
        return tableNode

    def plotScores(self, records: list[dict], classBy=("label",),
                   chartNode: slicer.vtkMRMLPlotChartNode | None = None) -> slicer.vtkMRMLPlotChartNode:
        """Score histogram per class; pass the chart of an earlier run to update it in place."""
        return scoreHistogramChart(records, tuple(classBy), chartNode)

    def export(self, inputs: list[CurationInput], records: list[dict], folder: str, config=None,
               progress=None) -> str:
        """Write the CLI's output layout into `folder` (training set swapped in only when complete)."""
        from SegMoTELib.curation import QCConfig, write_training_set
        from SegMoTELib.curation.tables import (
            MANIFEST_COLUMNS,
            REJECT_COLUMNS,
            reject_rows,
            write_csv,
            write_text_atomic,
        )

        config = config or QCConfig()
        byVolume = {item.volumeNodeId: item for item in inputs}
        chosen = [record for record in records if record.get("selected")]
        if not chosen:
            raise InputError("export: no slice is selected; run 'Sample' first")
        os.makedirs(folder, exist_ok=True)

        def items():
            for number, record in enumerate(chosen):
                item = byVolume[record["source"]]
                image = item.voxelsU8.take(record["slice_index"], axis=record["axis"])
                mask = item.labelmap.take(record["slice_index"], axis=record["axis"]) == record["label"]
                yield record, image, mask
                if progress is not None:
                    progress(number + 1, len(chosen))

        partial = os.path.join(folder, "training_set.partial")
        if os.path.exists(partial):
            shutil.rmtree(partial)
        write_training_set(partial, items())
        final = os.path.join(folder, "training_set")
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(partial, final)
        write_csv(Path(folder) / "manifest.csv", MANIFEST_COLUMNS, records)
        write_csv(Path(folder) / "rejects.csv", REJECT_COLUMNS, reject_rows(records, config))
        write_text_atomic(Path(folder) / "config.json", json.dumps(config.to_dict(), indent=2))
        return final


# ---------------------------------------------------------------------------------------------
class SegMoTECurationWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegMoTECuration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SegMoTECurationLogic()
        self.pairs: list[tuple[str, str]] = []
        self.inputs: list[CurationInput] = []
        self.records: list[dict] = []
        self.tableNode = None
        self.chartNode = None
        self.feedback = None

        for name in ORIENTATIONS:
            self.ui.orientationComboBox.addItem(name)
        for name in MODALITIES:
            self.ui.modalityComboBox.addItem(name)
        try:  # SegMoTELib.curation needs scipy; the panel must build without it
            from SegMoTELib.curation.sampler import CLASS_FIELDS
        except ImportError as error:
            CLASS_FIELDS = ("label",)
            self.setStatus(f"Curation is unavailable until the dependencies are installed ({error}): "
                           "open the SegMoTE module and click 'Install dependencies'.")
        for name in CLASS_FIELDS:
            self.ui.classByComboBox.addItem(name)
        self.ui.classByComboBox.setCurrentText("label")
        self.ui.addPairButton.connect("clicked(bool)", self.onAddPair)
        self.ui.removePairButton.connect("clicked(bool)", self.onRemovePair)
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        self.ui.sampleButton.connect("clicked(bool)", self.onSample)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.showInViewsButton.connect("clicked(bool)", self.onShowInViews)
        self.ui.resultsTableWidget.connect("cellClicked(int,int)", self.onRowClicked)
        self.layout.addStretch(1)

    def setStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text

    # --- inputs ----------------------------------------------------------------------------------
    def onAddPair(self) -> None:
        volumeNode = self.ui.volumeSelector.currentNode()
        labelsNode = self.ui.labelsSelector.currentNode()
        if volumeNode is None or labelsNode is None:
            self.setStatus("Choose a volume and its segmentation or label map, then click Add.")
            return
        self.pairs.append((volumeNode.GetID(), labelsNode.GetID()))
        self.ui.pairsListWidget.addItem(f"{volumeNode.GetName()}  ←  {labelsNode.GetName()}")

    def onRemovePair(self) -> None:
        row = self.ui.pairsListWidget.currentRow
        if 0 <= row < len(self.pairs):
            self.pairs.pop(row)
            self.ui.pairsListWidget.takeItem(row)

    def nodePairs(self) -> list:
        return [(slicer.mrmlScene.GetNodeByID(volumeId), slicer.mrmlScene.GetNodeByID(labelsId))
                for volumeId, labelsId in self.pairs]

    def classBy(self) -> tuple:
        return (self.ui.classByComboBox.currentText,)

    # --- runs ------------------------------------------------------------------------------------
    def runInBackground(self, function, title: str, onDone) -> None:
        if self.feedback is not None:
            self.setStatus("Busy: wait for the current run or cancel it.")
            return

        def finished(result):
            self.feedback.close()
            self.feedback = None
            onDone(result)

        def failed(error):
            self.feedback.close()
            self.feedback = None
            self.setStatus(describeError(error))

        job = backgroundWorker().submit(function, title, BATCH, onDone=finished, onError=failed)
        self.feedback = BusyFeedback(job, title)

    def onRun(self) -> None:
        try:
            inputs = self.logic.inputs(self.nodePairs(), self.ui.orientationComboBox.currentText,
                                       self.ui.modalityComboBox.currentText)
        except InputError as error:
            self.setStatus(str(error))
            return

        def done(records):
            self.inputs, self.records = inputs, records
            self.showRecords()
            passed = sum(1 for record in records if record.get("passed"))
            self.setStatus(f"{len(records)} slices measured, {passed} pass the gates.")

        self.runInBackground(lambda job: self.logic.measure(inputs, progress=job.reportProgress),
                             "Measuring slices...", done)

    def onSample(self) -> None:
        if not self.records:
            self.setStatus("Run the QC first.")
            return
        try:
            selected = self.logic.sample(self.records, self.ui.targetSpinBox.value, self.classBy(),
                                         self.ui.seedSpinBox.value)
        except InputError as error:
            self.setStatus(str(error))
            return
        self.showRecords()
        self.setStatus(f"{len(selected)} slices selected.")

    def onExport(self) -> None:
        folder = self.ui.exportPathLineEdit.currentPath
        if not folder:
            self.setStatus("Choose an output folder.")
            return
        inputs, records = self.inputs, self.records

        def done(path):
            self.setStatus(f"Curated training set written to {path}.")

        self.runInBackground(lambda job: self.logic.export(inputs, records, folder, progress=job.reportProgress),
                             "Exporting the curated set...", done)

    # --- results ---------------------------------------------------------------------------------
    def showRecords(self) -> None:
        self.tableNode = self.logic.showRecords(self.records, self.tableNode)
        self.chartNode = self.logic.plotScores(self.records, self.classBy(), self.chartNode)
        columns = ("case", "slice_index", "label_name", "passed", "score", "selected", "failures")
        widget = self.ui.resultsTableWidget
        widget.clear()
        widget.setColumnCount(len(columns))
        widget.setHorizontalHeaderLabels(list(columns))
        widget.setRowCount(len(self.records))
        for row, record in enumerate(self.records):
            for column, name in enumerate(columns):
                value = record.get(name)
                text = f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))
                widget.setItem(row, column, qt.QTableWidgetItem(text))

    def onRowClicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self.records):
            record = self.records[row]
            volumeNode = slicer.mrmlScene.GetNodeByID(record["source"])
            if volumeNode is not None:
                jumpToRecord(record, volumeNode)

    def onShowInViews(self) -> None:
        if self.tableNode is not None and self.chartNode is not None:
            showInLayout(self.tableNode, self.chartNode)


# ---------------------------------------------------------------------------------------------
class SegMoTECurationTest(ScriptedLoadableModuleTest):
    """The full curation self-test (loaded volume + segmentation) is Testing/Python/SegMoTECurationSelfTest.py."""

    def runTest(self):
        self.test_logic_refuses_empty_inputs()

    def test_logic_refuses_empty_inputs(self):
        with self.assertRaises(InputError):
            SegMoTECurationLogic().inputs([])
