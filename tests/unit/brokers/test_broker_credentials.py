"""The per-broker credential rules (brokers.domain.credentials): pure, no database."""

from __future__ import annotations

import json

import pytest

from brokers.domain.credentials import (
    KEEP,
    CredentialChange,
    StoredCredentials,
    connection_check,
    credentials_merge,
    ibkr_connection,
    schwab_secret_parse,
)

NOTHING = StoredCredentials()
PAIR = StoredCredentials(has_key=True, has_secret=True, reveal_secret=lambda: "old-secret")


def merge(broker: str, stored: StoredCredentials = NOTHING, creating: bool = False, **change):
    return credentials_merge(
        broker_name=broker, change=CredentialChange(**change), stored=stored, creating=creating
    )


def test_creating_a_pair_broker_sets_both_columns():
    merged = merge("binance", creating=True, api_key="k", api_secret="s")
    assert (merged.api_key, merged.api_secret, merged.errors, merged.changed) == ("k", "s", {}, True)


def test_a_change_without_credentials_keeps_both():
    merged = merge("alpaca", PAIR)
    assert (merged.api_key, merged.api_secret, merged.errors, merged.changed) == (KEEP, KEEP, {}, False)


def test_a_new_key_keeps_the_stored_secret_unread():
    def unread() -> str:
        raise AssertionError("the secret was decrypted for nothing")

    stored = StoredCredentials(has_key=True, has_secret=True, reveal_secret=unread)
    merged = merge("alpaca", stored, api_key="new-key")
    assert (merged.api_key, merged.api_secret) == ("new-key", KEEP)


def test_clear_removes_both():
    merged = merge("alpaca", PAIR, clear=True)
    assert (merged.api_key, merged.api_secret, merged.changed) == (None, None, True)


@pytest.mark.parametrize(
    ("broker", "change", "errors"),
    [
        ("alpaca", {"api_key": "k"}, {"api_secret": ["Alpaca needs its API secret key."]}),
        ("schwab", {"api_secret": "s"}, {"api_key": ["Schwab needs its app key."]}),
        ("nyse", {"api_key": "k"}, {"broker_name": ['"nyse" is not a supported broker.']}),
        (
            "paper",
            {},
            {"broker_name": [
                "Paper accounts come with every user (PAPER-EQ-A, PAPER-EQ-B, PAPER-CRYPTO); "
                "they cannot be added here."
            ]},
        ),
        ("binance", {"api_key": "k", "api_secret": "a\nb"}, {
            "api_secret": ["The API secret (HMAC) may hold only printable characters, no blanks."]
        }),
        ("binance", {"api_key": "k" * 513, "api_secret": "s"}, {
            "api_key": ["The API key is longer than 512 characters."]
        }),
        ("ibkr", {"connection": {"host": "a b"}}, {
            "connection": ["host must be a host name or an IP address."]
        }),
    ],
)  # fmt: skip
def test_creating_with_bad_input_gives_field_errors(broker, change, errors):
    merged = merge(broker, creating=True, **change)
    assert merged.errors == errors
    assert not merged.changed


def test_paper_takes_no_credentials():
    assert merge("paper", api_key="k").errors == {"api_key": ["Paper venues take no credentials."]}
    assert merge("paper").errors == {}
    cleared = merge("paper", PAIR, clear=True)
    assert (cleared.api_key, cleared.api_secret, cleared.errors) == (None, None, {})


def test_ibkr_connection_is_stored_as_json_in_the_key_column():
    merged = merge("ibkr", creating=True, connection={"port": 4002, "client_id": 7, "host": "gw.local"})
    assert json.loads(merged.api_key) == {"host": "gw.local", "port": 4002, "client_id": 7}
    assert merged.api_secret is None
    assert ibkr_connection(merged.api_key) == {"host": "gw.local", "port": 4002, "client_id": 7}
    # an empty object clears it (the settings' defaults apply)
    assert merge("ibkr", connection={}).api_key is None


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ([], ['Expected an object like {"host": "127.0.0.1", "port": 4002, "client_id": 7}.']),
        ({"user": "x"}, ["Unknown keys: user (only host, port and client_id)."]),
        ({"port": True}, ["port must be a whole number from 1 to 65535."]),
        ({"port": 65536}, ["port must be a whole number from 1 to 65535."]),
        ({"client_id": -1}, ["client_id must be a whole number from 0 to 2147483647."]),
        ({"port": "4002"}, ["port must be a whole number from 1 to 65535."]),
    ],
)
def test_connection_check(value, problems):
    assert connection_check(value) == (None, problems)


def test_schwab_secret_keeps_what_a_change_does_not_name():
    login = {"app_secret": "s1", "refresh_token": "r1", "access_token": "a1", "refresh_issued_at": "t"}
    stored = StoredCredentials(has_key=True, has_secret=True, reveal_secret=lambda: json.dumps(login))
    rotated = merge("schwab", stored, api_secret="s2")
    assert json.loads(rotated.api_secret) == {**login, "app_secret": "s2"}
    by_hand = merge("schwab", stored, refresh_token="r2")
    assert json.loads(by_hand.api_secret) == {"app_secret": "s1", "refresh_token": "r2"}
    dropped = merge("schwab", stored, refresh_token="")
    assert json.loads(dropped.api_secret) == {"app_secret": "s1"}


def test_schwab_secret_that_cannot_be_read_must_be_sent_again():
    stored = StoredCredentials(has_key=True, has_secret=True, reveal_secret=lambda: None)
    assert merge("schwab", stored, refresh_token="r2").errors == {
        "api_secret": ["The stored app secret cannot be read: send it again."]
    }


@pytest.mark.parametrize(
    ("stored", "parsed"),
    [
        (None, {}),
        ("bare-secret", {"app_secret": "bare-secret"}),
        ('{"app_secret": "s", "refresh_token": "r"}', {"app_secret": "s", "refresh_token": "r"}),
        ("[1, 2]", {"app_secret": "[1, 2]"}),
    ],
)
def test_schwab_secret_parse(stored, parsed):
    assert schwab_secret_parse(stored) == parsed
