"""MedSeg-HQ curation: quality metrics, gates, score, sampler, pipeline (no Slicer, no torch).

See docs/CURATION.md for the method and every `--config` field; `metrics.py` documents border conventions, `sampler.py` the
sampling, `pipeline.py` the output folder, `export.py` the training-set layout.
"""

from .config import QCConfig
from .export import write_training_set
from .gates import GATE_NAMES, evaluate_gates, quality_score
from .metrics import METRIC_NAMES, metrics_batch, slice_metrics
from .pipeline import run_curation
from .records import records_from_volume
from .sampler import CurationWarning, sample_records

__all__ = [
    "GATE_NAMES",
    "METRIC_NAMES",
    "CurationWarning",
    "QCConfig",
    "evaluate_gates",
    "metrics_batch",
    "quality_score",
    "records_from_volume",
    "run_curation",
    "sample_records",
    "slice_metrics",
    "write_training_set",
]
