"""Shared fixtures. Integration tests run on the database DATABASE_URL names (SQLite by default)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from brokers.models import BrokerAccount
from brokers.services import adapters_reset, market_set_mid
from trademaster.management.commands.issue_token import token_issue


@pytest.fixture(autouse=True)
def _fresh_adapters():
    """Adapters are cached per account id; ids repeat across tests that roll back."""
    adapters_reset()
    yield
    adapters_reset()


@pytest.fixture
def make_user(db):
    def make(username: str = "trader", **extra):
        return get_user_model().objects.create_user(username=username, password="pw-for-tests-1", **extra)

    return make


@pytest.fixture
def trader(make_user):
    return make_user("trader")


@pytest.fixture
def other_trader(make_user):
    return make_user("other")


def bearer_client(user, scopes=("read", "trade")) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user, scopes=list(scopes))}")
    return client


@pytest.fixture
def api(trader) -> APIClient:
    return bearer_client(trader)


@pytest.fixture
def other_api(other_trader) -> APIClient:
    return bearer_client(other_trader)


@pytest.fixture
def accounts(trader) -> dict[str, BrokerAccount]:
    """The trader's paper accounts by account_id: PAPER-EQ-A, PAPER-EQ-B, PAPER-CRYPTO."""
    return {a.account_id: a for a in BrokerAccount.objects.filter(user=trader).select_related("paper_venue")}


@pytest.fixture
def set_mid(db):
    def set_(symbol: str, mid: str | Decimal) -> None:
        market_set_mid(symbol=symbol, mid=Decimal(mid))

    return set_
