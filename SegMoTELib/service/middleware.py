"""What every request of `segmote serve` goes through, around the routes (plain ASGI).

- `StampAndLog` (outermost): every answer says it comes from a SegMoTE engine (`X-SegMoTE-API`),
  so a client that reached another web server says so instead of dumping its page; one access
  log line per request (method, path with session ids shortened, status, time), never the token.
- `BearerTokenMiddleware` (`auth.py`) next.
- `BodyCap` (innermost): a request body other than a voxel upload is read at most up to
  `--max-request-kb` (a 60 MiB JSON body is refused after its first MiB, not read whole).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

from starlette.responses import JSONResponse

API_HEADER = b"x-segmote-api"
_UPLOAD = re.compile(r"^/v1/sessions/[^/]+/voxels/?$")
_SESSION_ID = re.compile(r"(/v1/sessions/)([^/?]{4})[^/?]*")


def is_upload(scope) -> bool:
    return scope.get("method") == "PUT" and bool(_UPLOAD.match(scope.get("path", "")))


def shown_path(path: str) -> str:
    """The path as the access log shows it: session ids (capabilities) cut to 4 characters."""
    return _SESSION_ID.sub(r"\1\2…", path)


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class StampAndLog:
    def __init__(self, app, api_version: str, log: Callable[[str], None] | None = stderr_line):
        self.app = app
        self._version = api_version.encode()
        self._log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0, "bytes": 0}

        async def stamped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (API_HEADER, self._version)]}
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            if self._log is not None:
                client = (scope.get("client") or ("-",))[0]
                milliseconds = 1000 * (time.perf_counter() - started)
                self._log(f"segmote serve: {client} {scope.get('method')} {shown_path(scope.get('path', ''))} "
                          f"{status['code'] or '-'} {milliseconds:.1f} ms {status['bytes']} B")


class BodyCap:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_upload(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app sees an empty body
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        response = JSONResponse({"detail": f"request: the body is larger than this server's --max-request-kb "
                                           f"({self.max_bytes // 1024} KiB); send fewer prompts per request"},
                                status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
