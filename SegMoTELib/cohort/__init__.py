"""Cohort segmentation: one structure per row over a table of studies (`segmote batch`).

`table.py` reads the cohort CSV, `row_prompt.py` parses a row's prompt, `check.py` checks every row
against its image without the model, `study.py` segments a study's rows and writes its one
`.seg.nrrd`, `runner.py` runs the studies on an engine (`local.py`: one predictor in this process;
`ray_actors.py`: a pool of Ray actors, one predictor each) and writes `failures.csv`.
"""

from .row_prompt import RowPrompt, parse_prompt
from .runner import run_cohort
from .table import CohortRow, CohortTable, RowProblem, read_cohort

__all__ = ["CohortRow", "CohortTable", "RowProblem", "RowPrompt", "parse_prompt", "read_cohort", "run_cohort"]
