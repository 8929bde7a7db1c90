"""The one client of the engine service, for Slicer, the CLI and scripts.

Only the standard library (http.client) and numpy: no torch, no httpx (Slicer's Python may lack
it). A `RemoteVolume` reads like `VolumeSegmenter` (segment_slice, segment_auto, propagate,
segment_box3d), so callers switch between in-process and remote work without other changes;
slice results keep their logits on the server and are named by id for refinement and propagation.

Errors are SegMoTE errors with one clear line: the engine's own message for a user mistake
(`InputError`), `EngineUnavailable` when the server cannot be reached (no connection within
`CONNECT_TIMEOUT_S`), drops the connection or sends no answer in time (the read timeout: short for
`info`/`health`, longer for model work), `NotAnEngine` when what answered is not a SegMoTE engine
(another web server, a wrong URL path: its page is never dumped), `EngineAuthError` for a refused
token, `SessionClosed` when the session is gone (idle limit). Bodies the server would refuse (NaN,
a token HTTP cannot carry, a file name with a NUL) are refused here, before anything is sent.

A slice result the server forgot (it keeps the last few per session; an idle or restarted engine
keeps none) is seeded again from the mask the client holds, and the call goes on (`_reseeding`).
The volume goes up in slabs compressed one at a time (`codec.voxel_slabs`): no copy of it is made.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SegMoTEError
from ..geometry import SliceRef
from .codec import MaskBlock, decode_mask, slab_slices, voxel_slabs
from .wire import (  # noqa: F401  (the errors are re-exported: callers import them from here)
    API_HEADER,
    TOKEN_ENV,
    EngineAuthError,
    EngineError,
    EngineUnavailable,
    NotAnEngine,
    ResultUnknown,
    SessionClosed,
    index_body,
    mapping_body,
    orientation_body,
    points_body,
    rules_body,
    answer_of,
    check_path,
    check_token,
    check_url,
    encode_body,
    slice_body,
    volume_spec,
)

JOB_POLL_S = 0.25  # a job poll returns at once when the job ends, else after this long with the progress
CONNECT_TIMEOUT_S = 5.0   # no TCP (and TLS) connection by then: the server is down or unreachable
QUICK_READ_TIMEOUT_S = 10.0  # health and info answer at once on a live engine
READ_TIMEOUT_S = 300.0    # model work: a first embedding on a slow CPU, an upload's slab


class _Connection(http.client.HTTPConnection):
    """A keep-alive connection whose connect has its own (short) timeout; reads have another."""

    def __init__(self, host, port, connect_timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=connect_timeout)
        self.read_timeout = read_timeout

    def connect(self):
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TLSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, connect_timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=connect_timeout, context=ssl.create_default_context())
        self.read_timeout = read_timeout

    def connect(self):
        super().connect()  # TCP and the TLS handshake within the connect timeout
        self.sock.settimeout(self.read_timeout)


class EngineClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = READ_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S):
        """`timeout`: how long model work may take to answer; `connect_timeout`: how long to wait
        for a connection (a server that is down or unreachable fails within it)."""
        parsed = check_url(url)
        token = check_token(token)
        self.url = str(url).strip().rstrip("/")
        self._https = parsed.scheme == "https"
        self._host, self._port = parsed.hostname, parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self._local = threading.local()  # one keep-alive connection per thread

    # --- transport -----------------------------------------------------------------------------
    def _connection(self, fresh: bool):
        connection = getattr(self._local, "connection", None)
        if connection is not None and not fresh:
            return connection, True
        if connection is not None:
            connection.close()
        kind = _TLSConnection if self._https else _Connection
        connection = kind(self._host, self._port, self.connect_timeout, self.timeout)
        self._local.connection = connection
        return connection, False

    def request(self, method: str, path: str, body=None, what: str = "the request", read_timeout: float | None = None):
        """(status, decoded JSON or None); raises EngineUnavailable when no answer comes.
        `read_timeout`: how long to wait for the answer once connected (default: `timeout`)."""
        headers = dict(self._headers)
        payload = encode_body(body)
        if isinstance(body, (bytes, bytearray, memoryview)):
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            headers["Content-Type"] = "application/json"
        wait = self.timeout if read_timeout is None else float(read_timeout)
        for attempt in range(2):
            connection, reused = self._connection(fresh=attempt > 0)
            connection.read_timeout = wait
            if connection.sock is not None:
                connection.sock.settimeout(wait)
            try:
                # a memoryview, so that http.client sends the bytes as they are instead of joining a
                # copy of them to the headers
                body_view = memoryview(payload) if payload is not None else None
                connection.request(method, self._prefix + path, body=body_view, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.close()  # this thread's connection is `connection`
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: one fresh try
                raise EngineUnavailable(f"engine at {self.url} dropped the connection during {what} "
                                        f"({type(error).__name__}); is the server still running?") from None
            except ssl.SSLCertVerificationError as error:
                self.close()  # this thread's connection is `connection`
                raise EngineUnavailable(f"engine at {self.url}: its TLS certificate is not trusted ({error.verify_message}); "
                                        f"for a private CA set SSL_CERT_FILE to its certificate") from None
            except (OSError, http.client.HTTPException) as error:
                connected = connection.sock is not None
                self.close()  # this thread's connection is `connection`
                if isinstance(error, (socket.timeout, TimeoutError)) and connected:
                    raise EngineUnavailable(f"engine at {self.url} accepted the connection but sent no answer within "
                                            f"{wait:g} s during {what}; is it a SegMoTE engine, and is it "
                                            f"overloaded?") from None
                if isinstance(error, (socket.timeout, TimeoutError)):
                    raise EngineUnavailable(f"engine at {self.url}: no connection within {self.connect_timeout:g} s "
                                            f"during {what}; is the server running and reachable?") from None
                reason = getattr(error, "strerror", None) or type(error).__name__
                raise EngineUnavailable(f"engine at {self.url} is unreachable during {what} ({reason}); "
                                        f"is the server running?") from None
        return answer_of(response.status, response.reason, response.getheader(API_HEADER),
                         response.getheader("Content-Type"), data, self.url, what)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # --- engine --------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.request("GET", "/health", what="the health check", read_timeout=QUICK_READ_TIMEOUT_S)[1]

    def info(self) -> dict:
        return self.request("GET", "/v1/info", what="the info request", read_timeout=QUICK_READ_TIMEOUT_S)[1]

    def open_volume(self, volume, mapping=None, progress=None) -> RemoteVolume:
        """Upload a SegMoTELib `Volume` once (in compressed slabs, with its geometry); a session on it.
        `progress(slices sent, slices)` after each slab."""
        spec, wire_dtype = volume_spec(volume)
        _, session = self.request("POST", "/v1/sessions", {"volume": spec, "mapping": mapping_body(mapping)},
                                  what="opening a session")
        remote = RemoteVolume(self, session["session_id"], volume)
        try:
            count, step = volume.array.shape[0], slab_slices(volume.array.shape, wire_dtype.itemsize)
            for first, payload in voxel_slabs(volume.array, wire_dtype):
                self.request("PUT", f"/v1/sessions/{remote.id}/voxels?first_slice={first}", payload,
                             what="the volume upload")
                if progress is not None:
                    progress(min(count, first + step), count)
        except BaseException:
            remote.close(quiet=True)
            raise
        return remote

    def open_path(self, path: str, geometry, mapping=None) -> RemoteVolume:
        """A session on a volume file the server reads itself (it must be under its --data-root);
        `geometry`: the same volume read here (its geometry maps the results)."""
        _, session = self.request("POST", "/v1/sessions", {"path": check_path(path), "mapping": mapping_body(mapping)},
                                  what="opening a session")
        return RemoteVolume(self, session["session_id"], geometry)


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


class RemoteVolume:
    """A session on one volume: the `VolumeSegmenter` methods, computed by the server."""

    def __init__(self, client: EngineClient, session_id: str, volume):
        self.client, self.id, self.volume = client, session_id, volume
        self.shape = tuple(volume.array.shape[:3])
        self._path = f"/v1/sessions/{session_id}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(quiet=True)
        return False

    def close(self, quiet: bool = False) -> None:
        try:
            self.client.request("DELETE", self._path, what="closing the session")
        except SegMoTEError:
            if not quiet:
                raise

    # --- slices --------------------------------------------------------------------------------
    def segment_slice(self, orientation="axial", points_ras=None, labels=None, box_ras=None, mask_input=None,
                      slice_index: int | None = None) -> RemoteSliceResult:
        """As VolumeSegmenter.segment_slice; `mask_input`: an earlier RemoteSliceResult to refine
        (seeded again from its mask if the server forgot it), or its `low_res_logits`."""
        if mask_input is not None and not isinstance(mask_input, (RemoteSliceResult, ServerLogits)):
            raise InputError("mask_input: through the engine service, give the earlier slice result "
                             "(its logits stay on the server)")
        body = slice_body(orientation, points_ras, labels, box_ras, slice_index)

        def send(previous_id):
            body["previous_result"] = previous_id
            return self.client.request("POST", self._path + "/slice", body, what="the slice prompt")[1]

        answer = self._reseeding(mask_input, send)
        return self._slice_result(answer)

    def seed_result(self, ref: SliceRef, mask: dict) -> RemoteSliceResult:
        """A server-side result made from a one-slice mask in the server's format (`RemoteSliceResult.mask`)."""
        body = {"axis": int(ref.axis), "index": int(ref.index), "mask": mask}
        return self._slice_result(self.client.request("POST", self._path + "/results", body,
                                                      what="seeding a result from its mask")[1])

    def _reseeding(self, previous, send):
        """`send(result id of previous or None)`; once more with a new id if the server forgot it."""
        previous_id = None if previous is None else previous.result_id
        try:
            return send(previous_id)
        except ResultUnknown:
            if not isinstance(previous, RemoteSliceResult) or previous.volume is not self.volume:
                raise  # only its id is known here, or it belongs to another volume
            fresh = self.seed_result(previous.ref, previous.mask)
            previous.result_id = fresh.result_id  # later calls name the live copy
            return send(fresh.result_id)

    def segment_auto(self, orientation="axial", slice_index: int | None = None) -> RemoteSliceResult:
        body = {"orientation": orientation_body(orientation), "slice_index": index_body(slice_index)}
        return self._slice_result(self.client.request("POST", self._path + "/auto", body,
                                                      what="the prompt-free slice")[1])

    def prefetch(self, orientation="axial", slice_index: int | None = None, point_ras=None) -> None:
        """Have the server embed a slice now (queued behind prompts), so the next prompt there is fast."""
        body = {"orientation": orientation_body(orientation), "slice_index": index_body(slice_index),
                "point_ras": None if point_ras is None else [float(v) for v in point_ras]}
        self.client.request("POST", self._path + "/prefetch", body, what="the prefetch")

    def _slice_result(self, answer: dict) -> RemoteSliceResult:
        return RemoteSliceResult(answer["result_id"], SliceRef(answer["axis"], answer["index"]), answer["score"],
                                 answer["decoder"], answer["area"], answer["mask"], self.shape, self.volume)

    # --- 3D jobs -------------------------------------------------------------------------------
    def propagate(self, seed: RemoteSliceResult, slice_range=None, use_logits: bool = False, min_score: float = 0.5,
                  min_area_ratio: float = 0.2, progress=None, box_margin: float = 0.02,
                  max_intensity_shift: float | None = 40.0) -> np.ndarray:
        """As VolumeSegmenter.propagate; `progress(done, total)` may raise to cancel the job."""
        if not isinstance(seed, RemoteSliceResult):
            raise InputError("seed: through the engine service, give a slice result of this session")
        body = {"rules": rules_body(use_logits, min_score, min_area_ratio, box_margin, max_intensity_shift),
                "slice_range": None if slice_range is None else [int(v) for v in slice_range]}

        def start(seed_id):
            body["seed_result"] = seed_id
            return self.client.request("POST", self._path + "/propagate", body, what="the propagation")[1]

        return self._run_job(self._reseeding(seed, start), progress, "the propagation")

    def segment_box3d(self, corners_ras, orientation="axial", progress=None, use_logits: bool = False,
                      min_score: float = 0.5, min_area_ratio: float = 0.2, box_margin: float = 0.02,
                      max_intensity_shift: float | None = 40.0) -> np.ndarray:
        body = {"corners_ras": points_body(corners_ras), "orientation": orientation_body(orientation),
                "rules": rules_body(use_logits, min_score, min_area_ratio, box_margin, max_intensity_shift)}
        job = self.client.request("POST", self._path + "/box3d", body, what="the 3D box")[1]
        return self._run_job(job, progress, "the 3D box")

    def _run_job(self, job: dict, progress, what: str) -> np.ndarray:
        jobs = f"{self._path}/jobs/{job['job_id']}"
        try:
            while job["state"] == "running":
                if progress is not None and job["total"]:
                    progress(job["done"], job["total"])
                job = self.client.request("GET", f"{jobs}?wait={JOB_POLL_S}", what=what)[1]
        except EngineError:
            raise  # the server is gone or refused: nothing to cancel there
        except BaseException:  # the caller cancelled (its progress raised) or was interrupted
            try:
                self.client.request("DELETE", jobs, what=f"cancelling {what}")
            except SegMoTEError:
                pass
            raise
        if job["state"] == "failed":
            raise InputError(job["error"]) if not str(job["error"]).startswith("internal error") \
                else EngineError(job["error"])
        if job["state"] == "cancelled":
            raise EngineError(f"{what} was cancelled on the server")
        if progress is not None:
            progress(job["total"], job["total"])
        return decode_mask(job["mask"], self.shape)
