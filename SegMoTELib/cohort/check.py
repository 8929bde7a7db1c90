"""Every row checked against its image before any model work: `segmote batch --check`, and the
first step of every run.

Per study, the image is opened once for its geometry only (`io.read_volume_geometry`: the header
and the integrity checks, no voxel decoding where the format allows), then each row's prompt is
placed in it (`RowPrompt.in_volume`): a missing or unreadable file, a prompt outside the volume or
without area, clicks on two slices. Seconds for a cohort, where segmenting it takes minutes.
"""

from __future__ import annotations

from ..errors import SegMoTEError
from .table import CohortRow, RowProblem


def problem_of(row: CohortRow, error) -> RowProblem:
    return RowProblem(row.line, row.image, row.prompt_text, row.name, row.study, str(error))


def check_rows(rows: list[CohortRow]) -> list[RowProblem]:
    """The problems of `rows`, in table order (an empty list: every row can run)."""
    from ..io.volumes import read_volume_geometry

    geometries: dict[str, object] = {}
    problems = []
    for row in rows:
        try:
            if row.path not in geometries:
                try:
                    geometries[row.path] = read_volume_geometry(row.path)
                except SegMoTEError as error:
                    geometries[row.path] = error
            geometry = geometries[row.path]
            if isinstance(geometry, SegMoTEError):
                raise geometry
            if geometry.rgb or geometry.array.shape[0] == 1:
                raise SegMoTEError(f"{row.path}: a 2D image; a cohort row segments a volume "
                                   f"(use `segmote segment` with pixel prompts for 2D images)")
            row.prompt.in_volume(geometry)
        except SegMoTEError as error:
            problems.append(problem_of(row, error))
    return problems
