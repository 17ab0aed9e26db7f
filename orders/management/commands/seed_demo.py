"""Create the demo trader (and an admin) with orders, fills and positions on the paper venues."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from brokers.credentials import broker_account_create, broker_account_update
from brokers.domain.credentials import CredentialChange, ibkr_connection
from brokers.models import BrokerAccount, BrokerName
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.services import Actor, market_tick, order_cancel, order_place
from trademaster.crypto import DecryptionError, Sealed

DEMO_USER, DEMO_PASSWORD = "demo", "demo-trader"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-trader"

# account, side, type, quantity, symbol, extra
DEMO_ORDERS = [
    ("PAPER-EQ-A", Side.BUY, OrderType.MARKET, "100", "AAPL", {}),
    ("PAPER-EQ-B", Side.BUY, OrderType.MARKET, "50", "NVDA", {}),
    ("PAPER-CRYPTO", Side.BUY, OrderType.MARKET, "0.25", "BTC/USD", {}),
    ("PAPER-EQ-A", Side.SELL, OrderType.MARKET, "40", "AAPL", {}),
    ("PAPER-EQ-B", Side.BUY, OrderType.MARKET, "150", "MSFT", {}),
    ("PAPER-EQ-B", Side.BUY, OrderType.MARKET, "60", "AAPL", {}),
    ("PAPER-EQ-A", Side.SELL, OrderType.MARKET, "10", "META", {}),
    (
        "PAPER-CRYPTO",
        Side.BUY,
        OrderType.LIMIT,
        "2",
        "ETH/USD",
        {"price": "3300.00", "time_in_force": TimeInForce.GTC},
    ),
    (
        "PAPER-EQ-A",
        Side.BUY,
        OrderType.LIMIT,
        "20",
        "TSLA",
        {"price": "240.00", "time_in_force": TimeInForce.GTC},
    ),
    (
        "PAPER-EQ-B",
        Side.SELL,
        OrderType.TRAILING_STOP,
        "30",
        "NVDA",
        {"trail_percent": "2", "time_in_force": TimeInForce.GTC},
    ),
    (
        "PAPER-EQ-A",
        Side.SELL,
        OrderType.STOP,
        "50",
        "AAPL",
        {"stop_price": "215.00", "time_in_force": TimeInForce.GTC},
    ),
]
CANCELLED_DEMO = ("PAPER-EQ-A", Side.BUY, OrderType.LIMIT, "10", "AMZN", {"price": "180.00"})


class Command(BaseCommand):
    help = "Create demo users and demo trading activity (idempotent)."

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates users with known passwords: not in production")
        User = get_user_model()
        demo, created = User.objects.get_or_create(username=DEMO_USER, defaults={"first_name": "Demo"})
        if created:
            demo.set_password(DEMO_PASSWORD)
            demo.save()
        admin, created = User.objects.get_or_create(
            username=ADMIN_USER, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(ADMIN_PASSWORD)
            admin.save()
        if settings.DEMO_BROKERS:
            for account in demo_broker_accounts(user=demo):
                self.stdout.write(f"demo broker account: {account} (served by run_broker_fakes)")
        accounts = {a.account_id: a.pk for a in BrokerAccount.objects.filter(user=demo)}
        actor = Actor.for_user(demo, "demo seed")
        for n, (account, side, order_type, qty, symbol, extra) in enumerate(
            [*DEMO_ORDERS, CANCELLED_DEMO], 1
        ):
            request = OrderRequest(
                symbol=symbol,
                side=side,
                order_type=order_type,
                quantity=Decimal(qty),
                time_in_force=extra.get("time_in_force", TimeInForce.DAY),
                price=Decimal(extra["price"]) if "price" in extra else None,
                stop_price=Decimal(extra["stop_price"]) if "stop_price" in extra else None,
                trail_percent=Decimal(extra["trail_percent"]) if "trail_percent" in extra else None,
                client_order_id=f"demo-{n}",
            )
            placed = order_place(user=demo, request=request, actor=actor, broker_id=accounts[account])
            if (account, side, order_type, qty, symbol, extra) == CANCELLED_DEMO and placed.created:
                order_cancel(user=demo, order_id=placed.order.pk, actor=actor)
        for _ in range(5):
            market_tick()
        self.stdout.write(
            f"demo trader: {DEMO_USER} / {DEMO_PASSWORD}   admin: {ADMIN_USER} / {ADMIN_PASSWORD}"
        )


def demo_broker_accounts(*, user) -> list[BrokerAccount]:
    """Give ``user`` an Alpaca, a Binance, a Schwab and an IB paper account holding the
    credentials the demo fakes accept (idempotent: an existing account is left as it is, except
    that the IB one follows the fake TWS's port). Schwab's refresh token is stored with it, so no
    browser login is needed; the IB account stores the fake TWS's address."""
    # demo mode only: the fakes live with the tests
    from tests.fakes.demo import DEMO_CREDENTIALS, demo_ibkr_connection

    tws = demo_ibkr_connection(settings.DEMO_BROKER_PORTS["ibkr_tws"])
    accounts = []
    for demo in DEMO_CREDENTIALS:
        if demo.broker_name == BrokerName.IBKR:
            credentials = CredentialChange(connection=tws)
        else:
            credentials = CredentialChange(
                api_key=demo.api_key, api_secret=demo.api_secret, refresh_token=demo.refresh_token or None
            )
        account = BrokerAccount.objects.filter(
            user=user, broker_name=demo.broker_name, account_id=demo.account_id
        ).first()
        if account is None:
            account = broker_account_create(
                user=user,
                broker_name=demo.broker_name,
                account_id=demo.account_id,
                label=demo.label,
                sandbox_mode=True,
                credentials=credentials,
            )
        elif demo.broker_name == BrokerName.IBKR and _stored_connection(account) != tws:
            account = broker_account_update(account=account, credentials=credentials)
        accounts.append(account)
    return accounts


def _stored_connection(account: BrokerAccount) -> dict:
    sealed = account.api_key_encrypted
    try:
        return ibkr_connection(sealed.reveal() if isinstance(sealed, Sealed) else sealed)
    except DecryptionError:
        return {}  # unreadable (another key): stored again
