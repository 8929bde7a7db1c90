"""Hidden module that registers the "SegMoTE" effect in the Segment Editor.

The effect itself is SegmentEditorSegMoTELib/SegmentEditorEffect.py. Registration waits for
startupCompleted() so the Segment Editor's effect factory exists; nothing heavy is imported.
"""

from __future__ import annotations

import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

import SegMoTEGlue  # noqa: F401  (makes SegMoTELib importable from a source checkout)

EFFECT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SegmentEditorSegMoTELib",
                             "SegmentEditorEffect.py")


class SegmentEditorSegMoTE(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SegmentEditorSegMoTE"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["SegMoTE developers"]
        self.parent.hidden = True
        self.parent.helpText = "Registers the SegMoTE effect (clicks, boxes, prompt-free, 3D) in the Segment Editor."
        self.parent.acknowledgementText = (
            "SegMoTE builds on Segment Anything (Meta AI) and LiteMedSAM / MedSAM (Bo Wang lab); "
            "the effect follows the design of Slicer's own Segment Editor effects.")
        slicer.app.connect("startupCompleted()", registerEditorEffect)


def registerEditorEffect() -> None:
    instance = slicer.qSlicerSegmentEditorScriptedEffect(None)
    instance.setPythonSource(EFFECT_SOURCE.replace("\\", "/"))
    instance.self().register()


class SegmentEditorSegMoTETest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.test_effect_is_registered()

    def test_effect_is_registered(self):
        effectNames = slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects()
        self.assertIn("SegMoTE", [effect.name for effect in effectNames])
