from __future__ import annotations

from brokers.domain.adapter import BrokerError, Quote
from brokers.models import BrokerAccount
from brokers.services import adapter_for
from orders.domain.validation import asset_class_of
from trademaster.errors import NotFound, ValidationFailed


def broker_account_list(*, user):
    return BrokerAccount.objects.for_owner(user).select_related("paper_venue")


def broker_account_get(*, user, account_id: int) -> BrokerAccount:
    account = broker_account_list(user=user).filter(pk=account_id).first()
    if account is None:
        raise NotFound("broker_not_found", f"Broker account {account_id} does not exist.")
    return account


def quote_list(*, user, symbol: str) -> list[tuple[BrokerAccount, Quote]]:
    """The symbol's top of book at each of the user's active accounts that trade it."""
    asset_class = asset_class_of(symbol)
    if asset_class is None:
        raise ValidationFailed({"symbol": ["Unknown symbol format."]})
    quotes = []
    for account in BrokerAccount.objects.filter(user=user, is_active=True).select_related("paper_venue"):
        adapter = adapter_for(account)
        if asset_class not in adapter.capabilities.asset_classes:
            continue
        try:
            quotes.append((account, adapter.quote(symbol)))
        except BrokerError:
            continue
    if not quotes:
        raise NotFound("no_quote", f"None of your broker accounts quotes {symbol}.")
    return quotes
