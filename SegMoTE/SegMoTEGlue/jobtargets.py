"""Where a worker result may be written: the segment it was computed for, and nowhere else.

A prompt's mask comes back from the worker a moment later. By then the user may have selected
another segment or segmentation, or left the effect; writing the mask into whatever is selected
then would overwrite a segment the user never prompted. The effect records the target at
submission (`EditTarget`) and drops a result whose target is no longer the selected one
(`dropReason`), saying so in the status line. Plain Python (no Slicer) so it can be unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EditTarget:
    segmentationNodeId: str | None
    segmentId: str | None


def dropReason(submitted: EditTarget, current: EditTarget | None, effectActive: bool) -> str | None:
    """Why a result computed for `submitted` must not be written now; None when it may."""
    if not effectActive:
        return "the SegMoTE effect was deactivated before the result arrived"
    if current is None or current.segmentationNodeId != submitted.segmentationNodeId:
        return "the segmentation changed while the result was computed"
    if current.segmentId != submitted.segmentId:
        return "another segment was selected while the result was computed; prompt again on this one"
    return None


class PendingJobs:
    """The effect's jobs still on the worker, so that deactivating the effect cancels them."""

    def __init__(self):
        self._jobs: list = []

    def add(self, job) -> None:
        self._jobs.append(job)

    def done(self, job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)

    def cancelAll(self) -> int:
        """Cancel every pending job (`job.cancel()`); returns how many there were."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.cancel()
        return len(jobs)

    def __len__(self) -> int:
        return len(self._jobs)
