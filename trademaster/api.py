"""Shared REST plumbing: pagination and one error shape for every 4xx (and the 503 of a busy broker)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from trademaster.errors import TradeMasterError


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        if all(isinstance(d, str) for d in detail):
            return [str(d) for d in detail]
        return [_flatten(d) for d in detail]
    return [str(detail)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every error as ``{"code", "message", ...}``; field errors under ``fields``."""
    if isinstance(exc, TradeMasterError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if "fields" in exc.extra:
            body["fields"] = exc.extra["fields"]
        extra = {k: v for k, v in exc.extra.items() if k != "fields"}
        if extra:
            body["extra"] = extra
        response = Response(body, status=exc.status_code)
        if "retry_after" in extra:  # BrokerBusy: whole seconds, rounded up
            response["Retry-After"] = str(math.ceil(Decimal(str(extra["retry_after"]))))
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = _flatten(detail) if isinstance(detail, dict) else {"non_field_errors": _flatten(detail)}
        response.data = {
            "code": "validation_error",
            "message": "The request has invalid fields.",
            "fields": fields,
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {"code": codes if isinstance(codes, str) else "error", "message": str(exc.detail)}
    return response
