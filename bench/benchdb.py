"""What the benches share: a throwaway PostgreSQL database and a free loopback port."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import psycopg


def fresh_database(url: str) -> tuple[str, str]:
    """Drop and create the database ``url`` names (it must contain "bench"); (server url, name)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the database name must contain 'bench'")
    server = urlunsplit(parts._replace(path="/postgres"))
    drop_database(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server, name


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
