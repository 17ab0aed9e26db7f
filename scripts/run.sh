#!/usr/bin/env bash
# Install, migrate, seed the demo and serve TradeMaster on the embedded default (SQLite, no servers).
#
# Processes (all stopped together on exit; if one dies, the script says which and stops the rest):
#   daphne       the web server (pages, API, WebSockets)                  output here
#   run_market   the simulated market and paper venues                   var/log/market.log
#   celery       a Celery worker with beat (django-celery-beat schedule)  var/log/celery.log
#   relay_outbox only when REDIS_URL or KAFKA_BOOTSTRAP_SERVERS is set    var/log/relay.log
# Celery uses the filesystem transport in var/celery/ unless REDIS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
PORT=${PORT:-8085}
PY=.venv/bin/python
VAR_DIR=${TRADEMASTER_VAR_DIR:-var}
LOG_DIR="$VAR_DIR/log"
STOP_GRACE=${STOP_GRACE:-15}  # seconds a process gets to stop before it is killed
mkdir -p "$LOG_DIR"

# One /metrics for every process: prometheus_client's multiprocess mode keeps the values in
# files here. Stale files from an earlier run would be added in, so they are removed first.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$VAR_DIR/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete

$PY manage.py migrate --no-input -v 0
$PY manage.py collectstatic --no-input -v 0
$PY manage.py seed_demo

if [ -z "${REDIS_URL:-}" ]; then
  for folder in "$VAR_DIR/celery/queue" "$VAR_DIR/celery/processed"; do
    if [ ! -d "$folder" ]; then
      echo "FATAL: the Celery filesystem transport folder $folder was not created" >&2
      exit 1
    fi
  done
fi

declare -A names=()  # pid -> name of every background process
# job control: each background process gets its own process group, so a Ctrl-C reaches only this
# script, which then stops them all (a worker and its pool children together) in stop_all
set -m

start() {  # start NAME LOGFILE COMMAND...: run COMMAND in the background (LOGFILE "-": this terminal)
  local name=$1 log=$2
  shift 2
  if [ "$log" = "-" ]; then
    "$@" &
  else
    "$@" >"$log" 2>&1 &
  fi
  names[$!]=$name
}

stop_all() {  # TERM everything, give it STOP_GRACE seconds, then KILL what is left
  trap - EXIT INT TERM
  local pid waited=0
  for pid in "${!names[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${!names[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_GRACE * 10)) ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

dead() {  # print the name of a background process that has exited, if any
  local pid
  for pid in "${!names[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "${names[$pid]}"
      return 0
    fi
  done
  return 1
}

fail() {
  echo "FATAL: $1 stopped; see its log above or in $LOG_DIR/. Stopping everything." >&2
  exit 1
}

start market "$LOG_DIR/market.log" $PY manage.py run_market
start celery "$LOG_DIR/celery.log" .venv/bin/celery -A trademaster worker -B \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler --concurrency 1 -l info
relay_log=""
if [ -n "${REDIS_URL:-}" ] || [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  start relay "$LOG_DIR/relay.log" $PY manage.py relay_outbox
  relay_log=", relay"
fi

# the worker logs "celery@<host> ready." once it consumes; anything dying before that is fatal
for _ in $(seq 1 600); do
  if name=$(dead); then fail "$name"; fi
  if grep -q ' ready\.' "$LOG_DIR/celery.log"; then break; fi
  sleep 0.1
done
grep -q ' ready\.' "$LOG_DIR/celery.log" || fail "celery (not ready after 60 s)"

start daphne - .venv/bin/daphne -b 127.0.0.1 -p "$PORT" trademaster.asgi:application

cat <<MSG

  TradeMaster is running on http://127.0.0.1:${PORT}/
    trader pages  http://127.0.0.1:${PORT}/            log in as  demo / demo-trader
    admin         http://127.0.0.1:${PORT}/admin/      log in as  admin / admin-trader
    API docs      http://127.0.0.1:${PORT}/api/docs/
    API token     .venv/bin/python manage.py issue_token demo --scopes read,trade
    health        http://127.0.0.1:${PORT}/healthz  /readyz     metrics  /metrics
    logs          $LOG_DIR/ (market, celery${relay_log})
  Stop with Ctrl-C.

MSG

# run until one process exits (or Ctrl-C): then say which, and stop the others
while true; do
  wait -n || true
  if name=$(dead); then fail "$name"; fi
done
