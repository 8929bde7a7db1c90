"""The one client of the engine service, for Slicer, the CLI and scripts.

Only the standard library (http.client) and numpy: no torch, no httpx (Slicer's Python may lack
it). A `RemoteVolume` reads like `VolumeSegmenter` (segment_slice, segment_auto, propagate,
segment_box3d), so callers switch between in-process and remote work without other changes;
slice results keep their logits on the server and are named by id for refinement and propagation.

Errors are SegMoTE errors with one clear line: the engine's own message for a user mistake
(`InputError`), `EngineUnavailable` when the server cannot be reached or drops the connection,
`EngineAuthError` for a refused token, `SessionClosed` when the session is gone (idle limit).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SegMoTEError
from ..geometry import SliceRef
from .codec import VOXEL_DTYPES, decode_mask, encode_mask, encode_voxels

TOKEN_ENV = "SEGMOTE_TOKEN"
JOB_POLL_S = 0.25  # a job poll returns at once when the job ends, else after this long with the progress


class EngineError(SegMoTEError):
    """The engine service failed or refused in a way that is not a mistake in the prompt."""


class EngineUnavailable(EngineError):
    """The server cannot be reached, or dropped the connection (stopped, crashed, network)."""


class EngineAuthError(EngineError):
    """The server refused the bearer token."""


class SessionClosed(EngineError):
    """The session is gone on the server (closed after the idle limit, or by the server stopping)."""


class EngineClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 600.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InputError(f"server: expected a URL like http://127.0.0.1:8765, got {url!r}")
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        if not token.strip():
            raise InputError(f"token: set the {TOKEN_ENV} environment variable to the server's token")
        self.url = url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host, self._port = parsed.hostname, parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token.strip()}"}
        self.timeout = float(timeout)
        self._local = threading.local()  # one keep-alive connection per thread

    # --- transport -----------------------------------------------------------------------------
    def _connection(self, fresh: bool):
        connection = getattr(self._local, "connection", None)
        if connection is not None and not fresh:
            return connection, True
        if connection is not None:
            connection.close()
        if self._https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                     context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        self._local.connection = connection
        return connection, False

    def request(self, method: str, path: str, body=None, what: str = "the request"):
        """(status, decoded JSON or None); raises EngineUnavailable when no answer comes."""
        headers = dict(self._headers)
        if isinstance(body, (bytes, bytearray)):
            headers["Content-Type"] = "application/octet-stream"
            payload = bytes(body)
        elif body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode()
        else:
            payload = None
        for attempt in range(2):
            connection, reused = self._connection(fresh=attempt > 0)
            try:
                connection.request(method, self._prefix + path, body=payload, headers=headers)
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
                self.close()  # this thread's connection is `connection`
                reason = "timed out" if isinstance(error, (socket.timeout, TimeoutError)) else \
                    (getattr(error, "strerror", None) or type(error).__name__)
                raise EngineUnavailable(f"engine at {self.url} is unreachable during {what} ({reason}); "
                                        f"is the server running?") from None
        decoded = None
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {"detail": data[:200].decode("utf-8", "replace")}
        if response.status >= 400:
            raise _error_for(response.status, decoded, self.url)
        return response.status, decoded

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # --- engine --------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.request("GET", "/health", what="the health check")[1]

    def info(self) -> dict:
        return self.request("GET", "/v1/info", what="the info request")[1]

    def open_volume(self, volume, mapping=None) -> RemoteVolume:
        """Upload a SegMoTELib `Volume` once (compressed, with its geometry); a session on it."""
        array = _wire_array(volume.array)
        spec = {"shape": list(array.shape), "dtype": str(array.dtype),
                "origin_lps": [float(v) for v in volume.origin_lps], "spacing": [float(v) for v in volume.spacing],
                "direction_lps": np.asarray(volume.direction_lps, dtype=np.float64).tolist(),
                "rgb": bool(volume.rgb), "modality": volume.modality}
        _, session = self.request("POST", "/v1/sessions", {"volume": spec, "mapping": _mapping_body(mapping)},
                                  what="opening a session")
        remote = RemoteVolume(self, session["session_id"], volume)
        try:
            self.request("PUT", f"/v1/sessions/{remote.id}/voxels", encode_voxels(array), what="the volume upload")
        except BaseException:
            remote.close(quiet=True)
            raise
        return remote

    def open_path(self, path: str, geometry, mapping=None) -> RemoteVolume:
        """A session on a volume file the server reads itself (it must be under its --data-root);
        `geometry`: the same volume read here (its geometry maps the results)."""
        _, session = self.request("POST", "/v1/sessions", {"path": str(path), "mapping": _mapping_body(mapping)},
                                  what="opening a session")
        return RemoteVolume(self, session["session_id"], geometry)


@dataclass(frozen=True)
class ServerLogits:
    """Stands for a slice result's low-res logits, which stay on the server."""

    result_id: str


@dataclass
class RemoteSliceResult:
    """A slice segmented by the server; its low-res logits stay there, named by `result_id`."""

    result_id: str
    ref: SliceRef
    score: float
    decoder: str
    area: int
    mask: dict = field(repr=False)
    shape: tuple = field(repr=False)

    @property
    def labelmap(self) -> np.ndarray:
        """bool [k, j, i]: the slice mask placed in the volume."""
        return decode_mask(self.mask, self.shape)

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
                      slice_index: int | None = None, seed_mask=None) -> RemoteSliceResult:
        """As VolumeSegmenter.segment_slice; `mask_input`: an earlier RemoteSliceResult (or its
        `low_res_logits`) to refine; `seed_mask`: bool (H, W), the slice's mask made elsewhere."""
        if mask_input is not None and not isinstance(mask_input, (RemoteSliceResult, ServerLogits)):
            raise InputError("mask_input: through the engine service, give the earlier slice result "
                             "(its logits stay on the server)")
        body = {"orientation": _orientation_body(orientation), "slice_index": _index(slice_index),
                "points_ras": _points_body(points_ras), "box_ras": _points_body(box_ras),
                "labels": None if labels is None else [int(v) for v in np.asarray(labels).reshape(-1)],
                "previous_result": None if mask_input is None else mask_input.result_id}
        if seed_mask is not None:
            seed = np.asarray(seed_mask, dtype=bool)
            if seed.ndim != 2:
                raise InputError(f"seed_mask: expected a 2D slice mask (H, W), got shape {seed.shape}")
            body["seed_mask"] = {"shape": list(seed.shape), **encode_mask(seed)}
        if body["points_ras"] is not None and body["labels"] is None:
            body["labels"] = [1] * len(body["points_ras"])
        return self._slice_result(self.client.request("POST", self._path + "/slice", body,
                                                      what="the slice prompt")[1])

    def segment_auto(self, orientation="axial", slice_index: int | None = None) -> RemoteSliceResult:
        body = {"orientation": _orientation_body(orientation), "slice_index": _index(slice_index)}
        return self._slice_result(self.client.request("POST", self._path + "/auto", body,
                                                      what="the prompt-free slice")[1])

    def prefetch(self, orientation="axial", slice_index: int | None = None, point_ras=None) -> None:
        """Have the server embed a slice now (queued behind prompts), so the next prompt there is fast."""
        body = {"orientation": _orientation_body(orientation), "slice_index": _index(slice_index),
                "point_ras": None if point_ras is None else [float(v) for v in point_ras]}
        self.client.request("POST", self._path + "/prefetch", body, what="the prefetch")

    def _slice_result(self, answer: dict) -> RemoteSliceResult:
        return RemoteSliceResult(answer["result_id"], SliceRef(answer["axis"], answer["index"]), answer["score"],
                                 answer["decoder"], answer["area"], answer["mask"], self.shape)

    # --- 3D jobs -------------------------------------------------------------------------------
    def propagate(self, seed: RemoteSliceResult, slice_range=None, use_logits: bool = False, min_score: float = 0.5,
                  min_area_ratio: float = 0.2, progress=None, box_margin: float = 0.02,
                  max_intensity_shift: float | None = 40.0) -> np.ndarray:
        """As VolumeSegmenter.propagate; `progress(done, total)` may raise to cancel the job."""
        if not isinstance(seed, RemoteSliceResult):
            raise InputError("seed: through the engine service, give a slice result of this session")
        body = {"seed_result": seed.result_id, "rules": _rules(use_logits, min_score, min_area_ratio, box_margin,
                                                                max_intensity_shift),
                "slice_range": None if slice_range is None else [int(v) for v in slice_range]}
        return self._run_job("/propagate", body, progress, "the propagation")

    def segment_box3d(self, corners_ras, orientation="axial", progress=None, use_logits: bool = False,
                      min_score: float = 0.5, min_area_ratio: float = 0.2, box_margin: float = 0.02,
                      max_intensity_shift: float | None = 40.0) -> np.ndarray:
        body = {"corners_ras": _points_body(corners_ras), "orientation": _orientation_body(orientation),
                "rules": _rules(use_logits, min_score, min_area_ratio, box_margin, max_intensity_shift)}
        return self._run_job("/box3d", body, progress, "the 3D box")

    def _run_job(self, route: str, body: dict, progress, what: str) -> np.ndarray:
        job = self.client.request("POST", self._path + route, body, what=what)[1]
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


# --- bodies ------------------------------------------------------------------------------------
def _error_for(status: int, answer, url: str) -> SegMoTEError:
    detail = (answer or {}).get("detail") if isinstance(answer, dict) else None
    detail = detail if isinstance(detail, str) else f"HTTP {status}"
    if status == 401:
        return EngineAuthError(f"engine at {url} refused the token ({detail})")
    if status == 410:
        return SessionClosed(detail)
    if status >= 500:
        return EngineError(f"engine at {url} failed: {detail}")
    return InputError(detail)


def _wire_array(array: np.ndarray) -> np.ndarray:
    """The voxels in a type the server takes (int64 → int32 when the values fit, else float64)."""
    array = np.ascontiguousarray(array)
    if array.dtype.name in VOXEL_DTYPES:
        return array
    if array.dtype.kind in "iu" and array.size and np.iinfo(np.int32).min <= array.min() and \
            array.max() <= np.iinfo(np.int32).max:
        return array.astype(np.int32)
    if array.dtype.kind == "f" and array.dtype.itemsize < 4:
        return array.astype(np.float32)
    return array.astype(np.float64)


def _mapping_body(mapping) -> dict:
    if mapping is None:
        return {"modality": "auto"}
    return {"modality": mapping.modality or "auto", "preset": mapping.preset, "window": mapping.window,
            "level": mapping.level, "percentiles": [float(v) for v in mapping.percentiles]}


def _orientation_body(orientation):
    if isinstance(orientation, str):
        return orientation
    return [float(v) for v in np.asarray(orientation, dtype=np.float64).reshape(-1)]


def _points_body(points):
    if points is None:
        return None
    array = np.asarray(points, dtype=np.float64)
    return (array[None] if array.ndim == 1 else array).tolist()


def _index(value):
    return None if value is None else int(value)


def _rules(use_logits, min_score, min_area_ratio, box_margin, max_intensity_shift) -> dict:
    return {"use_logits": bool(use_logits), "min_score": float(min_score), "min_area_ratio": float(min_area_ratio),
            "box_margin": float(box_margin),
            "max_intensity_shift": None if max_intensity_shift is None else float(max_intensity_shift)}
