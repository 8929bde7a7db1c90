"""Make `SegMoTELib` importable from a built extension and from a source checkout.

A built extension installs `SegMoTELib/` inside qt-scripted-modules, which Slicer puts on
sys.path. A checkout added through "Additional module paths" (pointing at <checkout>/SegMoTE)
has the package one folder up, at <checkout>/SegMoTELib: that folder is added to sys.path.
"""

from __future__ import annotations

import importlib.util
import os
import sys

GLUE_DIR = os.path.dirname(os.path.abspath(__file__))
MODULES_DIR = os.path.dirname(GLUE_DIR)
CHECKOUT_ROOT = os.path.dirname(MODULES_DIR)


def ensureEngineImportable() -> bool:
    """True when `import SegMoTELib` will work; adds the checkout root to sys.path if needed."""
    if importlib.util.find_spec("SegMoTELib") is not None:
        return True
    if os.path.isfile(os.path.join(CHECKOUT_ROOT, "SegMoTELib", "__init__.py")):
        sys.path.insert(0, CHECKOUT_ROOT)
        importlib.invalidate_caches()
        return importlib.util.find_spec("SegMoTELib") is not None
    return False
