"""What travels between a client and `segmote serve`: request bodies, and how answers are read.

Plain functions (standard library and numpy), shared by the blocking client (`client.py`, for the
CLI and scripts) and the Qt client of Slicer's main thread (`qt_client.py`), so both send the same
bodies and turn the same answers into the same one-line SegMoTE errors.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse

import numpy as np

from ..errors import InputError, SegMoTEError
from .codec import VOXEL_DTYPES
from .tokens import token_problem

TOKEN_ENV = "SEGMOTE_TOKEN"
API_HEADER = "X-SegMoTE-API"
MAX_PATH_CHARACTERS = 4096


class EngineError(SegMoTEError):
    """The engine service failed or refused in a way that is not a mistake in the prompt."""


class EngineUnavailable(EngineError):
    """The server cannot be reached, or dropped the connection (stopped, crashed, network)."""


class EngineAuthError(EngineError):
    """The server refused the bearer token."""


class SessionClosed(EngineError):
    """The session is gone on the server (closed after the idle limit, or by the server stopping)."""


class NotAnEngine(EngineUnavailable):
    """What answered at the URL is not a SegMoTE engine (another web server, a proxy's own error)."""


class ResultUnknown(InputError):
    """The server no longer holds a slice result (it keeps a few per session): seed it again."""


def check_url(url: str) -> urllib.parse.SplitResult:
    parsed = urllib.parse.urlsplit(str(url).strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"server: expected a URL like http://127.0.0.1:8765, got {url!r}")
    return parsed


def check_token(token: str | None) -> str:
    """The token to send (SEGMOTE_TOKEN when None), or an InputError naming what is wrong."""
    token = (token if token is not None else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise InputError(f"token: set the {TOKEN_ENV} environment variable to the server's token")
    problem = token_problem(token)
    if problem:
        raise InputError(f"token: {problem}; use the token the server was started with")
    return token


def check_path(path) -> str:
    text = str(path)
    if "\x00" in text:
        raise InputError("path: a file name cannot hold a NUL character")
    if not text or len(text) > MAX_PATH_CHARACTERS:
        raise InputError(f"path: expected 1..{MAX_PATH_CHARACTERS} characters, got {len(text)}")
    return text


def volume_spec(volume) -> tuple[dict, np.dtype]:
    """(the session's `volume` body, the voxel type the voxels travel in)."""
    wire_dtype = _wire_dtype(volume.array)
    spec = {"shape": list(volume.array.shape), "dtype": str(wire_dtype),
            "origin_lps": [float(v) for v in volume.origin_lps], "spacing": [float(v) for v in volume.spacing],
            "direction_lps": np.asarray(volume.direction_lps, dtype=np.float64).tolist(),
            "rgb": bool(volume.rgb), "modality": volume.modality}
    return spec, wire_dtype


def encode_body(body) -> bytes | None:
    """A request body as bytes: raw bytes as they are, anything else as JSON, which has no NaN or
    infinity: a non-finite number is refused here, by name, before anything is sent."""
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body) if not isinstance(body, bytes) else body
    _check_finite(body, "")
    return json.dumps(body, allow_nan=False).encode()


def _check_finite(value, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where or 'request'}: {value} is not a finite number; prompts need finite coordinates")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}.{index}")


def answer_of(status: int, reason: str, api_header: str | None, content_type: str | None, data: bytes, url: str,
              what: str):
    """(status, decoded JSON or None) of a SegMoTE engine's answer, or the SegMoTE error it stands for.

    An answer without the engine's header comes from something else at that address (another web
    server, a proxy's own error page, a wrong path on a shared host): said in one line, its body
    never shown."""
    if not api_header:
        kind = (content_type or "no content type").split(";")[0]
        raise NotAnEngine(f"{url} answered HTTP {status} {reason or ''} ({kind}) during {what}, but not as a "
                          f"SegMoTE engine; check the server URL (host, port and path) and that `segmote serve` "
                          f"runs there".replace("  ", " "))
    decoded = None
    if data:
        try:
            decoded = json.loads(data)
        except ValueError:
            decoded = {"detail": f"HTTP {status}: an answer that is not JSON"}
    if status >= 400:
        raise _error_for(status, decoded, url)
    return status, decoded


def _error_for(status: int, answer, url: str) -> SegMoTEError:
    detail = (answer or {}).get("detail") if isinstance(answer, dict) else None
    detail = detail if isinstance(detail, str) else f"HTTP {status}"
    code = (answer or {}).get("code") if isinstance(answer, dict) else None
    if status == 401:
        return EngineAuthError(f"engine at {url} refused the token ({detail})")
    if status == 410:
        return SessionClosed(detail)
    if code == "unknown_result":
        return ResultUnknown(detail)
    if status >= 500:
        return EngineError(f"engine at {url} failed: {detail}")
    return InputError(detail)


def _wire_dtype(array: np.ndarray) -> np.dtype:
    """The type the voxels travel in, one the server takes (int64 → int32 when the values fit, else
    float64); chosen without converting anything (`voxel_slabs` converts slab by slab)."""
    if array.dtype.name in VOXEL_DTYPES:
        return array.dtype
    if array.dtype.kind in "iu" and array.size and np.iinfo(np.int32).min <= array.min() and \
            array.max() <= np.iinfo(np.int32).max:
        return np.dtype(np.int32)
    if array.dtype.kind == "f" and array.dtype.itemsize < 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def slice_body(prompt, orientation, slice_index) -> dict:
    """The body of POST .../slice (without `previous_result`): the prompt value's wire form
    (`SlicePrompt.to_wire`), its seed mask in the mask encoding, the slice."""
    from .codec import encode_mask

    seed = prompt.seed_mask
    return {**prompt.to_wire(), "orientation": orientation_body(orientation), "slice_index": index_body(slice_index),
            "seed_mask": None if seed is None else {"shape": list(seed.shape), **encode_mask(seed)}}


def mapping_body(mapping) -> dict:
    if mapping is None:
        return {"modality": "auto"}
    return {"modality": mapping.modality or "auto", "preset": mapping.preset, "window": mapping.window,
            "level": mapping.level, "percentiles": [float(v) for v in mapping.percentiles]}


def orientation_body(orientation):
    if isinstance(orientation, str):
        return orientation
    return [float(v) for v in np.asarray(orientation, dtype=np.float64).reshape(-1)]


def points_body(points):
    if points is None:
        return None
    array = np.asarray(points, dtype=np.float64)
    return (array[None] if array.ndim == 1 else array).tolist()


def index_body(value):
    return None if value is None else int(value)


def rules_body(rules) -> dict:
    """The wire form of a PropagationRules: the fields that differ from the defaults (the server applies
    the rest as for its own callers, the adapter's declared walk prompt included), hand rules turned
    off listed in "off"; None: the server's defaults."""
    if rules is None:
        return {}
    from ..walk_rules import PropagationRules

    if not isinstance(rules, PropagationRules):
        raise InputError(f"rules: expected PropagationRules, got {type(rules).__name__}")
    values, defaults = rules.to_dict(), PropagationRules().to_dict()
    changed = {k: v for k, v in values.items() if v != defaults[k]}
    off = [name for name, value in changed.items() if value is None]
    return {**{k: v for k, v in changed.items() if v is not None}, "off": off}
