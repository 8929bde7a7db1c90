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

The calls themselves (the upload in slabs, job polling, seeding again a result the server forgot)
are `operations`, shared with the Qt client of Slicer's main thread; this module carries them out
with `http.client`, blocking.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading

import numpy as np

from ..errors import SegMoTEError
from ..geometry import SliceRef
from ..slice_prompt import SlicePrompt
from . import operations
from .operations import (  # noqa: F401  (re-exported: callers import them from here)
    JOB_POLL_S,
    QUICK_READ_TIMEOUT_S,
    RemoteSliceResult,
    Request,
    ServerLogits,
    SessionCalls,
    run_blocking,
)
from .wire import (  # noqa: F401  (the errors are re-exported: callers import them from here)
    API_HEADER,
    TOKEN_ENV,
    EngineAuthError,
    EngineError,
    EngineUnavailable,
    NotAnEngine,
    ResultUnknown,
    SessionClosed,
    answer_of,
    check_token,
    check_url,
    encode_body,
)

CONNECT_TIMEOUT_S = 5.0   # no TCP (and TLS) connection by then: the server is down or unreachable
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
        return self.run(operations.info())

    def run(self, operation):
        """Carry out one of `operations` (a generator of requests) with this client, blocking."""
        return run_blocking(self._answer, operation)

    def _answer(self, step: Request):
        return self.request(step.method, step.path, step.body, what=step.what, read_timeout=step.read_timeout)[1]

    def open_volume(self, volume, mapping=None, progress=None) -> RemoteVolume:
        """Upload a SegMoTELib `Volume` once (in compressed slabs, with its geometry); a session on it.
        `progress(slices sent, slices)` after each slab."""
        return RemoteVolume(self, self.run(operations.open_volume(volume, mapping, progress)), volume)

    def open_path(self, path: str, geometry, mapping=None) -> RemoteVolume:
        """A session on a volume file the server reads itself (it must be under its --data-root);
        `geometry`: the same volume read here (its geometry maps the results)."""
        return RemoteVolume(self, self.run(operations.open_path(path, mapping)), geometry)


class RemoteVolume:
    """A session on one volume: the `VolumeSegmenter` methods, computed by the server (blocking)."""

    def __init__(self, client: EngineClient, session_id: str, volume):
        self.client, self.id, self.volume = client, session_id, volume
        self.calls = SessionCalls(session_id, volume)
        self.shape = self.calls.shape

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(quiet=True)
        return False

    def close(self, quiet: bool = False) -> None:
        try:
            self.client.run(self.calls.close())
        except SegMoTEError:
            if not quiet:
                raise

    def segment_slice(self, prompt: SlicePrompt, orientation="axial", slice_index: int | None = None) -> RemoteSliceResult:
        """As VolumeSegmenter.segment_slice; the prompt's `mask_input`: an earlier RemoteSliceResult to
        refine (seeded again from its mask if the server forgot it), or its `low_res_logits`."""
        return self.client.run(self.calls.segment_slice(prompt, orientation, slice_index))

    def seed_result(self, ref: SliceRef, mask: dict) -> RemoteSliceResult:
        """A server-side result made from a one-slice mask in the server's format (`RemoteSliceResult.mask`)."""
        return self.client.run(self.calls.seed_result(ref, mask))

    def segment_auto(self, orientation="axial", slice_index: int | None = None) -> RemoteSliceResult:
        return self.client.run(self.calls.segment_auto(orientation, slice_index))

    def prefetch(self, orientation="axial", slice_index: int | None = None, point_ras=None) -> None:
        """Have the server embed a slice now (queued behind prompts), so the next prompt there is fast."""
        self.client.run(self.calls.prefetch(orientation, slice_index, point_ras))

    @property
    def last_stops(self) -> list:
        """Where and why the last walk's directions ended (as VolumeSegmenter's)."""
        return self.calls.last_stops

    def propagate(self, seed: RemoteSliceResult, slice_range=None, rules=None, progress=None) -> np.ndarray:
        """As VolumeSegmenter.propagate (`rules`: a PropagationRules, None: the server's defaults);
        `progress(done, total)` may raise to cancel the job."""
        return self.client.run(self.calls.propagate(seed, slice_range, rules, progress))

    def segment_box3d(self, corners_ras, orientation="auto", progress=None, rules=None) -> np.ndarray:
        return self.client.run(self.calls.segment_box3d(corners_ras, orientation, progress, rules))

    def correct(self, labelmap, prompt, orientation="auto", slice_index: int | None = None, rules=None, progress=None,
                agreement: float | None = None):
        """As VolumeSegmenter.correct: a `corrections.Correction`."""
        return self.client.run(self.calls.correct(labelmap, prompt, orientation, slice_index, rules, progress,
                                                  agreement))
