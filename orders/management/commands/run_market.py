"""Run the simulated market: tick prices, fill resting paper orders, mark positions."""

from __future__ import annotations

import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from orders.services import market_tick


class Command(BaseCommand):
    help = "Run the paper market: one tick every MARKET_TICK_MS milliseconds until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--ticks", type=int, default=0, help="stop after this many ticks (0: run until stopped)"
        )
        parser.add_argument("--interval-ms", type=int, default=settings.MARKET_TICK_MS)

    def handle(self, *args, ticks: int, interval_ms: int, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write(f"paper market running, one tick every {interval_ms} ms")
        done = 0
        while not stop.is_set() and (ticks == 0 or done < ticks):
            started = time.monotonic()
            applied = market_tick()
            done += 1
            if applied and options.get("verbosity", 1) > 1:
                self.stdout.write(f"tick {done}: {applied} order updates")
            # the market's clock: wait out the rest of the interval (or until asked to stop)
            stop.wait(max(0, interval_ms / 1000 - (time.monotonic() - started)))
