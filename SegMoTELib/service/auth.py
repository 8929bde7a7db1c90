"""Bearer-token check on every request, /health included, but the API's documentation.

A plain ASGI middleware rather than a FastAPI dependency so that no path escapes it and unknown
paths cannot be probed. The documentation is public: the `/docs` page, its Swagger UI assets
(served from this server, no CDN) and the OpenAPI schema it reads (`/openapi.json`, the public
description of the API, nothing of a session), so a browser can open it and then *Authorize*
with the token; every call it makes from there carries the token like any client's.

Tokens are what HTTP can carry: visible ASCII (`token_problem`), checked by `segmote serve` at
start, so a server never accepts a token its own client could not send.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse

from .tokens import MIN_TOKEN_LENGTH  # noqa: F401  (re-exported)

PUBLIC_PATHS = ("/docs", "/openapi.json")
PUBLIC_PREFIXES = ("/docs/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BearerTokenMiddleware:
    def __init__(self, app, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_public(scope.get("path", "")):  # lifespan events, the docs
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
