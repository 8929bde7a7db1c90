"""Slicer-side helpers shared by the SegMoTE modules and the Segment Editor effect.

They convert MRML nodes and Qt widgets to the numpy arrays and 4x4 matrices that SegMoTELib takes,
reach the engine (`engine.py`: another process, through Qt's asynchronous HTTP on the main thread),
run curation metrics on one worker thread, and keep the settings. Geometry and prompt mapping are
SegMoTELib's: nothing here does coordinate arithmetic. Importing this package never imports torch;
it makes `SegMoTELib` importable (built extension or source checkout).
"""

from .enginepath import ensureEngineImportable

ensureEngineImportable()
