"""Cohort segmentation: one prompt per study over a table of studies (`segmote batch`).

`table.py` reads the cohort CSV, `row_prompt.py` parses a row's prompt, `study.py` segments one study
and writes its `.seg.nrrd`, `runner.py` runs the rows on an engine (`local.py`: one predictor in this
process; `ray_actors.py`: a pool of Ray actors, one predictor each) and writes `failures.csv`.
"""

from .row_prompt import RowPrompt, parse_prompt
from .runner import run_cohort
from .table import CohortRow, read_cohort

__all__ = ["CohortRow", "RowPrompt", "parse_prompt", "read_cohort", "run_cohort"]
