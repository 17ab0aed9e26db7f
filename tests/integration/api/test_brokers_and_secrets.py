"""Broker credentials: encrypted at rest, never returned, never shown, and key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.db import connection

from brokers.models import BrokerAccount
from trademaster import crypto
from trademaster.crypto import DecryptionError, Sealed

pytestmark = pytest.mark.django_db

API_KEY = "PK-PLAINTEXT-KEY-7f3a9c"
API_SECRET = "sk-live-PLAINTEXT-SECRET-d41d8cd98f00b204"
SECRET_FIELDS = ("api_key_encrypted", "api_secret_encrypted")


@pytest.fixture(autouse=True)
def _fresh_fernet_cache():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def use_keys(settings, *keys: str) -> None:
    settings.ENCRYPTION_KEYS = list(keys)
    crypto._fernet.cache_clear()


def new_key() -> str:
    return Fernet.generate_key().decode()


def raw_columns(account_id: int) -> tuple[str | None, str | None]:
    """The credential columns as stored, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_encrypted, api_secret_encrypted FROM broker_accounts WHERE id = %s", [account_id]
        )
        return cursor.fetchone()


@pytest.fixture
def with_credentials(accounts) -> BrokerAccount:
    """Venue A's account with credentials set the way the admin form sets them: plaintext assigned."""
    account = accounts["PAPER-EQ-A"]
    account.api_key_encrypted = API_KEY
    account.api_secret_encrypted = API_SECRET
    account.save()
    return account


# --- the API --------------------------------------------------------------------------------------


def test_brokers_list_never_returns_credentials(api, accounts, with_credentials):
    # when the trader lists and fetches broker accounts
    listed = api.get("/api/v1/brokers/")
    detail = api.get(f"/api/v1/brokers/{with_credentials.pk}/")
    # then only has_credentials tells the credentials apart
    assert (listed.status_code, detail.status_code) == (200, 200)
    rows = {row["account_id"]: row for row in listed.json()["results"]}
    assert {k: v["has_credentials"] for k, v in rows.items()} == {
        "PAPER-EQ-A": True,
        "PAPER-EQ-B": False,
        "PAPER-CRYPTO": False,
    }
    assert detail.json() == rows["PAPER-EQ-A"]
    assert set(detail.json()) == {
        "id",
        "broker_name",
        "account_id",
        "label",
        "sandbox_mode",
        "is_active",
        "buying_power",
        "cash",
        "total_value",
        "connection_status",
        "latency_ms",
        "last_heartbeat_at",
        "health_detail",
        "error_rate",
        "asset_classes",
        "has_credentials",
        "created_at",
        "updated_at",
    }
    # and no part of any body holds the field names, the secrets or their ciphertexts
    stored_key, stored_secret = raw_columns(with_credentials.pk)
    for response in (listed, detail):
        body = response.content.decode()
        for needle in (
            *SECRET_FIELDS,
            "api_key",
            "api_secret",
            API_KEY,
            API_SECRET,
            stored_key,
            stored_secret,
        ):
            assert needle not in body


def test_has_credentials_is_false_until_set(api, accounts):
    rows = api.get("/api/v1/brokers/").json()["results"]
    assert [row["has_credentials"] for row in rows] == [False, False, False]


# --- at rest ----------------------------------------------------------------------------------------


def test_the_column_holds_a_fernet_token_not_the_plaintext(settings, with_credentials):
    # when the stored columns are read with plain SQL
    stored_key, stored_secret = raw_columns(with_credentials.pk)
    # then each is a Fernet token of its own value under the current key
    fernet = Fernet(settings.ENCRYPTION_KEYS[0].encode())
    for stored, plaintext in ((stored_key, API_KEY), (stored_secret, API_SECRET)):
        assert stored != plaintext
        assert plaintext not in stored
        assert stored.startswith("gAAAAA")
        assert fernet.decrypt(stored.encode()).decode() == plaintext
    # and two encryptions of one value differ (random IV)
    assert crypto.encrypt(API_SECRET) != stored_secret


def test_reading_back_gives_a_sealed_value(with_credentials):
    # when the account is loaded again
    account = BrokerAccount.objects.get(pk=with_credentials.pk)
    # then the credentials are sealed: revealed on request, hidden everywhere else
    assert isinstance(account.api_key_encrypted, Sealed)
    assert isinstance(account.api_secret_encrypted, Sealed)
    assert account.api_key_encrypted.reveal() == API_KEY
    assert account.api_secret_encrypted.reveal() == API_SECRET
    for shown in (
        repr(account.api_secret_encrypted),
        str(account.api_secret_encrypted),
        f"{account.api_secret_encrypted}",
        repr(account.__dict__),
        repr(list(BrokerAccount.objects.filter(pk=account.pk).values())),
    ):
        assert API_SECRET not in shown
        assert API_KEY not in shown
    assert repr(account.api_secret_encrypted) == "Sealed('********')"
    assert account.has_credentials is True


def test_saving_a_loaded_account_keeps_the_ciphertext(with_credentials):
    # given the stored token
    before = raw_columns(with_credentials.pk)
    # when a loaded account is saved again (its credentials are Sealed values)
    account = BrokerAccount.objects.get(pk=with_credentials.pk)
    account.label = "renamed"
    account.save()
    # then the stored token is kept as is, not encrypted a second time
    assert raw_columns(with_credentials.pk) == before
    assert BrokerAccount.objects.get(pk=account.pk).api_secret_encrypted.reveal() == API_SECRET


def test_serialization_masks_the_credentials(with_credentials):
    dumped = serializers.serialize("json", BrokerAccount.objects.filter(pk=with_credentials.pk))
    stored_key, stored_secret = raw_columns(with_credentials.pk)
    for needle in (API_KEY, API_SECRET, stored_key, stored_secret):
        assert needle not in dumped
    assert '"api_secret_encrypted": "********"' in dumped


def test_empty_and_null_credentials_stay_as_they_are(accounts):
    account = accounts["PAPER-EQ-B"]
    account.api_key_encrypted = ""
    account.api_secret_encrypted = None
    account.save()
    assert raw_columns(account.pk) == ("", None)
    loaded = BrokerAccount.objects.get(pk=account.pk)
    assert (loaded.api_key_encrypted, loaded.api_secret_encrypted, loaded.has_credentials) == (
        "",
        None,
        False,
    )


# --- wrong keys and rotation ------------------------------------------------------------------------


def test_a_wrong_key_raises_a_clear_error_and_never_returns_ciphertext(settings, api, with_credentials):
    # given the credentials stored under the current key
    stored_key, stored_secret = raw_columns(with_credentials.pk)
    # when the service runs with a different key
    use_keys(settings, new_key())
    account = BrokerAccount.objects.get(pk=with_credentials.pk)
    # then revealing fails with a message that names the configuration, not the data
    with pytest.raises(DecryptionError) as excinfo:
        account.api_secret_encrypted.reveal()
    message = str(excinfo.value)
    assert message == (
        "a stored broker credential cannot be decrypted with the configured "
        "TRADEMASTER_ENCRYPTION_KEYS (wrong or rotated-out key)"
    )
    assert stored_secret not in message
    assert stored_key not in message
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ is True
    with pytest.raises(DecryptionError):
        account.api_key_encrypted.reveal()
    # and listing accounts still works, since loading never decrypts
    response = api.get("/api/v1/brokers/")
    assert response.status_code == 200
    assert response.json()["results"][0]["has_credentials"] is True
    assert stored_secret not in response.content.decode()


def test_rotation_new_key_first_old_still_decrypts(settings):
    # given a secret encrypted under the old key, as a deployment before the rotation stored it
    old, new = new_key(), new_key()
    use_keys(settings, old)
    token = crypto.encrypt(API_SECRET)
    # when the new key is prepended
    use_keys(settings, new, old)
    # then the old value still reveals
    assert Sealed(token).reveal() == API_SECRET
    # and new values are encrypted under the new key
    fresh = crypto.encrypt(API_SECRET)
    assert Fernet(new.encode()).decrypt(fresh.encode()).decode() == API_SECRET
    # and rotate() re-encrypts the old value under the new key, so the old key can be dropped
    rotated = crypto.rotate(token)
    use_keys(settings, new)
    assert Sealed(rotated).reveal() == API_SECRET
    with pytest.raises(DecryptionError):
        Sealed(token).reveal()


def test_rotation_keeps_stored_accounts_readable(settings, accounts):
    # given credentials stored under the old key
    old, new = new_key(), new_key()
    use_keys(settings, old)
    account = accounts["PAPER-EQ-B"]
    account.api_secret_encrypted = API_SECRET
    account.save()
    # when the keys become [new, old]
    use_keys(settings, new, old)
    # then the stored account still reveals its secret
    assert BrokerAccount.objects.get(pk=account.pk).api_secret_encrypted.reveal() == API_SECRET


def test_rotate_with_no_matching_key_raises(settings):
    use_keys(settings, new_key())
    token = crypto.encrypt(API_SECRET)
    use_keys(settings, new_key())
    with pytest.raises(DecryptionError, match="cannot be decrypted for rotation"):
        crypto.rotate(token)


# --- the admin ------------------------------------------------------------------------------------


def test_admin_change_page_does_not_show_the_secret(admin_client, with_credentials):
    # when staff open the account in the admin (its form and its list)
    change = admin_client.get(f"/admin/brokers/brokeraccount/{with_credentials.pk}/change/")
    changelist = admin_client.get("/admin/brokers/brokeraccount/")
    # then neither page holds the secrets or their ciphertexts
    assert (change.status_code, changelist.status_code) == (200, 200)
    stored_key, stored_secret = raw_columns(with_credentials.pk)
    for response in (change, changelist):
        page = response.content.decode()
        for needle in (API_KEY, API_SECRET, stored_key, stored_secret):
            assert needle not in page
    # and the credential inputs are empty password fields
    page = change.content.decode()
    assert '<input type="password" name="api_key"' in page
    assert '<input type="password" name="api_secret"' in page


def test_admin_save_with_blank_credentials_keeps_them(admin_client, with_credentials):
    # given the stored tokens
    before = raw_columns(with_credentials.pk)
    url = f"/admin/brokers/brokeraccount/{with_credentials.pk}/change/"
    # when staff save the form without typing credentials
    response = admin_client.post(
        url,
        {
            "user": with_credentials.user_id,
            "broker_name": "paper",
            "account_id": "PAPER-EQ-A",
            "label": "Venue A",
            "paper_venue": with_credentials.paper_venue_id,
            "sandbox_mode": "on",
            "is_active": "on",
            "buying_power": "100000",
            "cash": "100000",
            "total_value": "100000",
            "connection_status": "CONNECTED",
            "api_key": "",
            "api_secret": "",
        },
    )
    # then the credentials are kept as they were
    assert response.status_code == 302, response.content.decode()[:2000]
    assert raw_columns(with_credentials.pk) == before
    assert BrokerAccount.objects.get(pk=with_credentials.pk).label == "Venue A"
