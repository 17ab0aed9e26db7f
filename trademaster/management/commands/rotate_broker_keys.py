"""Re-encrypt every stored broker credential under the first of TRADEMASTER_ENCRYPTION_KEYS.

Rotation: prepend a new key to TRADEMASTER_ENCRYPTION_KEYS, restart, run this command, then drop
the old key. A credential no configured key can decrypt stops the command with its account id.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from brokers.models import BrokerAccount
from trademaster.crypto import DecryptionError, Sealed, rotate


class Command(BaseCommand):
    help = "Re-encrypt broker credentials under the newest encryption key."

    def handle(self, *args, **options) -> None:
        rotated = 0
        with transaction.atomic():
            for account in BrokerAccount.objects.select_for_update().exclude(api_key_encrypted=None):
                for field in ("api_key_encrypted", "api_secret_encrypted"):
                    value = getattr(account, field)
                    if isinstance(value, Sealed):
                        try:
                            setattr(account, field, Sealed(rotate(value.token)))
                        except DecryptionError as exc:
                            raise CommandError(f"broker account {account.pk}: {exc}") from None
                account.save(update_fields=["api_key_encrypted", "api_secret_encrypted"])
                rotated += 1
        self.stdout.write(f"re-encrypted the credentials of {rotated} broker accounts")
