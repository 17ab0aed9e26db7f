"""The one error type that services raise and interfaces render (HTTP 4xx, MCP tool error)."""

from __future__ import annotations

from typing import Any


class TradeMasterError(Exception):
    status_code = 400

    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra or {}


class ValidationFailed(TradeMasterError):
    """Field errors: ``fields`` maps a field name to its messages."""

    def __init__(
        self, fields: dict[str, list[str]], message: str = "The request has invalid fields."
    ) -> None:
        super().__init__("validation_error", message, {"fields": fields})
        self.fields = fields


class NotFound(TradeMasterError):
    status_code = 404


class Conflict(TradeMasterError):
    status_code = 409


class PermissionDenied(TradeMasterError):
    status_code = 403


class BrokerBusy(TradeMasterError):
    """The broker asked to wait (rate limit) and did not receive the request: HTTP 503 with a
    ``Retry-After`` header from ``extra["retry_after"]`` (seconds)."""

    status_code = 503
