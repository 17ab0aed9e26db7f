"""``manage.py reconcile``: bring local open orders in line with every broker, and say what changed."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from orders.reconcile import reconcile_all


class Command(BaseCommand):
    help = "Compare every open order with its broker and repair what differs (fills, closes)."

    def handle(self, *args, **options) -> None:
        for report in reconcile_all():
            self.stdout.write(
                f"account {report.account_id}: {report.checked} checked, {len(report.repaired)} repaired, "
                f"{report.unreachable} unreachable"
            )
            for client_order_id, fixed in report.repaired.items():
                self.stdout.write(f"  {client_order_id}: {'; '.join(fixed)}")
