"""One client's volume on the server: its segmenter, its slice results, its jobs.

A session is reachable only through its unguessable id; nothing lists sessions, so one client
cannot reach another's volume or masks. Slice results are kept (a bounded number) under ids, so
a refinement names the result whose logits go along and a propagation names its seed; the
logits never travel.
"""

from __future__ import annotations

import copy
import math
import secrets
import threading
import time
from collections import OrderedDict

import numpy as np

from ..errors import InputError
from ..geometry import (
    SliceRef,
    extract_slice,
    ijk_box_corners_ras,
    insert_slice,
    prompt_on_slice,
    prompt_slice,
    slice_axis_for,
    slice_count,
    slice_extent_of_box,
    slice_through,
)
from ..volume import Volume
from ..walk_rules import PropagationRules
from .codec import MaskBlock, decode_mask, encode_mask
from .device_queue import BATCH, INTERACTIVE, PREFETCH
from .jobs import Job
from .refusal import Refusal


NEIGHBOUR_OFFSETS = (1, -1)  # slices embedded in the background around the one a user looks at


class Session:
    def __init__(self, host, shape: list[int], mapping, max_results: int, job_seconds: float | None = None):
        self.id = secrets.token_urlsafe(16)
        self.host = host
        self.shape = list(shape)
        self.mapping = mapping
        self.keys: set = set()  # content keys of the embeddings this session used
        self.segmenter = None   # VolumeSegmenter, once the voxels are in
        self.last_used = time.monotonic()
        self._results: OrderedDict[str, object] = OrderedDict()
        self._max_results = max_results
        self._job_seconds = job_seconds  # a job's time budget (None: none)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()  # one interactive call of this session at a time
        self._prefetch_serial = 0

    # --- lifetime ------------------------------------------------------------------------------
    def touch(self) -> None:
        self.last_used = time.monotonic()

    @property
    def ready(self) -> bool:
        return self.segmenter is not None

    @property
    def busy(self) -> bool:
        """A job runs or a call is being computed: not idle, whatever the clock says."""
        return self._lock.locked() or any(job.running for job in self._jobs.values())

    def attach(self, volume) -> None:
        from ..segment3d import VolumeSegmenter

        predictor = self.host.session_predictor(self.keys, INTERACTIVE)
        self.segmenter = VolumeSegmenter(predictor, volume, self.mapping)

    def close(self) -> None:
        for job in self._jobs.values():
            job.cancel()
        self.segmenter = None
        self._results.clear()

    def describe(self, idle_limit: float, upload: str | None = None) -> dict:
        """`upload`: how much of a volume sent in slabs has arrived ("12 of 300 slices received")."""
        return {"session_id": self.id, "state": "ready" if self.ready else "awaiting_voxels", "shape": self.shape,
                "idle_limit_s": idle_limit, "upload": None if self.ready else upload}

    def _require_ready(self):
        segmenter = self.segmenter
        if segmenter is None:
            raise Refusal(409, f"session {self.id}: upload the voxels first (PUT /v1/sessions/{self.id}/voxels)")
        return segmenter

    def _segmenter_with(self, priority: int):
        """A segmenter of this volume on its own predictor view (a job runs beside the clicks)."""
        segmenter = copy.copy(self._require_ready())
        segmenter.predictor = self.host.session_predictor(self.keys, priority)
        return segmenter

    # --- slices --------------------------------------------------------------------------------
    def segment_slice(self, request) -> dict:
        """A `schemas.SliceRequest`: the prompt value, with an earlier result's logits or a seed mask."""
        segmenter = self._require_ready()
        mask_input, slice_index = None, request.slice_index
        if request.previous_result is not None:
            previous = self.result(request.previous_result)
            mask_input = previous.low_res_logits
            if slice_index is None and request.slice_prompt().anchor() is None:
                slice_index = previous.ref.index
        seed = None if request.seed_mask is None else self._seed_mask(request.seed_mask)
        prompt = request.slice_prompt(seed_mask=seed, mask_input=mask_input)
        with self._lock:
            result = segmenter.segment_slice(prompt, _orientation(request.orientation), slice_index=slice_index)
        self.touch()
        self._embed_neighbours(segmenter, result.ref)
        return self._keep(result)

    def _embed_neighbours(self, segmenter, ref: SliceRef) -> None:
        """While the user looks at slice `ref`, embed the slices one step either way at the lowest
        priority (CPU runtime), so scrolling one slice and clicking costs no embedding."""
        if not self.host.embeds_in_background:
            return
        count = slice_count(segmenter.volume, ref.axis)
        indices = [index for index in (ref.index + offset for offset in NEIGHBOUR_OFFSETS) if 0 <= index < count]
        self.host.embed_in_background(lambda: [segmenter.slice_image(SliceRef(ref.axis, i)) for i in indices],
                                      self.keys)

    def _seed_mask(self, seed) -> np.ndarray:
        """The decoded seed mask; a shape no slice of this volume can have is refused before decoding."""
        if max(seed.shape) > max(self.shape[:3]):
            raise InputError(f"seed_mask: shape {list(seed.shape)} is larger than any slice of this volume "
                             f"({self.shape[:3]})")
        return decode_mask({"extent": seed.extent, "bits": seed.bits}, tuple(seed.shape))

    def segment_auto(self, request) -> dict:
        segmenter = self._require_ready()
        orientation = _orientation(request.orientation)
        index = request.slice_index
        if index is None:
            index = slice_count(segmenter.volume, slice_axis_for(segmenter.volume, orientation)) // 2
        with self._lock:
            result = segmenter.segment_auto(orientation, index)
        self.touch()
        return self._keep(result)

    def result(self, result_id: str):
        result = self._results.get(result_id)
        if result is None:
            raise Refusal(404, f"result {result_id}: unknown in this session (only the last "
                               f"{self._max_results} slice results are kept); seed it again from its mask "
                               f"(POST /v1/sessions/{self.id}/results)", code="unknown_result")
        return result

    def seed(self, request) -> dict:
        """A slice result made from a mask the client holds: its low-res logits are the mask's, its
        score 1 (the user's own mask). A forgotten result comes back this way, under a new id."""
        from ..preprocessing import mask_to_low_res_logits
        from ..segment3d import SliceResult

        segmenter = self._require_ready()
        volume = segmenter.volume
        count = slice_count(volume, request.axis)
        if request.index >= count:
            raise InputError(f"index: expected 0..{count - 1} along axis {request.axis}, got {request.index}")
        thin_shape = list(volume.array.shape[:3])
        thin_shape[2 - request.axis] = 1
        extent = request.mask.extent
        if extent is not None:
            extent = [list(span) for span in extent]
            if extent[2 - request.axis] != [request.index, request.index]:
                raise InputError(f"mask: expected a mask on slice {request.index} of axis {request.axis} only")
            extent[2 - request.axis] = [0, 0]
        block = MaskBlock.decode({"extent": extent, "bits": request.mask.bits}, tuple(thin_shape))
        thin = Volume(block.to_array(), volume.origin_lps, volume.spacing, volume.direction_lps)
        mask2d = extract_slice(thin, SliceRef(request.axis, 0))  # slice 0 of the copy is laid out like `index`
        ref = SliceRef(request.axis, request.index)
        result = SliceResult(ref, mask2d, 1.0, mask_to_low_res_logits(mask2d), volume,
                             decoder="seed")
        self.touch()
        return self._keep(result)

    def _keep(self, result) -> dict:
        result_id = secrets.token_urlsafe(9)
        self._results[result_id] = result
        while len(self._results) > self._max_results:
            self._results.popitem(last=False)
        return {"result_id": result_id, "axis": result.ref.axis, "index": result.ref.index,
                "score": float(result.score), "decoder": result.decoder, "area": result.area,
                "mask": slice_mask(result)}

    def prefetch(self, request, executor) -> None:
        """Embed a slice in the background at PREFETCH priority; a newer prefetch supersedes it."""
        segmenter = self._require_ready()
        orientation = _orientation(request.orientation)
        if request.slice_index is not None:
            ref = SliceRef(slice_axis_for(segmenter.volume, orientation), request.slice_index)
        else:
            ref = slice_through(segmenter.volume, orientation, request.point_ras)
        image = segmenter.slice_image(ref)  # checks the index now, so a bad request fails here
        self._prefetch_serial += 1
        serial = self._prefetch_serial
        predictor = self.host.session_predictor(self.keys, PREFETCH)

        def embed():
            if serial == self._prefetch_serial and self.segmenter is not None:
                predictor.prefetch(image)
                self._embed_neighbours(segmenter, ref)

        executor.submit(embed)

    # --- jobs ----------------------------------------------------------------------------------
    def _rules(self, segmenter, request_rules) -> PropagationRules:
        return PropagationRules.for_predictor(segmenter.predictor, **request_rules.given())

    def propagate(self, request) -> dict:
        seed = self.result(request.seed_result)
        segmenter = self._segmenter_with(BATCH)
        rules = self._rules(segmenter, request.rules)

        def work(progress):
            try:
                labelmap = segmenter.propagate(seed, slice_range=request.slice_range, rules=rules, progress=progress)
                return labelmap, segmenter.last_stops, None
            finally:  # the seed's full-volume labelmap (cached on first use) must not stay with the kept result
                seed.__dict__.pop("labelmap", None)

        if request.slice_range is not None:  # a bad range fails now, not in the job
            segmenter._checked_range(seed.ref, request.slice_range)  # noqa: SLF001
        return self._start(Job(self._on_device(work), "propagation"))

    def segment_box3d(self, request) -> dict:
        segmenter = self._segmenter_with(BATCH)
        if request.corners_ijk is not None:
            corners = ijk_box_corners_ras(segmenter.volume, *request.corners_ijk)
        else:
            corners = np.asarray(request.corners_ras, dtype=np.float64)
        orientation = _orientation(request.orientation)
        rules = self._rules(segmenter, request.rules)
        axis = slice_axis_for(segmenter.volume, orientation)
        slice_extent_of_box(segmenter.volume, axis, corners)  # a box outside the volume fails now

        def work(progress):
            labelmap = segmenter.segment_box3d(corners, orientation, progress=progress, rules=rules)
            return labelmap, segmenter.last_stops, None

        return self._start(Job(self._on_device(work), "3D box"))

    def correct(self, request) -> dict:
        segmenter = self._segmenter_with(BATCH)
        segment = decode_mask(request.segment.model_dump(), tuple(segmenter.volume.array.shape[:3]))
        prompt = request.slice_prompt()
        orientation = _orientation(request.orientation)
        rules = self._rules(segmenter, request.rules)
        prompt_on_slice(segmenter.volume, prompt_slice(segmenter.volume, orientation, prompt, request.slice_index),
                        prompt)  # a bad prompt fails now, not in the job

        def work(progress):
            correction = segmenter.correct(segment, prompt, orientation, request.slice_index, rules, progress,
                                           request.agreement)
            return correction.labelmap, correction.stops, correction.changed, correction.slice_ref

        return self._start(Job(self._on_device(work), "correction"))

    def _on_device(self, work):
        """A job's work runs on the device thread as one BATCH call: its model calls need no thread
        hand-over, and each first lets the clicks queued meanwhile run (see device_queue). A job
        that outlasts its time budget stops at its next slice (`--request-budget`)."""
        queue = self.host.device_queue
        budget = self._job_seconds

        def run(progress):
            started = time.monotonic()

            def budgeted(done, total):
                if budget is not None and time.monotonic() - started > budget:
                    raise InputError(f"stopped after {budget:g} s: the time budget of one request on this server "
                                     f"(--request-budget); use a slice range or a smaller volume")
                progress(done, total)

            return queue.run(BATCH, lambda: work(budgeted))

        return run

    def _start(self, job: Job) -> dict:
        if any(old.running for old in self._jobs.values()):
            raise Refusal(409, f"session {self.id}: a propagation is still running; wait for it or cancel it")
        self._jobs = {key: old for key, old in self._jobs.items() if old.running}
        self._jobs[job.id] = job.start()
        return job.describe()

    def job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise Refusal(404, f"job {job_id}: unknown in this session")
        return job


def _orientation(value):
    return value if isinstance(value, str) else np.asarray(value, dtype=np.float64)


def slice_mask(result) -> dict:
    """The slice mask as a compact labelmap block in the volume's [k, j, i] (no full-volume array)."""
    volume = result.geometry
    thin_shape = list(volume.array.shape[:3])
    thin_shape[2 - result.ref.axis] = 1  # voxel axis a is array dimension 2 - a
    thin = Volume(np.zeros(thin_shape, dtype=bool), volume.origin_lps, volume.spacing, volume.direction_lps)
    # the display layout depends on the direction and the in-plane sizes only, so slice 0 of the
    # one-slice copy is laid out like slice `index` of the volume
    block = insert_slice(np.zeros(thin_shape, dtype=bool), SliceRef(result.ref.axis, 0), result.mask2d,
                         geometry=thin)
    encoded = encode_mask(block)
    if encoded["extent"] is not None:
        encoded["extent"][2 - result.ref.axis] = [result.ref.index, result.ref.index]
    return encoded


def check_volume_shape(shape: list[int], rgb: bool, max_voxels: int | None,
                       option_hint: str = "this server's limit") -> None:
    voxels = math.prod(int(size) for size in shape[:3])  # Python integers: no overflow past 2**63
    if rgb != (len(shape) == 4) or (rgb and (shape[0] != 1 or shape[3] != 3)):
        raise InputError(f"volume.shape: expected [k, j, i] or, for RGB, [1, H, W, 3]; got {shape}")
    if max_voxels is not None and voxels > max_voxels:
        raise Refusal(413, f"volume: {voxels} voxels exceed {option_hint} of {max_voxels}")
