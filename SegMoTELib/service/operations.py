"""The engine service's calls, written once as steps that any transport can carry out.

Each operation is a generator: it yields a `Request`, receives the server's decoded answer (or has
the error thrown into it), and returns its result. `run_blocking` carries one out over the
blocking client (`client.py`: the CLI and scripts); `qt_client.QtRunner` carries the same ones out
on Qt's asynchronous HTTP, on Slicer's main thread, with no Python thread waiting for the GIL.
So the upload in slabs, the job polling with its cancel, and the seeding again of a result the
server forgot are the same code on both.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SegMoTEError
from ..geometry import SliceRef
from ..slice_prompt import SlicePrompt
from .codec import MaskBlock, decode_mask, encode_mask, slab_slices, voxel_slabs
from .wire import (
    EngineError,
    ResultUnknown,
    check_path,
    index_body,
    mapping_body,
    orientation_body,
    points_body,
    rules_body,
    slice_body,
    volume_spec,
)

JOB_POLL_S = 0.25  # a job poll returns at once when the job ends, else after this long with the progress


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: object = None  # JSON-able, or bytes
    what: str = "the request"
    read_timeout: float | None = None  # None: the transport's default for model work


def run_blocking(request, operation):
    """Carry `operation` out with `request(Request) -> decoded answer` (which raises SegMoTE errors)."""
    answer, error = None, None
    while True:
        try:
            step = operation.send(answer) if error is None else operation.throw(error)
        except StopIteration as stop:
            return stop.value
        answer, error = None, None
        try:
            answer = request(step)
        except BaseException as failure:  # noqa: BLE001  handed to the operation (a job is cancelled there)
            error = failure


def awaited(value):
    """Inside an operation, the outcome of a step: `result = yield from awaited(x)` carries out `x`
    when it is an operation (the engine's segmenter) and passes it on when it is already a value
    (an in-process VolumeSegmenter), so one compute step serves both."""
    if inspect.isgenerator(value):
        return (yield from value)
    return value


def run_in_process(operation):
    """Carry out an operation whose steps are all values (an in-process segmenter): no request."""
    def no_request(step):
        raise RuntimeError(f"an in-process computation sent a request: {step.method} {step.path}")

    return run_blocking(no_request, operation)


@dataclass(frozen=True)
class ServerLogits:
    """Stands for a slice result's low-res logits, which stay on the server."""

    result_id: str


@dataclass
class RemoteSliceResult:
    """A slice segmented by the server; its low-res logits stay there, named by `result_id`; its
    mask stays here (compact), so a forgotten result can be seeded again."""

    result_id: str
    ref: SliceRef
    score: float
    decoder: str
    area: int
    mask: dict = field(repr=False)
    shape: tuple = field(repr=False)
    volume: object = field(default=None, repr=False, compare=False)  # the Volume it was computed on

    @property
    def labelmap(self) -> np.ndarray:
        """bool [k, j, i]: the slice mask placed in the volume (a full-volume array: see `mask_block`)."""
        return decode_mask(self.mask, self.shape)

    def mask_block(self) -> MaskBlock:
        """The mask as its one-slice block: `paste_into(array)` writes it without a full-volume allocation."""
        return MaskBlock.decode(self.mask, self.shape)

    @property
    def low_res_logits(self) -> ServerLogits:
        """What `segment_slice(mask_input=...)` takes to refine this result (as with SliceResult)."""
        return ServerLogits(self.result_id)


# --- opening a session ---------------------------------------------------------------------------
def open_volume(volume, mapping=None, progress=None):
    """Upload a SegMoTELib `Volume` (compressed slab by slab, with its geometry); returns the session
    id. `progress(slices sent, slices)` after each slab. A failed upload closes the session."""
    spec, wire_dtype = volume_spec(volume)
    answer = yield Request("POST", "/v1/sessions", {"volume": spec, "mapping": mapping_body(mapping)},
                           "opening a session")
    session_id = answer["session_id"]
    count, step = volume.array.shape[0], slab_slices(volume.array.shape, wire_dtype.itemsize)
    try:
        for first, payload in voxel_slabs(volume.array, wire_dtype):
            yield Request("PUT", f"/v1/sessions/{session_id}/voxels?first_slice={first}", payload, "the volume upload")
            if progress is not None:
                progress(min(count, first + step), count)
    except GeneratorExit:
        raise
    except BaseException:
        yield from _quietly(Request("DELETE", f"/v1/sessions/{session_id}", None, "closing the session"))
        raise
    return session_id


def open_path(path, mapping=None):
    """A session on a volume file the server reads itself (under its --data-root); its id."""
    answer = yield Request("POST", "/v1/sessions", {"path": check_path(path), "mapping": mapping_body(mapping)},
                           "opening a session")
    return answer["session_id"]


def _quietly(request: Request):
    try:
        yield request
    except SegMoTEError:
        pass


# --- one session's calls -------------------------------------------------------------------------
class SessionCalls:
    """The `VolumeSegmenter` methods of one server session, as operations."""

    def __init__(self, session_id: str, volume):
        self.id, self.volume = session_id, volume
        self.shape = tuple(volume.array.shape[:3])
        self.path = f"/v1/sessions/{session_id}"
        self.last_stops: list = []  # where and why the last walk's directions ended (as VolumeSegmenter's)

    def close(self):
        yield Request("DELETE", self.path, None, "closing the session")

    def segment_slice(self, prompt: SlicePrompt, orientation="axial", slice_index: int | None = None):
        """The prompt value (`SlicePrompt`, RAS or IJK); its `mask_input` is an earlier result to refine
        (a RemoteSliceResult or its `low_res_logits`), its `seed_mask` a slice mask made elsewhere."""
        if not isinstance(prompt, SlicePrompt):
            raise InputError(f"prompt: expected a SlicePrompt, got {type(prompt).__name__}")
        mask_input = prompt.mask_input
        if mask_input is not None and not isinstance(mask_input, (RemoteSliceResult, ServerLogits)):
            raise InputError("mask_input: through the engine service, give the earlier slice result "
                             "(its logits stay on the server)")
        body = slice_body(prompt, orientation, slice_index)

        def send(previous_id):
            return Request("POST", self.path + "/slice", {**body, "previous_result": previous_id}, "the slice prompt")

        return self.slice_result((yield from self._reseeding(mask_input, send)))

    def seed_result(self, ref: SliceRef, mask: dict):
        """A server-side result made from a one-slice mask in the server's format (`RemoteSliceResult.mask`)."""
        body = {"axis": int(ref.axis), "index": int(ref.index), "mask": mask}
        return self.slice_result((yield Request("POST", self.path + "/results", body, "seeding a result from its mask")))

    def _reseeding(self, previous, request_for):
        """The answer to `request_for(id of previous or None)`; if the server forgot `previous`, it is
        seeded again from its mask (same volume only) and asked once more."""
        try:
            return (yield request_for(None if previous is None else previous.result_id))
        except ResultUnknown:
            if not isinstance(previous, RemoteSliceResult) or previous.volume is not self.volume:
                raise  # only its id is known here, or it belongs to another volume
        fresh = yield from self.seed_result(previous.ref, previous.mask)
        previous.result_id = fresh.result_id  # later calls name the live copy
        return (yield request_for(fresh.result_id))

    def segment_auto(self, orientation="axial", slice_index: int | None = None):
        body = {"orientation": orientation_body(orientation), "slice_index": index_body(slice_index)}
        return self.slice_result((yield Request("POST", self.path + "/auto", body, "the prompt-free slice")))

    def prefetch(self, orientation="axial", slice_index: int | None = None, point_ras=None):
        """Have the server embed a slice now (queued behind prompts), so the next prompt there is fast."""
        body = {"orientation": orientation_body(orientation), "slice_index": index_body(slice_index),
                "point_ras": None if point_ras is None else [float(v) for v in point_ras]}
        yield Request("POST", self.path + "/prefetch", body, "the prefetch")

    def slice_result(self, answer: dict) -> RemoteSliceResult:
        return RemoteSliceResult(answer["result_id"], SliceRef(answer["axis"], answer["index"]), answer["score"],
                                 answer["decoder"], answer["area"], answer["mask"], self.shape, self.volume)

    # --- 3D jobs -------------------------------------------------------------------------------
    def propagate(self, seed, slice_range=None, rules=None, progress=None):
        """`rules`: a walk_rules.PropagationRules (None: the server's defaults)."""
        if not isinstance(seed, RemoteSliceResult):
            raise InputError("seed: through the engine service, give a slice result of this session")
        body = {"rules": rules_body(rules),
                "slice_range": None if slice_range is None else [int(v) for v in slice_range]}

        def start(seed_id):
            return Request("POST", self.path + "/propagate", {**body, "seed_result": seed_id}, "the propagation")

        job = yield from self._reseeding(seed, start)
        return (yield from self._follow(job, progress, "the propagation"))

    def segment_box3d(self, corners_ras, orientation="auto", progress=None, rules=None):
        body = {"corners_ras": points_body(corners_ras), "orientation": orientation_body(orientation),
                "rules": rules_body(rules)}
        job = yield Request("POST", self.path + "/box3d", body, "the 3D box")
        return (yield from self._follow(job, progress, "the 3D box"))

    def correct(self, labelmap, prompt: SlicePrompt, orientation="auto", slice_index: int | None = None, rules=None,
                progress=None, agreement: float | None = None):
        """As VolumeSegmenter.correct: a `corrections.Correction` (the whole corrected segment, the slices
        re-segmented, where the re-walk ended)."""
        from ..corrections import DEFAULT_AGREEMENT, Correction

        if not isinstance(prompt, SlicePrompt):
            raise InputError(f"prompt: expected a SlicePrompt, got {type(prompt).__name__}")
        labelmap = np.asarray(labelmap, dtype=bool)
        if labelmap.shape != self.shape:
            raise InputError(f"labelmap: expected the segment as an array of shape {self.shape} [k, j, i], "
                             f"got {labelmap.shape}")
        body = {"segment": encode_mask(labelmap), **prompt.to_wire(), "orientation": orientation_body(orientation),
                "slice_index": index_body(slice_index), "rules": rules_body(rules),
                "agreement": float(DEFAULT_AGREEMENT if agreement is None else agreement)}
        job = yield Request("POST", self.path + "/correct", body, "the correction")
        corrected = yield from self._follow(job, progress, "the correction")
        finished = self._finished
        return Correction(corrected, SliceRef(*finished["corrected_slice"]), finished.get("changed") or [],
                          list(self.last_stops))

    def _follow(self, job: dict, progress, what: str):
        """Poll a job to its end; `progress(done, total)` may raise to cancel it (so may the transport)."""
        jobs = f"{self.path}/jobs/{job['job_id']}"
        try:
            while job["state"] == "running":
                if progress is not None and job["total"]:
                    progress(job["done"], job["total"])
                job = yield Request("GET", f"{jobs}?wait={JOB_POLL_S}", None, what)
        except GeneratorExit:
            raise
        except EngineError:
            raise  # the server is gone or refused: nothing to cancel there
        except BaseException:  # the caller cancelled (its progress raised) or was interrupted
            yield from _quietly(Request("DELETE", jobs, None, f"cancelling {what}"))
            raise
        if job["state"] == "failed":
            raise InputError(job["error"]) if not str(job["error"]).startswith("internal error") \
                else EngineError(job["error"])
        if job["state"] == "cancelled":
            raise EngineError(f"{what} was cancelled on the server")
        if progress is not None:
            progress(job["total"], job["total"])
        from ..walk_rules import WalkStop

        self.last_stops = [WalkStop(**stop) for stop in job.get("stops") or []]
        self._finished = job
        return decode_mask(job["mask"], self.shape)


def info():
    return (yield Request("GET", "/v1/info", None, "the info request", read_timeout=QUICK_READ_TIMEOUT_S))


QUICK_READ_TIMEOUT_S = 10.0  # health and info answer at once on a live engine
