"""``manage.py run_ib_gateway``: the long-running Interactive Brokers worker.

Holds one TWS API connection (ib_async) per active IB broker account in its own asyncio loop
thread and serves the loopback JSON bridge the ``ibkr`` adapter calls (settings
``IB_GATEWAY_URL``, ``IB_GATEWAY_TOKEN``). Prints one ``ready <url>`` line once the bridge
listens; runs until SIGINT / SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from brokers.adapters.ibkr import account_endpoint
from brokers.domain.adapter import BrokerError
from brokers.ibkr.bridge import IbBridge
from brokers.ibkr.gateway import Endpoint, IbGateway
from brokers.models import BrokerAccount, BrokerName


def gateway_from_settings() -> IbGateway:
    return IbGateway(
        connect_timeout=settings.IB_TWS_CONNECT_TIMEOUT_SECONDS,
        request_timeout=settings.IB_TWS_REQUEST_TIMEOUT_SECONDS,
        reconnect_max=settings.IB_TWS_RECONNECT_MAX_SECONDS,
    )


class Command(BaseCommand):
    help = "Run the Interactive Brokers gateway worker (TWS connections + loopback bridge)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=None, help="bridge port (0: any free port)")
        parser.add_argument("--no-preconnect", action="store_true", help="connect accounts on first use only")

    def handle(self, *args, **options) -> None:
        url = urlsplit(settings.IB_GATEWAY_URL)
        host = url.hostname or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError(f"IB_GATEWAY_URL must be a loopback address, not {host}")
        port = options["port"] if options["port"] is not None else (url.port or 7510)
        gateway = gateway_from_settings().start()
        bridge = IbBridge(gateway, token=settings.IB_GATEWAY_TOKEN, host=host, port=port).start()
        if not options["no_preconnect"]:
            for account in BrokerAccount.objects.filter(broker_name=BrokerName.IBKR, is_active=True):
                try:
                    e = account_endpoint(account)
                except BrokerError as exc:
                    self.stderr.write(f"IB account {account.pk} skipped: {exc.message}")
                    continue
                gateway.connection(
                    e["key"], Endpoint(e["host"], e["port"], e["client_id"], e["account_code"])
                )
        self.stdout.write(f"ready {bridge.url}")
        self.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        bridge.stop()
        gateway.stop()
