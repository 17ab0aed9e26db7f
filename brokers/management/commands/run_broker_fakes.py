"""Serve the broker fakes (tests/fakes) as the demo mode's Alpaca, Binance, Schwab and IB.

With ``TRADEMASTER_DEMO_BROKERS=1`` the settings point the real adapters at
``settings.DEMO_BROKER_PORTS``; this command serves the fakes there (each behind a
:class:`tests.fakes.demo.Relay`, since the fakes bind a random port; the fake TWS binds its port
itself, and the demo IB account stores its address) and runs the
:class:`tests.fakes.demo.DemoMarket` driver, which fills their orders at the simulated market's
prices. The fakes accept only the demo credentials that ``seed_demo`` stores.

IB orders go through ``run_ib_gateway``, which starts after this command: the demo IB accounts
are connected once the gateway's bridge listens.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from brokers.credentials import ConnectionTest, broker_account_test_connection
from brokers.models import BrokerAccount, ConnectionStatus
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.fakes.demo import DemoMarket, Relay, demo_fakes, demo_tws, instrument_mids
from tests.fakes.ibkr import FakeTws
from tests.fakes.schwab import FakeSchwab

log = logging.getLogger(__name__)

TWS = "ibkr_tws"  # the fake TWS: no relay, it binds its port itself
RELAYED = ("alpaca", "alpaca_stream", "binance", "binance_ws", "schwab")
SERVICES = (*RELAYED, TWS)
DEMO_BROKER_NAMES = ("alpaca", "binance", "schwab", "ibkr")
IB_GATEWAY_WAIT_SECONDS = 60.0  # how long the demo IB accounts wait for run_ib_gateway


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


@dataclass
class BrokerFakes:
    """The running fakes, their relays and the driver; ``urls`` are the adapter settings to use."""

    alpaca: FakeAlpaca
    binance: FakeBinance
    schwab: FakeSchwab
    ibkr: FakeTws
    market: DemoMarket
    relays: dict[str, Relay] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for relay in self.relays.values():
            relay.stop()
        self.alpaca.stop()
        self.binance.stop()
        self.schwab.stop()
        self.ibkr.stop()


def broker_fakes_start(
    *,
    ports: Mapping[str, int],
    prices: Callable[[], dict[str, Decimal]] = instrument_mids,
    spread_bps: Decimal | None = None,
) -> BrokerFakes:
    """Start the fakes behind relays on ``ports`` (a port of 0 takes any free one).

    ``ports`` names a port for each of :data:`SERVICES`. Returns the running set; its ``urls``
    map the adapter settings (``ALPACA_TRADING_URL``...) to where each fake now answers (the fake
    TWS: ``ibkr.port``, which the demo IB account stores).
    """
    alpaca, binance, schwab = demo_fakes()
    ibkr = demo_tws(ports[TWS]).start()
    alpaca.start()
    binance_url = binance.start()
    schwab.start()
    upstream = {
        "alpaca": _port(alpaca.url),
        "alpaca_stream": _port(alpaca.stream_start()),
        "binance": _port(binance_url),
        "binance_ws": _port(binance.ws_url),
        "schwab": _port(schwab.url),
    }
    relays = {name: Relay(ports[name], upstream[name], name=f"demo-{name}").start() for name in RELAYED}
    at = {name: f"127.0.0.1:{relay.port}" for name, relay in relays.items()}
    urls = {
        "ALPACA_TRADING_URL": f"http://{at['alpaca']}",
        "ALPACA_DATA_URL": f"http://{at['alpaca']}",
        "ALPACA_STREAM_URL": f"ws://{at['alpaca_stream']}/stream",
        "BINANCE_REST_URL": f"http://{at['binance']}",
        "BINANCE_WS_API_URL": f"ws://{at['binance_ws']}/ws-api/v3",
        "SCHWAB_TRADER_URL": f"http://{at['schwab']}/trader/v1",
        "SCHWAB_MARKETDATA_URL": f"http://{at['schwab']}/marketdata/v1",
        "SCHWAB_TOKEN_URL": f"http://{at['schwab']}/v1/oauth/token",
        "SCHWAB_AUTHORIZE_URL": f"http://{at['schwab']}/v1/oauth/authorize",
    }
    market = DemoMarket(alpaca=alpaca, binance=binance, schwab=schwab, ibkr=ibkr, prices=prices)
    if spread_bps is not None:
        market.spread_bps = spread_bps
    return BrokerFakes(alpaca, binance, schwab, ibkr, market, relays, urls)


def demo_accounts_connect(brokers: tuple[str, ...] = DEMO_BROKER_NAMES) -> list[ConnectionTest]:
    """Test the connection of every active account the fakes serve (health and account sync),
    so the demo accounts show CONNECTED with the fakes' balances without waiting for the
    periodic health check."""
    accounts = BrokerAccount.objects.active().filter(broker_name__in=brokers)
    return [broker_account_test_connection(account=account) for account in accounts]


def ib_gateway_listening() -> bool:
    """Whether something accepts connections at ``IB_GATEWAY_URL`` (the bridge of run_ib_gateway)."""
    url = urlsplit(settings.IB_GATEWAY_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=1):
            return True
    except OSError:
        return False


def _prices_fresh() -> dict[str, Decimal]:
    close_old_connections()  # a long-running loop: drop a connection the database closed
    return instrument_mids()


class Command(BaseCommand):
    help = "Serve the fake Alpaca, Binance, Schwab and IB TWS of the demo mode until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.DEMO_BROKERS_TICK_SECONDS,
            help="seconds between two looks at the market",
        )

    def handle(self, *args, interval: float, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        fakes = broker_fakes_start(ports=settings.DEMO_BROKER_PORTS, prices=_prices_fresh)
        try:
            for name, url in fakes.urls.items():
                self.stdout.write(f"{name:22} {url}")
            self.stdout.write(f"{'IB TWS':22} {fakes.ibkr.url}")
            if settings.DEMO_BROKERS:
                others = tuple(name for name in DEMO_BROKER_NAMES if name != "ibkr")
                for result in demo_accounts_connect(others):
                    self.stdout.write(f"{result.account}: {result.status} {result.message}")
            else:
                self.stdout.write("TRADEMASTER_DEMO_BROKERS is off: the adapters do not use these fakes")
            self.stdout.write(f"broker fakes running; the market is read every {interval} s")
            self.stdout.flush()

            def report(exc: Exception) -> None:
                log.warning("demo market step failed: %s", exc)

            # the demo IB accounts answer through run_ib_gateway, started after this command
            ib_until = time.monotonic() + IB_GATEWAY_WAIT_SECONDS if settings.DEMO_BROKERS else 0.0
            while not stop.wait(interval):
                if ib_until and ib_gateway_listening():
                    ib_until = self._connect_ib(ib_until)
                elif ib_until and time.monotonic() > ib_until:
                    self.stdout.write("the IB gateway did not listen: the demo IB accounts wait for a check")
                    ib_until = 0.0
                try:
                    fakes.market.step()
                except DatabaseError as exc:  # e.g. SQLite busy while the market writes: next step
                    report(exc)
        finally:
            fakes.stop()

    def _connect_ib(self, until: float) -> float:
        """Test the demo IB accounts' connections; 0 once all are CONNECTED (or the time is up),
        else ``until`` (tried again at the next look)."""
        results = demo_accounts_connect(("ibkr",))
        done = all(r.status == ConnectionStatus.CONNECTED for r in results) or time.monotonic() > until
        if done:
            for result in results:
                self.stdout.write(f"{result.account}: {result.status} {result.message}")
            self.stdout.flush()
        return 0.0 if done else until
