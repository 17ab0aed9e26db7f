"""Run the order-update feeds of the real brokers' accounts (streams and REST polling)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from orders.feeds import broker_feeds_run


class Command(BaseCommand):
    help = (
        "Apply later order updates (fills, cancels, expiries) from every active non-paper broker "
        "account: streams where the adapter has one, REST polling otherwise. Runs until SIGTERM/SIGINT."
    )

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write("broker order-update feeds running (SIGTERM or Ctrl-C stops them)")
        broker_feeds_run(stop=stop)
        self.stdout.write("broker order-update feeds stopped")
