"""Bearer-token check on every request, the OpenAPI schema and /health included.

A plain ASGI middleware rather than a FastAPI dependency so that no path escapes it (FastAPI's
own /openapi.json and /docs routes take no dependencies) and unknown paths cannot be probed.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse

MIN_TOKEN_LENGTH = 16


class BearerTokenMiddleware:
    def __init__(self, app, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan events
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            reason = "missing" if not given else "wrong"
            response = JSONResponse(
                {"detail": f"authorization: {reason} bearer token; send 'Authorization: Bearer <token>' "
                           f"with the server's token (SEGMOTE_TOKEN)"},
                status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
