"""The SegMoTE Segment Editor effect (loaded by SegmentEditorSegMoTE through setPythonSource)."""
