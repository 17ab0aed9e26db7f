#!/usr/bin/env bash
# Install, migrate, seed the demo and serve TradeMaster on the embedded default (SQLite, no servers).
#
# Processes (all stopped together on exit; if one dies, the script says which and stops the rest):
#   daphne       the web server (pages, API, WebSockets)                  output here
#   run_market   the simulated market and paper venues                   var/log/market.log
#   celery       a Celery worker with beat (django-celery-beat schedule)  var/log/celery.log
#   relay_outbox only when REDIS_URL or KAFKA_BOOTSTRAP_SERVERS is set    var/log/relay.log
#   broker-fakes only with DEMO_BROKERS=1: fake Alpaca, Binance, Schwab   var/log/broker-fakes.log
#                and IB TWS servers that the real adapters trade with (run_broker_fakes)
#   ib-gateway   the Interactive Brokers gateway: TWS connections and     var/log/ib-gateway.log
#                the ibkr adapter's loopback bridge (run_ib_gateway; idle without IB accounts)
#   broker-feeds real brokers' order updates (fills, cancels) into the    var/log/broker-feeds.log
#                OMS by streams and polling (run_broker_feeds; idle without such accounts)
# Celery uses the filesystem transport in var/celery/ unless REDIS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
PORT=${PORT:-8085}
# DEMO_BROKERS=1 make run: the demo user also gets Alpaca, Binance, Schwab and IB accounts, served
# by the loopback fakes of tests/fakes (no real accounts, no network); see settings "demo mode"
if [ "${DEMO_BROKERS:-0}" = "1" ]; then
  export TRADEMASTER_DEMO_BROKERS=1
fi
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

await_line() {  # await_line NAME LOGFILE PATTERN SECONDS: until LOGFILE has PATTERN; else fatal
  local name=$1 log=$2 pattern=$3 seconds=$4 dying
  for _ in $(seq 1 $((seconds * 10))); do
    if dying=$(dead); then fail "$dying"; fi
    if grep -q -- "$pattern" "$log"; then return 0; fi
    sleep 0.1
  done
  grep -q -- "$pattern" "$log" || fail "$name (not ready after $seconds s)"
}

start market "$LOG_DIR/market.log" $PY manage.py run_market
demo_log="" demo_msg=""
if [ "${TRADEMASTER_DEMO_BROKERS:-0}" = "1" ]; then
  # first, so the gateway and the feeds find the demo brokers up
  start broker-fakes "$LOG_DIR/broker-fakes.log" $PY manage.py run_broker_fakes
  demo_msg="
    demo brokers  the demo user's Alpaca, Binance, Schwab and IB accounts trade with local fakes"
  demo_log=", broker-fakes"
  # it says so once its ports are bound and the demo accounts were checked
  await_line broker-fakes "$LOG_DIR/broker-fakes.log" 'broker fakes running' 30
fi
# the production workers, in every mode: the IB gateway holds the TWS connections (none without
# IB accounts) and the feeds bring resting orders' fills from the real brokers (streams, polling)
start ib-gateway "$LOG_DIR/ib-gateway.log" $PY manage.py run_ib_gateway
start celery "$LOG_DIR/celery.log" .venv/bin/celery -A trademaster worker -B \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler --concurrency 1 -l info
relay_log=""
if [ -n "${REDIS_URL:-}" ] || [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  start relay "$LOG_DIR/relay.log" $PY manage.py relay_outbox
  relay_log=", relay"
fi
# the gateway prints "ready <bridge url>" once its bridge listens (it connects IB accounts after)
await_line ib-gateway "$LOG_DIR/ib-gateway.log" '^ready ' 30
start broker-feeds "$LOG_DIR/broker-feeds.log" $PY manage.py run_broker_feeds

# the worker logs "celery@<host> ready." once it consumes; anything dying before that is fatal
await_line celery "$LOG_DIR/celery.log" ' ready\.' 60

start daphne - .venv/bin/daphne -b 127.0.0.1 -p "$PORT" trademaster.asgi:application

cat <<MSG

  TradeMaster is running on http://127.0.0.1:${PORT}/
    trader pages  http://127.0.0.1:${PORT}/            log in as  demo / demo-trader
    admin         http://127.0.0.1:${PORT}/admin/      log in as  admin / admin-trader
    API docs      http://127.0.0.1:${PORT}/api/docs/
    API token     .venv/bin/python manage.py issue_token demo --scopes read,trade
    health        http://127.0.0.1:${PORT}/healthz  /readyz     metrics  /metrics${demo_msg}
    logs          $LOG_DIR/ (market, celery, ib-gateway, broker-feeds${relay_log}${demo_log})
  Stop with Ctrl-C.

MSG

# run until one process exits (or Ctrl-C): then say which, and stop the others
while true; do
  wait -n || true
  if name=$(dead); then fail "$name"; fi
done
