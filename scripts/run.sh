#!/usr/bin/env bash
# Install, migrate, seed the demo and serve TradeMaster on the embedded default (SQLite, no servers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
PORT=${PORT:-8085}
PY=.venv/bin/python
$PY manage.py migrate --no-input -v 0
$PY manage.py collectstatic --no-input -v 0
$PY manage.py seed_demo

$PY manage.py run_market &
market=$!
trap 'kill $market 2>/dev/null || true; wait $market 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  TradeMaster is running on http://127.0.0.1:${PORT}/
    trader pages  http://127.0.0.1:${PORT}/            log in as  demo / demo-trader
    admin         http://127.0.0.1:${PORT}/admin/      log in as  admin / admin-trader
    API docs      http://127.0.0.1:${PORT}/api/docs/
    API token     .venv/bin/python manage.py issue_token demo --scopes read,trade
  Stop with Ctrl-C.

MSG
.venv/bin/daphne -b 127.0.0.1 -p "$PORT" trademaster.asgi:application
