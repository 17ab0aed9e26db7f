"""Broker accounts entered through the API and the admin: credentials in, never out.

The adapters run against the loopback fakes (real HTTP), so a rotation is proved by the broker
refusing the old key and taking the new one.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from brokers.domain.adapter import BrokerFatal
from brokers.models import BrokerAccount
from brokers.services import adapter_for
from orders.models import OrderEvent
from tests.conftest import bearer_client
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db

BROKERS = "/api/v1/brokers/"
OLD_KEY, OLD_SECRET = "PKOLDKEY0001", "old-secret-3b1f9e2a7c"
NEW_KEY, NEW_SECRET = "PKNEWKEY0002", "new-secret-8d4c6a0f51"
BINANCE_KEY, BINANCE_SECRET = "bn-key-4c1d", "binance-hmac-secret-5e0a9f"


def raw_columns(account_id: int) -> tuple[str | None, str | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_encrypted, api_secret_encrypted FROM broker_accounts WHERE id = %s", [account_id]
        )
        return cursor.fetchone()


def decrypt(settings, token: str) -> str:
    return Fernet(settings.ENCRYPTION_KEYS[0].encode()).decrypt(token.encode()).decode()


def create(api, expect: int = 201, **fields) -> dict:
    body = {"broker_name": "alpaca", "account_id": "PA-1", "api_key": OLD_KEY, "api_secret": OLD_SECRET}
    body.update(fields)
    response = api.post(BROKERS, {k: v for k, v in body.items() if v is not None}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


@pytest.fixture
def fake_alpaca(settings):
    """A fake Alpaca that takes only the NEW key pair; the adapters point at it."""
    fake = FakeAlpaca(key=NEW_KEY, secret=NEW_SECRET).start()
    settings.ALPACA_TRADING_URL = fake.url
    settings.ALPACA_TIMEOUT_SECONDS = 2
    yield fake
    fake.stop()


# --- create -------------------------------------------------------------------------------------


def test_create_an_alpaca_account_stores_ciphertext_and_returns_no_secret(settings, api, trader):
    # when the trader adds an Alpaca account with its key pair
    response = api.post(
        BROKERS,
        {
            "broker_name": "alpaca",
            "account_id": "PA-1",
            "label": "My Alpaca",
            "sandbox_mode": False,
            "api_key": OLD_KEY,
            "api_secret": OLD_SECRET,
        },
        format="json",
    )
    # then it is theirs, live, unchecked yet, and the answer only says credentials are set
    assert response.status_code == 201, response.content
    body = response.json()
    assert {
        k: body[k] for k in ("broker_name", "account_id", "label", "sandbox_mode", "has_credentials")
    } == {
        "broker_name": "alpaca",
        "account_id": "PA-1",
        "label": "My Alpaca",
        "sandbox_mode": False,
        "has_credentials": True,
    }
    assert (body["connection_status"], body["health_detail"]) == ("DOWN", "not checked yet")
    for name in ("api_key", "api_secret", OLD_KEY, OLD_SECRET):
        assert name not in response.content.decode()
    account = BrokerAccount.objects.get(pk=body["id"])
    assert account.user == trader
    # and the columns hold Fernet tokens of the values, not the values
    stored_key, stored_secret = raw_columns(account.pk)
    assert OLD_SECRET not in stored_secret and OLD_KEY not in stored_key
    assert stored_secret.startswith("gAAAAA")
    assert (decrypt(settings, stored_key), decrypt(settings, stored_secret)) == (OLD_KEY, OLD_SECRET)
    # and it is listed with the paper accounts
    listed = api.get(BROKERS).json()["results"]
    assert [row["account_id"] for row in listed] == ["PAPER-EQ-A", "PAPER-EQ-B", "PAPER-CRYPTO", "PA-1"]


def test_create_binance_schwab_and_ibkr_accounts(settings, api):
    # when the trader adds one account of each other broker
    binance = create(api, broker_name="binance", account_id="BN-1", api_secret="binance-hmac-secret-5e")
    schwab = create(
        api,
        broker_name="schwab",
        account_id="SW-1",
        api_key="APPKEY-1",
        api_secret="schwab-app-secret-77",
        refresh_token="rt-schwab-refresh-99",
    )
    ibkr = create(
        api,
        broker_name="ibkr",
        account_id="DU123",
        api_key=None,
        api_secret=None,
        connection={"host": "127.0.0.1", "port": 4002, "client_id": 7},
    )
    # then each holds its credentials the way its adapter reads them
    assert [b["has_credentials"] for b in (binance, schwab, ibkr)] == [True, True, True]
    assert decrypt(settings, raw_columns(binance["id"])[1]) == "binance-hmac-secret-5e"
    key, secret = raw_columns(schwab["id"])
    assert decrypt(settings, key) == "APPKEY-1"
    assert json.loads(decrypt(settings, secret)) == {
        "app_secret": "schwab-app-secret-77",
        "refresh_token": "rt-schwab-refresh-99",
    }
    key, secret = raw_columns(ibkr["id"])
    assert json.loads(decrypt(settings, key)) == {"host": "127.0.0.1", "port": 4002, "client_id": 7}
    assert secret is None
    # and an ibkr account may also be added with no connection settings (the defaults apply)
    bare = create(api, broker_name="ibkr", account_id="DU124", api_key=None, api_secret=None)
    assert bare["has_credentials"] is False


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"api_secret": None}, {"api_secret": ["Alpaca needs its API secret key."]}),
        ({"api_key": None}, {"api_key": ["Alpaca needs its API key ID."]}),
        (
            {"broker_name": "binance", "api_secret": None},
            {"api_secret": ["Binance needs its API secret (HMAC)."]},
        ),
        ({"broker_name": "schwab", "api_secret": None}, {"api_secret": ["Schwab needs its app secret."]}),
        ({"broker_name": "etrade"}, {"broker_name": ['"etrade" is not a valid choice.']}),
        (
            {"broker_name": "paper", "api_key": None, "api_secret": None},
            {
                "broker_name": [
                    "Paper accounts come with every user (PAPER-EQ-A, PAPER-EQ-B, PAPER-CRYPTO); "
                    "they cannot be added here."
                ]
            },
        ),
        (
            {"api_secret": "two words"},
            {"api_secret": ["The API secret key may hold only printable characters, no blanks."]},
        ),
        ({"api_secret": ""}, {"api_secret": ["The API secret key may not be blank."]}),
        (
            {"broker_name": "ibkr", "api_key": None},
            {
                "api_secret": [
                    "Interactive Brokers takes no API key or secret: TWS / IB Gateway logs in itself."
                ]
            },
        ),
        (
            {"broker_name": "ibkr", "api_key": None, "api_secret": None, "connection": {"port": 0}},
            {"connection": ["port must be a whole number from 1 to 65535."]},
        ),
        ({"refresh_token": "rt-1"}, {"refresh_token": ["Alpaca takes no refresh token."]}),
        ({"account_id": ""}, {"account_id": ["This field may not be blank."]}),
    ],
)
def test_create_with_bad_fields_is_400_with_field_messages(api, fields, errors):
    # when the input misses a secret, names an unknown broker or sends what the broker does not take
    body = create(api, expect=400, **fields)
    # then the answer names each field, echoes no secret, and nothing is created
    assert body["code"] == "validation_error"
    assert body["fields"] == errors
    assert not BrokerAccount.objects.exclude(broker_name="paper").exists()


def test_create_twice_is_a_field_error(api):
    create(api)
    body = create(api, expect=400)
    assert body["fields"] == {"account_id": ["You already have a alpaca account PA-1."]}
    assert BrokerAccount.objects.filter(account_id="PA-1").count() == 1


def test_read_only_token_gets_403_and_changes_nothing(api, trader):
    account_id = create(api)["id"]
    before = raw_columns(account_id)
    reader = bearer_client(trader, scopes=("read",))
    # when a read-only token tries to create, rotate or test
    responses = [
        reader.post(
            BROKERS, {"broker_name": "alpaca", "account_id": "PA-2", "api_key": "K", "api_secret": "S"}
        ),
        reader.patch(f"{BROKERS}{account_id}/", {"api_secret": NEW_SECRET}),
        reader.post(f"{BROKERS}{account_id}/test-connection/"),
    ]
    # then each is refused for the missing scope, and reading still works
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert responses[0].json() == {
        "code": "permission_denied",
        "message": "This token lacks the 'trade' scope.",
    }
    assert raw_columns(account_id) == before
    assert not BrokerAccount.objects.filter(account_id="PA-2").exists()
    assert reader.get(f"{BROKERS}{account_id}/").status_code == 200


def test_other_users_get_404(api, other_api):
    account_id = create(api)["id"]
    before = raw_columns(account_id)
    responses = [
        other_api.get(f"{BROKERS}{account_id}/"),
        other_api.patch(f"{BROKERS}{account_id}/", {"api_secret": NEW_SECRET}, format="json"),
        other_api.post(f"{BROKERS}{account_id}/test-connection/"),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert {r.json()["code"] for r in responses} == {"broker_not_found"}
    assert raw_columns(account_id) == before


# --- rotate and clear ---------------------------------------------------------------------------


def test_patch_without_credentials_keeps_them(api):
    account_id = create(api)["id"]
    before = raw_columns(account_id)
    response = api.patch(
        f"{BROKERS}{account_id}/", {"label": "renamed", "sandbox_mode": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["label"], response.json()["sandbox_mode"]) == ("renamed", False)
    assert raw_columns(account_id) == before


def test_rotating_only_the_secret_keeps_the_key(settings, api):
    account_id = create(api)["id"]
    stored_key, stored_secret = raw_columns(account_id)
    response = api.patch(f"{BROKERS}{account_id}/", {"api_secret": NEW_SECRET}, format="json")
    assert response.status_code == 200, response.content
    key_after, secret_after = raw_columns(account_id)
    assert key_after == stored_key
    assert secret_after != stored_secret
    assert decrypt(settings, secret_after) == NEW_SECRET


def test_rotating_the_schwab_app_secret_keeps_the_tokens(settings, api):
    # given a Schwab account added before its OAuth login: the app secret alone
    account_id = create(api, broker_name="schwab", account_id="SW-1", api_secret="schwab-app-secret-77")["id"]
    assert json.loads(decrypt(settings, raw_columns(account_id)[1])) == {"app_secret": "schwab-app-secret-77"}
    # and the tokens the login stored next to it
    login = {
        "app_secret": "schwab-app-secret-77",
        "refresh_token": "rt-login",
        "refresh_issued_at": "2026-12-06T04:00:00+00:00",
        "access_token": "at-login",
        "access_expires_at": "2026-12-06T04:30:00+00:00",
    }
    BrokerAccount.objects.filter(pk=account_id).update(api_secret_encrypted=json.dumps(login))
    # when the app secret is rotated, the tokens stay
    api.patch(f"{BROKERS}{account_id}/", {"api_secret": "schwab-app-secret-88"}, format="json")
    assert json.loads(decrypt(settings, raw_columns(account_id)[1])) == {
        **login,
        "app_secret": "schwab-app-secret-88",
    }
    # and a refresh token set by hand replaces the login's tokens, keeping the app secret
    api.patch(f"{BROKERS}{account_id}/", {"refresh_token": "rt-2"}, format="json")
    assert json.loads(decrypt(settings, raw_columns(account_id)[1])) == {
        "app_secret": "schwab-app-secret-88",
        "refresh_token": "rt-2",
    }


def test_clear_removes_the_credentials_and_new_ones_need_the_pair(api):
    account_id = create(api)["id"]
    # clearing together with new values is ambiguous
    mixed = api.patch(f"{BROKERS}{account_id}/", {"clear_credentials": True, "api_key": "K"}, format="json")
    assert mixed.status_code == 400
    assert mixed.json()["fields"] == {
        "clear_credentials": ["Clear the credentials or send new ones, not both."]
    }
    # when the trader clears them
    cleared = api.patch(f"{BROKERS}{account_id}/", {"clear_credentials": True}, format="json")
    # then nothing is stored
    assert (cleared.status_code, cleared.json()["has_credentials"]) == (200, False)
    assert raw_columns(account_id) == (None, None)
    # and a key alone cannot be set again without its secret
    half = api.patch(f"{BROKERS}{account_id}/", {"api_key": NEW_KEY}, format="json")
    assert (half.status_code, half.json()["fields"]) == (
        400,
        {"api_secret": ["Alpaca needs its API secret key."]},
    )


def test_broker_name_and_account_id_cannot_change(api):
    account_id = create(api)["id"]
    response = api.patch(
        f"{BROKERS}{account_id}/", {"broker_name": "binance", "account_id": "X"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "account_id": ["Cannot be changed: add another account instead."],
        "broker_name": ["Cannot be changed: add another account instead."],
    }


# --- test connection and rotation against the fake -------------------------------------------


def test_rotation_makes_the_adapter_use_the_new_key(api, fake_alpaca):
    # given an account with the old key pair, which the broker refuses
    account_id = create(api)["id"]
    url = f"{BROKERS}{account_id}/test-connection/"
    refused = api.post(url)
    assert refused.status_code == 200, refused.content
    assert (refused.json()["status"], refused.json()["latency_ms"]) == ("DOWN", None)
    assert refused.json()["message"].startswith(
        "health check failed: Alpaca refused the API key (unauthorized): check the key pair"
    )
    old_adapter = adapter_for(BrokerAccount.objects.get(pk=account_id))
    # when the trader rotates to the new pair
    rotated = api.patch(
        f"{BROKERS}{account_id}/", {"api_key": NEW_KEY, "api_secret": NEW_SECRET}, format="json"
    )
    assert rotated.status_code == 200
    # then the cached adapter is dropped and the next call uses the new pair
    assert adapter_for(BrokerAccount.objects.get(pk=account_id)) is not old_adapter
    accepted = api.post(url).json()
    assert (accepted["status"], accepted["message"]) == ("CONNECTED", "market open")
    assert isinstance(accepted["latency_ms"], int) and accepted["latency_ms"] >= 0
    # and the account sync brought the broker's figures
    assert (accepted["account"]["cash"], accepted["account"]["connection_status"]) == (
        "100000.00000000",
        "CONNECTED",
    )
    keys_seen = [r for r in fake_alpaca.requests if r[1] == "/v2/account"]
    assert len(keys_seen) == 1  # the refused key never got as far as the account


def test_a_rotation_made_by_another_process_is_picked_up_on_the_next_call(api, fake_alpaca):
    # given an adapter cached in this process (a worker) for the old, refused pair
    account_id = create(api)["id"]
    old_adapter = adapter_for(BrokerAccount.objects.get(pk=account_id))
    with pytest.raises(BrokerFatal):
        old_adapter.account()
    # when another process (the web server) stores the new pair: only the row changes here
    BrokerAccount.objects.filter(pk=account_id).update(
        api_key_encrypted=NEW_KEY, api_secret_encrypted=NEW_SECRET
    )
    # then this process builds a new adapter from the row it reads next, and the broker accepts it
    account = BrokerAccount.objects.get(pk=account_id)
    adapter = adapter_for(account)
    assert adapter is not old_adapter
    assert adapter.account().cash == Decimal("100000")
    assert adapter_for(BrokerAccount.objects.get(pk=account_id)) is adapter  # unchanged: cached


def test_test_connection_against_a_stopped_broker(settings, api, trader):
    # given an account whose broker is not there (a fake started and stopped: nothing listens)
    gone = FakeAlpaca(key=NEW_KEY, secret=NEW_SECRET).start()
    gone.stop()
    settings.ALPACA_TRADING_URL = gone.url
    settings.ALPACA_TIMEOUT_SECONDS = 2
    account_id = create(api, api_key=NEW_KEY, api_secret=NEW_SECRET)["id"]
    # when the trader tests the connection
    response = api.post(f"{BROKERS}{account_id}/test-connection/")
    # then the answer says the broker cannot be reached, and the account is marked so
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["latency_ms"]) == ("DEGRADED", None)
    assert body["message"].startswith("health check failed: cannot reach Alpaca at http://127.0.0.1:")
    assert body["account"]["connection_status"] == "DEGRADED"
    assert BrokerAccount.objects.get(pk=account_id).connection_status == "DEGRADED"
    event = OutboxEvent.objects.filter(type="BROKER_STATUS", account_id=account_id).get()
    assert (event.payload["old_status"], event.payload["new_status"]) == ("DOWN", "DEGRADED")


@pytest.fixture
def fake_binance(settings):
    fake = FakeBinance(BINANCE_KEY, BINANCE_SECRET)
    settings.BINANCE_REST_URL = fake.start()
    settings.BINANCE_TIMEOUT_SECONDS = 2
    yield fake
    fake.stop()


def test_the_secret_never_leaves_in_responses_events_or_logs(api, fake_alpaca, fake_binance, caplog):
    """Whole sessions of two accounts, logged at DEBUG: the secrets appear nowhere."""
    caplog.set_level(logging.DEBUG)
    responses = []

    def call(method: str, url: str, body: dict | None = None):
        response = getattr(api, method)(url, body, format="json")
        responses.append(response)
        return response

    # an Alpaca account: created, refused, rotated, accepted
    alpaca = call(
        "post",
        BROKERS,
        {"broker_name": "alpaca", "account_id": "PA-1", "api_key": OLD_KEY, "api_secret": OLD_SECRET},
    )
    alpaca_url = f"{BROKERS}{alpaca.json()['id']}/"
    call("post", f"{alpaca_url}test-connection/")
    call("patch", alpaca_url, {"api_key": NEW_KEY, "api_secret": NEW_SECRET})
    call("post", f"{alpaca_url}test-connection/")
    call("patch", alpaca_url, {"api_secret": "x y"})
    # a Binance account that trades: its order fills at once
    binance = call(
        "post",
        BROKERS,
        {
            "broker_name": "binance",
            "account_id": "BN-1",
            "api_key": BINANCE_KEY,
            "api_secret": BINANCE_SECRET,
        },
    )
    call("post", f"{BROKERS}{binance.json()['id']}/test-connection/")
    order = call(
        "post",
        "/api/v1/orders/",
        {
            "symbol": "BTC/USD",
            "side": "BUY",
            "order_type": "MARKET",
            "quantity": "0.01",
            "time_in_force": "GTC",
            "broker_id": binance.json()["id"],
        },
    )
    assert order.status_code == 201, order.content
    call("get", f"/api/v1/orders/{order.json()['id']}/events/")
    call("get", BROKERS)
    call("get", alpaca_url)
    assert [r.status_code for r in responses] == [201, 200, 200, 200, 400, 201, 200, 201, 200, 200, 200]
    assert [r.json()["status"] for r in responses if "test-connection" in r.request["PATH_INFO"]] == [
        "DOWN",
        "CONNECTED",
        "CONNECTED",
    ]
    assert order.json()["status"] == "FILLED"
    stored = [t for pk in (alpaca.json()["id"], binance.json()["id"]) for t in raw_columns(pk) if t]
    secrets = [OLD_SECRET, NEW_SECRET, BINANCE_SECRET, *stored]
    # nowhere in the answers
    for response in responses:
        body = response.content.decode()
        for needle in (*secrets, OLD_KEY, NEW_KEY, BINANCE_KEY):
            assert needle not in body
    # nor in the audit trail or the outbox
    rows = json.dumps(
        [
            *OrderEvent.objects.values("event_type", "data", "actor_label"),
            *OutboxEvent.objects.values("type", "payload"),
        ],
        default=str,
    )
    assert OrderEvent.objects.filter(event_type="FILL").exists()
    assert OutboxEvent.objects.filter(type="BROKER_STATUS").exists()
    for needle in (*secrets, OLD_KEY, NEW_KEY, BINANCE_KEY):
        assert needle not in rows
    # nor in any log record, formatted or raw
    assert any(r.name == "httpx" for r in caplog.records)  # the broker calls were logged at all
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    for needle in secrets:
        assert needle not in logged


# --- the admin ----------------------------------------------------------------------------------


def test_admin_form_is_write_only_and_rotates(settings, admin_client, api):
    account_id = create(api)["id"]
    url = f"/admin/brokers/brokeraccount/{account_id}/change/"
    page = admin_client.get(url).content.decode()
    # the credential inputs are empty password fields and the sandbox flag is there
    assert '<input type="password" name="api_key"' in page
    assert '<input type="password" name="api_secret"' in page
    assert '<input type="password" name="refresh_token"' in page
    assert 'name="sandbox_mode"' in page
    for needle in (OLD_KEY, OLD_SECRET, *raw_columns(account_id)):
        assert needle not in page
    account = BrokerAccount.objects.get(pk=account_id)
    form = {
        "user": account.user_id,
        "broker_name": "alpaca",
        "account_id": "PA-1",
        "label": "Alpaca",
        "sandbox_mode": "on",
        "is_active": "on",
        "buying_power": "0",
        "cash": "0",
        "total_value": "0",
        "connection_status": "DOWN",
    }
    stored_key = raw_columns(account_id)[0]
    # when staff type only a new secret
    response = admin_client.post(url, {**form, "api_secret": NEW_SECRET})
    assert response.status_code == 302, response.content.decode()[:3000]
    # then the key is kept and the secret replaced
    assert raw_columns(account_id)[0] == stored_key
    assert decrypt(settings, raw_columns(account_id)[1]) == NEW_SECRET
    # and a Schwab-only field on an Alpaca account is refused with the broker's rule
    refused = admin_client.post(url, {**form, "refresh_token": "rt-1"})
    assert refused.status_code == 200
    assert "Alpaca takes no refresh token." in refused.content.decode()


def test_admin_add_needs_the_pair(admin_client, trader):
    response = admin_client.post(
        "/admin/brokers/brokeraccount/add/",
        {
            "user": trader.pk,
            "broker_name": "binance",
            "account_id": "BN-9",
            "label": "",
            "sandbox_mode": "on",
            "is_active": "on",
            "buying_power": "0",
            "cash": "0",
            "total_value": "0",
            "connection_status": "DOWN",
            "api_key": "K-1",
        },
    )
    assert response.status_code == 200
    assert "Binance needs its API secret (HMAC)." in response.content.decode()
    assert not BrokerAccount.objects.filter(account_id="BN-9").exists()


def test_admin_test_connection_action(admin_client, api, fake_alpaca):
    account_id = create(api, api_key=NEW_KEY, api_secret=NEW_SECRET)["id"]
    response = admin_client.post(
        "/admin/brokers/brokeraccount/",
        {"action": "test_connection", "_selected_action": [account_id]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1
    assert messages[0].startswith("alpaca:PA-1: CONNECTED (")
    assert messages[0].endswith("ms): market open")


def test_admin_clear_and_paper_accounts(admin_client, api, trader, accounts):
    # staff clear an Alpaca account's credentials with the checkbox
    account_id = create(api)["id"]
    account = BrokerAccount.objects.get(pk=account_id)
    form = {
        "user": trader.pk,
        "broker_name": "alpaca",
        "account_id": "PA-1",
        "label": "",
        "sandbox_mode": "on",
        "is_active": "on",
        "buying_power": "0",
        "cash": "0",
        "total_value": "0",
        "connection_status": account.connection_status,
    }
    url = f"/admin/brokers/brokeraccount/{account_id}/change/"
    assert admin_client.post(url, {**form, "clear_credentials": "on"}).status_code == 302
    assert raw_columns(account_id) == (None, None)
    # and staff may still add a paper account (the API may not), without credentials
    venue = accounts["PAPER-EQ-A"].paper_venue_id
    added = admin_client.post(
        "/admin/brokers/brokeraccount/add/",
        {**form, "broker_name": "paper", "account_id": "PAPER-X", "paper_venue": venue},
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    assert raw_columns(BrokerAccount.objects.get(account_id="PAPER-X").pk) == (None, None)
