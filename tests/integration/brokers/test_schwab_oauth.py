"""Connecting a Schwab account through Schwab's OAuth login, end to end: the Django test client for
our pages, the fake Schwab (real HTTP) for the authorize and token endpoints, and the refresh-token
state in the account's health."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from brokers.adapters.schwab import SchwabAdapter, refresh_expires_at
from brokers.domain.adapter import BrokerFatal, Health
from brokers.models import BrokerAccount, ConnectionStatus
from brokers.schwab_oauth import SchwabOAuthError, redirect_uri_check
from brokers.services import adapter_for, broker_account_health_check
from tests.fakes.schwab import FakeSchwab
from trademaster.crypto import decrypt

pytestmark = pytest.mark.django_db

CALLBACK = "http://127.0.0.1:8000/brokers/schwab/callback/"


@pytest.fixture
def fake():
    server = FakeSchwab().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def schwab_settings(settings, fake):
    settings.SCHWAB_TRADER_URL = fake.trader_url
    settings.SCHWAB_TOKEN_URL = fake.token_url
    settings.SCHWAB_AUTHORIZE_URL = fake.authorize_url
    settings.SCHWAB_REDIRECT_URI = CALLBACK
    settings.SCHWAB_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def account(trader, fake) -> BrokerAccount:
    """A Schwab account with its app key and secret entered, never logged in (no refresh token)."""
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="schwab",
        account_id=fake.account_number,
        label="Schwab",
        api_key_encrypted=fake.app_key,
        api_secret_encrypted=json.dumps({"app_secret": fake.app_secret, "refresh_token": ""}),
        sandbox_mode=False,
    )
    return BrokerAccount.objects.get(pk=created.pk)


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def start(client: Client, account: BrokerAccount) -> str:
    """Our "Connect to Schwab" page: the authorize URL it redirects to."""
    response = client.get(reverse("brokers:schwab-connect", args=[account.pk]))
    assert response.status_code == 302, response.content
    return response["Location"]


def schwab_login(authorize_url: str) -> str:
    """The user logs in at (fake) Schwab over real HTTP: the callback URL Schwab redirects to."""
    response = httpx.get(authorize_url, follow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def callback(client: Client, url: str):
    assert url.startswith(CALLBACK)
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def stored(account: BrokerAccount) -> dict:
    return json.loads(BrokerAccount.objects.get(pk=account.pk).api_secret_encrypted.reveal())


def connect(client: Client, account: BrokerAccount):
    return callback(client, schwab_login(start(client, account)))


def set_issued(account: BrokerAccount, issued: dt.datetime, *, keep_access: bool = True) -> None:
    secret = stored(account)
    secret["refresh_issued_at"] = issued.isoformat()
    if not keep_access:
        secret.pop("access_token"), secret.pop("access_expires_at")
    BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted=json.dumps(secret))


# --- the flow --------------------------------------------------------------------------------------
def test_connect_redirects_to_schwab_with_client_id_redirect_uri_and_state(trader, account, fake):
    url = start(browser(trader), account)

    assert url.startswith(fake.authorize_url + "?")
    params = query(url)
    assert (params["client_id"], params["redirect_uri"]) == (fake.app_key, CALLBACK)
    assert len(params["state"]) > 20
    assert stored(account)["oauth_state"]  # the pending one-time nonce, encrypted with the secret


def test_full_flow_stores_the_tokens_encrypted_and_the_adapter_then_works(trader, account, fake):
    client = browser(trader)
    before = timezone.now()

    response = connect(client, account)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Connected to Schwab" in page
    secret = stored(account)
    issued = dt.datetime.fromisoformat(secret["refresh_issued_at"])
    assert before <= issued <= timezone.now()
    assert refresh_expires_at(issued) - issued == dt.timedelta(days=7)
    assert refresh_expires_at(issued).strftime("%Y-%m-%d %H:%M") in page
    assert secret["refresh_token"] == fake.refresh_token
    assert secret["refresh_token"] != "rt-1"  # a new one from the code exchange
    assert secret["access_token"] in fake.access_tokens
    assert secret["app_secret"] == fake.app_secret
    assert "oauth_state" not in secret
    # the DB column holds ciphertext only
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_secret_encrypted FROM broker_accounts WHERE id = %s", [account.pk])
        [raw] = cursor.fetchone()
    assert fake.refresh_token not in raw and secret["access_token"] not in raw and "app_secret" not in raw
    assert json.loads(decrypt(raw)) == secret
    # the adapter starts from the stored access token, then refreshes with the new refresh token
    adapter = adapter_for(BrokerAccount.objects.get(pk=account.pk))
    assert adapter.account().cash == Decimal("50000.00")
    assert fake.token_requests == 1  # only the code exchange
    fake.expire_access_token()
    assert adapter.positions() == []
    assert fake.token_requests == 2
    assert adapter.health().status is Health.CONNECTED


def test_the_exchange_sends_the_code_and_redirect_uri_with_basic_auth(trader, account, fake):
    """The fake checks Basic auth, the code and the redirect_uri: a wrong app secret is refused."""
    client = browser(trader)
    login = schwab_login(start(client, account))
    secret = stored(account)
    secret["app_secret"] = "not-the-secret"
    BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted=json.dumps(secret))

    response = callback(client, login)

    assert response.status_code == 400
    assert "Schwab refused the authorization code (Client authentication failed)" in response.content.decode()
    assert stored(account).get("refresh_token") == ""


def test_redirect_uri_must_match_the_one_of_the_login(settings, trader, account, fake):
    client = browser(trader)
    login = schwab_login(start(client, account))
    settings.SCHWAB_REDIRECT_URI = "https://trademaster.example/brokers/schwab/callback/"

    response = client.get(f"{urlsplit(login).path}?{urlsplit(login).query}")

    assert response.status_code == 400
    assert "redirect_uri mismatch" in response.content.decode()


# --- refusals --------------------------------------------------------------------------------------
def test_bad_state_is_refused_clearly(trader, account, fake):
    client = browser(trader)
    login = schwab_login(start(client, account))
    forged = {**query(login), "state": "forged-state"}

    response = client.get(reverse("brokers:schwab-callback"), forged)

    assert response.status_code == 400
    assert "no valid state" in response.content.decode()
    assert fake.token_requests == 0


def test_replayed_callback_is_refused_and_never_reaches_schwab(trader, account, fake):
    client = browser(trader)
    login = schwab_login(start(client, account))
    assert callback(client, login).status_code == 200

    again = callback(client, login)

    assert again.status_code == 400
    assert "already used" in again.content.decode()
    assert fake.token_requests == 1


def test_a_newer_login_replaces_the_pending_one(trader, account, fake):
    client = browser(trader)
    first = schwab_login(start(client, account))
    second = schwab_login(start(client, account))

    assert callback(client, first).status_code == 400
    assert callback(client, second).status_code == 200


def test_reused_authorization_code_is_refused_by_schwab(trader, account, fake):
    client = browser(trader)
    first = schwab_login(start(client, account))
    assert callback(client, first).status_code == 200
    fresh_state = query(start(client, account))["state"]

    response = client.get(
        reverse("brokers:schwab-callback"), {"code": query(first)["code"], "state": fresh_state}
    )

    assert response.status_code == 400
    assert "Schwab refused the authorization code (authorization code invalid)" in response.content.decode()
    assert "single-use" in response.content.decode()


def test_expired_state_is_refused(settings, trader, account, fake):
    client = browser(trader)
    login = schwab_login(start(client, account))
    settings.SCHWAB_OAUTH_STATE_MAX_AGE_SECONDS = -1

    response = callback(client, login)

    assert response.status_code == 400
    assert "state expired" in response.content.decode()


def test_denied_consent_is_reported(trader, account, fake):
    fake.deny_consent = "access_denied"
    client = browser(trader)

    response = callback(client, schwab_login(start(client, account)))

    assert response.status_code == 400
    assert "Schwab did not authorize the connection (access_denied)" in response.content.decode()


def test_other_users_account_is_404_and_their_state_is_refused(trader, other_trader, account, fake):
    other = browser(other_trader)
    assert other.get(reverse("brokers:schwab-connect", args=[account.pk])).status_code == 404
    login = schwab_login(start(browser(trader), account))

    assert callback(other, login).status_code == 404
    assert fake.token_requests == 0
    assert callback(browser(trader), login).status_code == 200  # the owner's login still works


def test_staff_may_connect_any_account_but_only_with_their_own_state(make_user, trader, account, fake):
    staff = browser(make_user("ops", is_staff=True))
    login = schwab_login(start(staff, account))
    assert callback(staff, login).status_code == 200
    owners_login = schwab_login(start(browser(trader), account))

    response = callback(staff, owners_login)

    assert response.status_code == 400
    assert "started by another user" in response.content.decode()


def test_login_is_required(client, account):
    response = client.get(reverse("brokers:schwab-connect", args=[account.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_only_schwab_accounts_with_an_app_key_can_connect(trader, account, accounts):
    client = browser(trader)
    paper = client.get(reverse("brokers:schwab-connect", args=[accounts["PAPER-EQ-A"].pk]))
    assert (paper.status_code, "is not a Schwab account" in paper.content.decode()) == (400, True)
    BrokerAccount.objects.filter(pk=account.pk).update(api_key_encrypted=None)
    bare = client.get(reverse("brokers:schwab-connect", args=[account.pk]))
    assert (bare.status_code, "no Schwab app key and secret" in bare.content.decode()) == (400, True)


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://trademaster.example/brokers/schwab/callback/", True),
        ("http://127.0.0.1:8000/brokers/schwab/callback/", True),
        ("http://localhost:8000/brokers/schwab/callback/", False),
        ("http://trademaster.example/brokers/schwab/callback/", False),
    ],
)
def test_callback_must_be_https_except_on_127_0_0_1(uri, ok):
    if ok:
        assert redirect_uri_check(uri) == uri
    else:
        with pytest.raises(SchwabOAuthError, match="https"):
            redirect_uri_check(uri)


def test_a_plain_http_callback_is_refused_before_going_to_schwab(settings, trader, account):
    settings.SCHWAB_REDIRECT_URI = "http://trademaster.example/cb/"
    response = browser(trader).get(reverse("brokers:schwab-connect", args=[account.pk]))
    assert response.status_code == 400
    assert "needs an https callback" in response.content.decode()


def test_admin_change_page_of_a_schwab_account_links_to_connect(make_user, account, accounts):
    admin = browser(make_user("root", is_staff=True, is_superuser=True))
    link = reverse("brokers:schwab-connect", args=[account.pk])

    page = admin.get(reverse("admin:brokers_brokeraccount_change", args=[account.pk]))
    paper = admin.get(reverse("admin:brokers_brokeraccount_change", args=[accounts["PAPER-EQ-A"].pk]))

    assert page.status_code == 200 and link in page.content.decode()
    assert "Connect to Schwab" in page.content.decode()
    assert paper.status_code == 200 and "Connect to Schwab</a>" not in paper.content.decode()
    assert admin.get(reverse("admin:brokers_brokeraccount_add")).status_code == 200


# --- the refresh token's 7 days --------------------------------------------------------------------
def test_health_is_degraded_in_the_last_day_and_the_account_shows_it(trader, account, fake):
    connect(browser(trader), account)
    set_issued(account, timezone.now() - dt.timedelta(days=7) + dt.timedelta(hours=5, minutes=30))

    status = broker_account_health_check(account=BrokerAccount.objects.get(pk=account.pk))

    assert status == ConnectionStatus.DEGRADED
    row = BrokerAccount.objects.get(pk=account.pk)
    assert row.connection_status == ConnectionStatus.DEGRADED
    assert "refresh token expires in 5 h; re-authorize" in row.health_detail


def test_health_is_connected_before_the_last_day(trader, account, fake):
    connect(browser(trader), account)
    set_issued(account, timezone.now() - dt.timedelta(days=5))

    assert broker_account_health_check(account=BrokerAccount.objects.get(pk=account.pk)) == "CONNECTED"


def test_health_is_down_once_the_seven_days_passed_even_with_a_live_access_token(trader, account, fake):
    connect(browser(trader), account)
    set_issued(account, timezone.now() - dt.timedelta(days=7, minutes=1))
    requests_before = len(fake.requests)

    status = broker_account_health_check(account=BrokerAccount.objects.get(pk=account.pk))

    row = BrokerAccount.objects.get(pk=account.pk)
    assert (status, row.connection_status) == (ConnectionStatus.DOWN, ConnectionStatus.DOWN)
    assert row.health_detail.startswith("REAUTHORIZE: the Schwab refresh token expired on ")
    assert "re-authorize the Schwab account" in row.health_detail
    assert len(fake.requests) == requests_before  # it did not even ask Schwab
    set_issued(account, timezone.now() - dt.timedelta(days=7, minutes=1), keep_access=False)
    with pytest.raises(BrokerFatal) as err:
        SchwabAdapter(BrokerAccount.objects.get(pk=account.pk)).account()  # nor tries a refresh
    assert err.value.code == "REAUTHORIZE"
    assert fake.token_requests == 1


def test_health_is_down_when_schwab_refuses_the_refresh_token(trader, account, fake):
    connect(browser(trader), account)
    set_issued(account, timezone.now() - dt.timedelta(days=1), keep_access=False)
    fake.refresh_token_expired = True

    status = broker_account_health_check(account=BrokerAccount.objects.get(pk=account.pk))

    row = BrokerAccount.objects.get(pk=account.pk)
    assert status == ConnectionStatus.DOWN
    assert row.health_detail.startswith(
        "REAUTHORIZE: Schwab refused the refresh token (refresh token invalid)"
    )


def test_a_never_connected_account_is_down_asking_to_connect(account):
    report = adapter_for(account).health()
    assert report.status is Health.DOWN
    assert report.detail.startswith("NOT_AUTHORIZED:") and "Connect to Schwab" in report.detail


def test_an_adapter_built_before_a_new_login_picks_the_new_tokens_up(trader, account, fake):
    """Another process (the feed worker) keeps its adapter: on expiry it re-reads the account row."""
    client = browser(trader)
    connect(client, account)
    set_issued(account, timezone.now() - dt.timedelta(days=8))
    old = SchwabAdapter(BrokerAccount.objects.get(pk=account.pk))
    assert old.health().status is Health.DOWN

    connect(client, account)  # the user re-authorizes

    report = old.health()
    assert (report.status, report.detail) == (Health.CONNECTED, "")
    assert old.account().cash == Decimal("50000.00")
