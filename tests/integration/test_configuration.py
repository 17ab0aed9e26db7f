"""Configuration from the environment, checked in fresh interpreters (settings load once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'],"
    " 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    " 'secret': s.SECRET_KEY, 'keys': s.ENCRYPTION_KEYS}))"
)


def probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    clean.update(
        {"DJANGO_SETTINGS_MODULE": "trademaster.settings", "TRADEMASTER_VAR_DIR": str(tmp_path)}, **env
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_no_variables_give_the_embedded_default_with_a_generated_local_secret(tmp_path):
    # given an empty var dir and no DATABASE_URL / REDIS_URL / SECRET_KEY
    first = probe(tmp_path)
    second = probe(tmp_path)
    # then SQLite and the in-process channel layer are used
    assert first.returncode == 0, first.stderr
    config = json.loads(first.stdout)
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["layer"] == "channels.layers.InMemoryChannelLayer"
    # and a secret key and an encryption key were generated once, kept private, and reused
    assert len(config["secret"]) >= 50
    assert json.loads(second.stdout)["secret"] == config["secret"]
    assert json.loads(second.stdout)["keys"] == config["keys"]
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_database_and_redis_urls_switch_to_postgresql_and_redis(tmp_path):
    result = probe(
        tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0"
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert not (tmp_path / "trademaster.sqlite3").exists()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "TRADEMASTER_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, missing):
    env = {"TRADEMASTER_PRODUCTION": "1", "SECRET_KEY": "x" * 50, "TRADEMASTER_ENCRYPTION_KEYS": "k"}
    env.pop(missing)
    result = probe(tmp_path, **env)
    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.django_db
def test_seed_tables_have_their_columns():
    # given the migrated database
    with connection.cursor() as cursor:
        tables = {
            name: {c.name for c in connection.introspection.get_table_description(cursor, name)}
            for name in ("orders", "positions", "broker_accounts", "fills", "order_events")
        }
    # then the seed's column names are all there
    assert {
        "id",
        "user_id",
        "broker_id",
        "symbol",
        "order_type",
        "side",
        "quantity",
        "price",
        "stop_price",
        "time_in_force",
        "status",
        "broker_order_id",
        "filled_quantity",
        "average_fill_price",
        "commission",
        "created_at",
        "updated_at",
        "filled_at",
        "cancelled_at",
        "client_order_id",
        "trail_amount",
        "trail_percent",
    } <= tables["orders"]
    assert {
        "user_id",
        "broker_id",
        "symbol",
        "quantity",
        "average_cost",
        "market_value",
        "unrealized_pnl",
        "realized_pnl",
    } <= tables["positions"]
    assert {
        "user_id",
        "broker_name",
        "account_id",
        "api_key_encrypted",
        "api_secret_encrypted",
        "sandbox_mode",
        "is_active",
        "buying_power",
        "total_value",
    } <= tables["broker_accounts"]
    assert {"order_id", "broker_fill_id", "quantity", "price", "fee", "executed_at"} <= tables["fills"]


@pytest.mark.django_db
def test_order_defaults_come_from_the_database(trader, accounts):
    # given a row inserted without status or time in force (as another system would)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders (user_id, broker_id, client_order_id, symbol, asset_class, order_type, side,"
            " quantity, filled_quantity, commission, triggered, status_reason, created_at, updated_at)"
            " VALUES (%s, %s, 'raw-1', 'AAPL', 'EQUITY', 'MARKET', 'BUY', 1, 0, 0, %s, '', %s, %s)",
            [trader.pk, accounts["PAPER-EQ-A"].pk, False, "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"],
        )
        cursor.execute("SELECT status, time_in_force FROM orders WHERE client_order_id = 'raw-1'")
        # then the seed's defaults apply
        assert cursor.fetchone() == ("PENDING", "DAY")
