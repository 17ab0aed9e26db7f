"""Publish the outbox to the live stream and Kafka until stopped (SIGTERM / Ctrl-C)."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from trademaster.relay import BATCH, configured_sinks, relay_batch, relay_run


class Command(BaseCommand):
    help = "Relay outbox events to the live stream (Redis channel layer) and to Kafka, at least once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch", type=int, default=BATCH, help="events per batch (default 500)")
        parser.add_argument(
            "--idle-ms", type=int, default=50, help="how long to wait for new events when idle (ms)"
        )
        parser.add_argument("--once", action="store_true", help="relay what is pending, then exit")

    def handle(self, *args, **options) -> None:
        sinks = configured_sinks()
        names = ", ".join(s.name for s in sinks) or "none (nothing to publish to)"
        self.stdout.write(f"relaying the outbox to: {names}")
        if options["once"]:
            total = 0
            while count := relay_batch(sinks=sinks, limit=options["batch"]):
                total += count
            self.stdout.write(f"relayed {total} event(s)")
            return
        stop = {"now": False}

        def ask_to_stop(signum, frame) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)
        total = relay_run(
            sinks=sinks,
            idle_seconds=options["idle_ms"] / 1000,
            should_stop=lambda: stop["now"],
            batch=options["batch"],
        )
        self.stdout.write(f"stopped after relaying {total} event(s)")
