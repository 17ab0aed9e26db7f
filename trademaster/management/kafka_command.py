"""What the Kafka consumer commands share: their stop options and the Kafka-is-on check."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class KafkaConsumerCommand(BaseCommand):
    def add_arguments(self, parser) -> None:
        parser.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
        parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")

    def execute(self, *args, **options):
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: Kafka is off.")
        return super().execute(*args, **options)
