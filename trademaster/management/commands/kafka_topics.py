"""Create TradeMaster's Kafka topics (idempotent: existing topics are left as they are)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from kafka.errors import KafkaError

from trademaster.kafka import topics_ensure


class Command(BaseCommand):
    help = "Create the Kafka topics of ARCHITECTURE.md §5 (and the signals topics) that do not exist yet."

    def handle(self, *args, **options) -> None:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: Kafka is off.")
        try:
            results = topics_ensure()
        except KafkaError as exc:
            raise CommandError(f"Could not create the topics: {exc}") from exc
        for result in results:
            action = "created" if result.created else "exists "
            line = f"{action} {result.name} ({result.partitions} partitions)"
            if result.note:
                self.stdout.write(self.style.WARNING(f"{line}: {result.note}"))
            else:
                self.stdout.write(line)
        created = sum(r.created for r in results)
        self.stdout.write(f"{created} topic(s) created, {len(results) - created} already there")
