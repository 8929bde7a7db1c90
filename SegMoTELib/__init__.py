"""SegMoTE engine: token-level Mixture-of-Experts adaptation of SAM for medical image segmentation.

Importing this package is cheap: torch and the models load only when a predictor is built, so the
Slicer glue can import it at module discovery time.
"""

from .errors import SegMoTEError

__version__ = "0.1.0"

__all__ = ["SegMoTEError", "__version__"]
