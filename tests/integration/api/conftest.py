"""Helpers shared by the REST API integration tests."""

from __future__ import annotations

import datetime as dt
import re

import pytest

ORDERS = "/api/v1/orders/"
GENERATED_CLIENT_ORDER_ID = re.compile(r"^TM[0-9a-f]{32}$")
PAPER_ORDER_ID = re.compile(r"^P-[0-9a-f]{20}$")
TIMESTAMP = "<timestamp>"


def is_timestamp(value: object) -> bool:
    """An ISO 8601 UTC timestamp as DRF renders it (``...Z``)."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.utcoffset() == dt.timedelta(0)


def stable(order: dict) -> dict:
    """The order body with its volatile values checked and replaced by placeholders.

    ``id`` is dropped (checked to be an int); timestamps become TIMESTAMP (or stay None);
    a generated client_order_id becomes "<generated>"; a venue order id becomes "<venue>".
    """
    body = dict(order)
    assert isinstance(body.pop("id"), int)
    for key in ("created_at", "updated_at", "submitted_at", "filled_at", "cancelled_at", "resend_at"):
        if body[key] is not None:
            assert is_timestamp(body[key]), (key, body[key])
            body[key] = TIMESTAMP
    if GENERATED_CLIENT_ORDER_ID.fullmatch(body["client_order_id"] or ""):
        body["client_order_id"] = "<generated>"
    if body["broker_order_id"] is not None:
        assert PAPER_ORDER_ID.fullmatch(body["broker_order_id"]), body["broker_order_id"]
        body["broker_order_id"] = "<venue>"
    return body


def expected_order(**fields) -> dict:
    """An order body as the API renders it after a successful submission; override what differs."""
    body = {
        "user_id": None,
        "broker_id": None,
        "parent_id": None,
        "algo": "",
        "client_order_id": "<generated>",
        "symbol": "AAPL",
        "asset_class": "EQUITY",
        "order_type": "LIMIT",
        "side": "BUY",
        "quantity": None,
        "price": None,
        "stop_price": None,
        "trail_amount": None,
        "trail_percent": None,
        "time_in_force": "DAY",
        "status": "ACCEPTED",
        "status_reason": "",
        "broker_order_id": "<venue>",
        "filled_quantity": "0.00000000",
        "remaining_quantity": None,
        "average_fill_price": None,
        "commission": "0.0000",
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "submitted_at": TIMESTAMP,
        "filled_at": None,
        "cancelled_at": None,
        "resend_at": None,
        "send_attempts": 0,
    }
    unknown = set(fields) - set(body)
    assert not unknown, unknown
    body.update(fields)
    return body


@pytest.fixture
def place():
    """POST one order as JSON with ``client``; assert the status code; return the body."""

    def place_(client, expect: int = 201, **fields) -> dict:
        response = client.post(ORDERS, fields, format="json")
        assert response.status_code == expect, response.content
        return response.json()

    return place_


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in nearly every test here: skip the deliberately slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
