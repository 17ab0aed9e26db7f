"""Broker choice for an order: the one place the OMS asks where an order goes.

For now: the account the client names (if it is theirs, active and able to take the order), or
the first eligible account. Best-execution scoring replaces the second branch.
"""

from __future__ import annotations

from brokers.models import BrokerAccount
from brokers.services import adapter_for
from orders.domain.enums import AssetClass, OrderType, TimeInForce
from trademaster.errors import NotFound, TradeMasterError


def _ineligible_reason(
    account: BrokerAccount, asset_class: AssetClass, order_type: OrderType, tif: TimeInForce
) -> str | None:
    if not account.is_active:
        return "is not active"
    if account.connection_status == "DOWN":
        return "is disconnected"
    return adapter_for(account).capabilities.supports(asset_class, order_type, tif)


def route_choose(
    *,
    user,
    asset_class: AssetClass,
    order_type: OrderType,
    time_in_force: TimeInForce,
    broker_id: int | None = None,
) -> BrokerAccount:
    if broker_id is not None:
        account = BrokerAccount.objects.filter(pk=broker_id, user=user).select_related("paper_venue").first()
        if account is None:
            raise NotFound("broker_not_found", f"Broker account {broker_id} does not exist.")
        reason = _ineligible_reason(account, asset_class, order_type, time_in_force)
        if reason:
            raise TradeMasterError(
                "broker_ineligible",
                f"Broker account {account} {reason}.",
                {"fields": {"broker_id": [f"{account} {reason}."]}},
            )
        return account
    reasons = []
    for account in BrokerAccount.objects.filter(user=user).select_related("paper_venue").order_by("id"):
        reason = _ineligible_reason(account, asset_class, order_type, time_in_force)
        if reason is None:
            return account
        reasons.append(f"{account} {reason}")
    raise TradeMasterError(
        "no_eligible_broker",
        f"No broker account can take a {order_type} {time_in_force} {asset_class.lower()} order.",
        {"candidates": reasons},
    )
