from __future__ import annotations

from brokers.services import broker_accounts_provision_paper


def provision_paper_accounts(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        broker_accounts_provision_paper(user=instance)
