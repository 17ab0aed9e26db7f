"""Turn trading signals (Kafka ``trading.signals``) into orders until stopped (SIGTERM / Ctrl-C)."""

from __future__ import annotations

from django.conf import settings

from trademaster.kafka import SIGNALS, SignalConsumer, consume, stop_on_signals
from trademaster.management.kafka_command import KafkaConsumerCommand


class Command(KafkaConsumerCommand):
    help = (
        "Consume trading.signals: each signal becomes an order (idempotent on its signal_id); "
        "malformed ones go to trading.signals.dlq with the reasons. Offsets are committed after processing."
    )

    def handle(self, *args, **options) -> None:
        handler = SignalConsumer()
        try:
            with stop_on_signals() as should_stop:
                count = consume(
                    topic=SIGNALS,
                    group_id=settings.KAFKA_SIGNALS_GROUP,
                    handle=handler.handle,
                    max_messages=options["max_messages"],
                    timeout=options["timeout"],
                    should_stop=should_stop,
                )
        finally:
            handler.close()
        tally = handler.tally
        self.stdout.write(
            f"{count} signal(s): {tally.placed} placed, {tally.redelivered} already placed, "
            f"{tally.dead_lettered} dead-lettered"
        )
