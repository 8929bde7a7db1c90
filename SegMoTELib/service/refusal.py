"""A request the service turns down before the engine sees it: an HTTP status and one clear line."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
