"""Evaluate live portfolio risk after fills (Kafka ``trading.orders.filled``) until stopped."""

from __future__ import annotations

from django.conf import settings

from trademaster.kafka import ORDERS_FILLED, RiskTally, consume, risk_events_handle, stop_on_signals
from trademaster.management.kafka_command import KafkaConsumerCommand


class Command(KafkaConsumerCommand):
    help = (
        "Consume trading.orders.filled and run the live risk rules for each user with a new fill "
        "(de-duplicated by event_id); alerts go to trading.risk.alerts through the outbox relay."
    )

    def handle(self, *args, **options) -> None:
        total = RiskTally()

        def handle_batch(records) -> None:
            tally = risk_events_handle([r.value for r in records])
            total.events += tally.events
            total.duplicates += tally.duplicates
            total.users_checked += tally.users_checked
            total.alerts.extend(tally.alerts)

        with stop_on_signals() as should_stop:
            count = consume(
                topic=ORDERS_FILLED,
                group_id=settings.KAFKA_RISK_GROUP,
                handle=handle_batch,
                max_messages=options["max_messages"],
                timeout=options["timeout"],
                should_stop=should_stop,
            )
        self.stdout.write(
            f"{count} message(s): {total.events} fill event(s), {total.duplicates} duplicate(s), "
            f"{total.users_checked} risk evaluation(s), {len(total.alerts)} open alert(s) raised or updated"
        )
