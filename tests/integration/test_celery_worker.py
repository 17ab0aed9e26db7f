"""A real Celery worker on the no-server default (the filesystem transport), in its own process.

The worker and the test share a database the worker's process can see: a SQLite file in a
temporary directory, or, when the suite runs on PostgreSQL, a database ``tm_celery_<hex>`` on
the same server (dropped afterwards). The test sends tasks as any other process would: a Celery
client pointed at the same queue folder.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # worker start (imports, mingle) plus the task; a healthy run takes a few seconds
POLL = 0.1


class SharedDatabase:
    """The database the worker subprocesses use, and raw SQL to read it from the test."""

    def __init__(self, tmp: Path) -> None:
        suite_url = os.environ.get("DATABASE_URL", "")
        self.pg_url = ""
        if suite_url.startswith(("postgres://", "postgresql://")):
            self.name = f"tm_celery_{uuid.uuid4().hex[:12]}"
            self.pg_url = suite_url.rsplit("/", 1)[0] + "/" + self.name
            self._admin(f'CREATE DATABASE "{self.name}"')
        self.sqlite_path = tmp / "celery-test.sqlite3"
        # the same keys in every subprocess, whatever its var dir
        self.keys = {
            "SECRET_KEY": "celery-test-" + uuid.uuid4().hex * 2,
            "TRADEMASTER_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        }

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.pg_url} if self.pg_url else {"SQLITE_PATH": str(self.sqlite_path)}

    def rows(self, sql: str, *params) -> list[tuple]:
        if self.pg_url:
            with psycopg.connect(self.pg_url) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(self.sqlite_path, timeout=20) as conn:
            return conn.execute(sql, params).fetchall()

    def drop(self) -> None:
        if self.pg_url:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory) -> Iterator[SharedDatabase]:
    """Migrated once per module (the slow part); each test brings its own queue folder."""
    tmp = tmp_path_factory.mktemp("celery-db")
    database = SharedDatabase(tmp)
    try:
        run_django(database, tmp, "manage.py", "migrate", "--no-input", "-v", "0")
        yield database
    finally:
        database.drop()


def subprocess_env(database: SharedDatabase, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update(database.keys, **database.env())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "trademaster.settings",
            "TRADEMASTER_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_django(database: SharedDatabase, var_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=subprocess_env(database, var_dir),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def record_events(database: SharedDatabase, var_dir: Path, marker: str, count: int) -> None:
    """Write outbox events through the application's own code, in another process."""
    run_django(
        database,
        var_dir,
        "-c",
        "import django; django.setup(); from trademaster.outbox import outbox_record\n"
        f"for _ in range({count}): outbox_record(type={marker!r}, user_id=1, payload={{}})",
    )


def unpublished(database: SharedDatabase, marker: str) -> int:
    return database.rows(
        "SELECT count(*) FROM outbox_events WHERE type = ? AND published_at IS NULL", marker
    )[0][0]


def client_app(var_dir: Path) -> Celery:
    """A Celery client on the same filesystem queue as the worker (what settings.py configures)."""
    folder = str(var_dir / "celery" / "queue")
    return Celery(
        "test-client",
        broker="filesystem://",
        broker_transport_options={
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": str(var_dir / "celery" / "processed"),
        },
    )


@contextmanager
def worker(database: SharedDatabase, var_dir: Path, *extra: str) -> Iterator[Callable[[], str]]:
    """A ``celery -A trademaster worker`` subprocess; yields a function returning its log so far."""
    log_path = var_dir / "worker.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "trademaster",
        "worker",
        "--concurrency",
        "1",
        "-l",
        "info",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, *extra],
            cwd=ROOT,
            env=subprocess_env(database, var_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the worker and its pool children form one group to stop
        )
    try:
        yield log_path.read_text
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # warm shutdown
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}; worker log:\n{log()[-4000:]}"
        _pause()


def _pause() -> None:
    """Between two polls of the database; the condition, not this pause, ends the wait."""
    threading.Event().wait(POLL)


def test_the_filesystem_transport_folders_are_created_in_var(shared_db, tmp_path):
    run_django(shared_db, tmp_path, "-c", "import django; django.setup()")
    assert (tmp_path / "celery" / "queue").is_dir()
    assert (tmp_path / "celery" / "processed").is_dir()


def test_a_task_sent_from_another_process_runs_in_the_worker(shared_db, tmp_path):
    # given unpublished outbox events and a worker without beat (nothing else relays them)
    marker = f"CELERY_TEST_{uuid.uuid4().hex[:8]}"
    record_events(shared_db, tmp_path, marker, 3)
    assert unpublished(shared_db, marker) == 3
    with worker(shared_db, tmp_path) as log:
        # when this process sends the relay task through the filesystem queue
        client_app(tmp_path).send_task("trademaster.tasks.relay_outbox_task")
        # then the worker runs it: the events get stamped as published
        wait_until(lambda: unpublished(shared_db, marker) == 0, "the worker relayed the events", log)
        assert "trademaster.tasks.relay_outbox_task" in log()


def test_beat_stores_the_schedule_in_the_database_and_runs_it(shared_db, tmp_path):
    marker = f"CELERY_BEAT_{uuid.uuid4().hex[:8]}"
    record_events(shared_db, tmp_path, marker, 2)
    scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    with worker(shared_db, tmp_path, "-B", "--scheduler", scheduler) as log:
        # beat writes CELERY_BEAT_SCHEDULE into PeriodicTask rows (editable in the admin)
        def stored() -> set[str]:
            return {
                name
                for name, task in shared_db.rows("SELECT name, task FROM django_celery_beat_periodictask")
                if task in {"risk.tasks.risk_monitor_all_task", "trademaster.tasks.relay_outbox_task"}
            }

        wait_until(lambda: stored() == {"risk-monitor-all", "relay-outbox"}, "beat stored its schedule", log)
        # and the relay it schedules every second runs in the worker, with nobody sending it
        wait_until(lambda: unpublished(shared_db, marker) == 0, "the scheduled relay ran", log)


def test_the_beat_schedule_is_editable_in_the_admin():
    from django.contrib import admin
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    assert admin.site.is_registered(PeriodicTask)
    assert admin.site.is_registered(IntervalSchedule)
