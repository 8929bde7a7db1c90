"""A request the service turns down before the engine sees it: an HTTP status and one clear line.

`code` (optional) names the refusal for programs: `unknown_result` tells a client that the server
forgot a slice result it still holds the mask of (it seeds it again, see `client.py`).
"""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
