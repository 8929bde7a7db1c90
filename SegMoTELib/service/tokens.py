"""What a bearer token may hold (standard library only: the client and the server both check it)."""

from __future__ import annotations

MIN_TOKEN_LENGTH = 16


def token_problem(token: str) -> str | None:
    """Why `token` cannot be a bearer token (None when it can): an HTTP header carries visible ASCII
    only, so a token with a space, an accent or an emoji could never be sent."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"expected at least {MIN_TOKEN_LENGTH} characters"
    bad = sorted({c for c in token if not "!" <= c <= "~"})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:3])
        return f"only visible ASCII characters can travel in an HTTP header (found {shown})"
    return None
