"""TradeMaster settings, read from the environment.

With no variable set the service runs on its embedded default: SQLite, an in-process channel
layer, the paper venues, and a secret key and encryption key generated once into ``var/``.
Production sets ``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY`` and ``TRADEMASTER_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from decimal import Decimal
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRADEMASTER_VAR_DIR") or BASE_DIR / "var")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _local_secret(filename: str, make: callable) -> str:  # type: ignore[valid-type]
    """A secret kept in var/ for the embedded default; generated on first run, never committed."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
PRODUCTION = env_bool("TRADEMASTER_PRODUCTION", False)

if PRODUCTION and not os.environ.get("SECRET_KEY"):
    raise RuntimeError("SECRET_KEY must be set when TRADEMASTER_PRODUCTION is on")
SECRET_KEY = os.environ.get("SECRET_KEY") or _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

# Fernet keys for broker credentials at rest: the first encrypts, all decrypt (rotation).
if PRODUCTION and not os.environ.get("TRADEMASTER_ENCRYPTION_KEYS"):
    raise RuntimeError("TRADEMASTER_ENCRYPTION_KEYS must be set when TRADEMASTER_PRODUCTION is on")
ENCRYPTION_KEYS = env_list("TRADEMASTER_ENCRYPTION_KEYS") or [
    _local_secret("encryption_key", lambda: Fernet.generate_key().decode())
]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "channels",
    "django_htmx",
    "trademaster",
    "brokers",
    "orders",
    "risk",
    "routing",
    "agentos",
    "django_celery_beat",
]

MIDDLEWARE = [
    "trademaster.metrics.RequestMetricsMiddleware",  # first: times everything below it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "trademaster.urls"
WSGI_APPLICATION = "trademaster.wsgi.application"
ASGI_APPLICATION = "trademaster.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    if _db["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
        # psycopg's pool (Django 5.1+): no connection set-up per request, under WSGI and ASGI.
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN", "2")),
            "max_size": int(os.environ.get("DATABASE_POOL_MAX", "20")),
            "timeout": 10,
        }
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(VAR_DIR / "trademaster.sqlite3")),
            # several processes (web, market runner) share the file: wait instead of failing
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels ---------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- celery -----------------------------------------------------------------------------------
# Redis when REDIS_URL is set; otherwise a filesystem queue in var/ (no server, works across
# processes). No result backend unless CELERY_RESULT_BACKEND is set: the tasks return nothing useful.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    _celery_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "trademaster.celery_fs:Transport"  # writes each message whole
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),  # else kombu writes ./control in the cwd
        "polling_interval": 0.1,
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
RISK_MONITOR_INTERVAL_SECONDS = int(os.environ.get("RISK_MONITOR_INTERVAL_SECONDS", "10"))
# the dashboard's equity chart: at most one sample per user this often (risk.equity)
EQUITY_SAMPLE_SECONDS = int(os.environ.get("EQUITY_SAMPLE_SECONDS", "60"))
CELERY_BEAT_SCHEDULE = {
    "risk-monitor-all": {
        "task": "risk.tasks.risk_monitor_all_task",
        "schedule": RISK_MONITOR_INTERVAL_SECONDS,
        # a run that waited longer than one interval is stale: the next one is already due
        "options": {"expires": RISK_MONITOR_INTERVAL_SECONDS},
    },
    # connection status and latency of every broker account (routing weighs both)
    "broker-health": {
        "task": "brokers.tasks.broker_health_check_all_task",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    # open orders compared with each broker; repairs what a lost update left behind
    "reconcile": {
        "task": "orders.tasks.reconcile_all_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # TWAP/VWAP slices come due: release them (each slice at most once, see routing.algos)
    "algo-release-due": {
        "task": "routing.tasks.algo_release_due_task",
        "schedule": 1.0,
        "options": {"expires": 1},
    },
    # placements a busy broker deferred (429, rate limit) come due: re-send them (orders.services)
    "orders-resend-due": {
        "task": "orders.tasks.resend_due_task",
        "schedule": 1.0,
        "options": {"expires": 1},
    },
    # a safety net: `manage.py relay_outbox` relays within milliseconds when it runs
    "relay-outbox": {
        "task": "trademaster.tasks.relay_outbox_task",
        "schedule": 1.0,
        "options": {"expires": 1},
    },
}

# --- Kafka (off unless KAFKA_BOOTSTRAP_SERVERS is set) -----------------------------------------
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
KAFKA_CLIENT_ID = os.environ.get("KAFKA_CLIENT_ID", "trademaster")
# Put before every topic name (e.g. "staging."): environments can share a cluster. Empty in production.
KAFKA_TOPIC_PREFIX = os.environ.get("KAFKA_TOPIC_PREFIX", "")
KAFKA_REPLICATION_FACTOR = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "-1"))  # -1: the broker's default
KAFKA_ENABLE_IDEMPOTENCE = env_bool("KAFKA_ENABLE_IDEMPOTENCE", True)  # brokers from Kafka 0.11 on
KAFKA_PRODUCE_TIMEOUT_SECONDS = int(os.environ.get("KAFKA_PRODUCE_TIMEOUT_SECONDS", "30"))
# A group join waits session_timeout / 2 on some brokers (tansu): 6 s / 1 s joins in about 3 s, and
# 6 s is also real Kafka's group.min.session.timeout.ms. kafka-python's 45 s default joins in 23 s.
KAFKA_SESSION_TIMEOUT_MS = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
KAFKA_HEARTBEAT_INTERVAL_MS = int(os.environ.get("KAFKA_HEARTBEAT_INTERVAL_MS", "1000"))
KAFKA_SIGNALS_GROUP = os.environ.get("KAFKA_SIGNALS_GROUP", "trademaster-signals")
KAFKA_RISK_GROUP = os.environ.get("KAFKA_RISK_GROUP", "trademaster-risk")
KAFKA_SECURITY_PROTOCOL = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
KAFKA_SASL_MECHANISM = os.environ.get("KAFKA_SASL_MECHANISM", "")
KAFKA_SASL_USERNAME = os.environ.get("KAFKA_SASL_USERNAME", "")
KAFKA_SASL_PASSWORD = os.environ.get("KAFKA_SASL_PASSWORD", "")
# how long consume_risk_events remembers a processed event_id (the cache: Redis when REDIS_URL is set)
KAFKA_DEDUPE_TTL_SECONDS = int(os.environ.get("KAFKA_DEDUPE_TTL_SECONDS", str(7 * 24 * 3600)))

# --- auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

OAUTH2_PROVIDER = {
    "SCOPES": {
        "read": "Read orders, fills, positions and accounts",
        "trade": "Place, modify and cancel orders",
    },
    "DEFAULT_SCOPES": ["read"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("ACCESS_TOKEN_EXPIRE_SECONDS", str(30 * 24 * 3600))),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "oauth2_provider.contrib.rest_framework.OAuth2Authentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "trademaster.permissions.HasScope",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "trademaster.parsers.DecimalJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "trademaster.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "trademaster.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_RATES": {"order_entry": os.environ.get("ORDER_ENTRY_RATE", "6000/min")},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TradeMaster API",
    "DESCRIPTION": "Multi-broker order management: orders, fills, positions and broker accounts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatusChoices",
        "SideEnum": "orders.models.SideChoices",
        "OrderTypeEnum": "orders.models.OrderTypeChoices",
        "TimeInForceEnum": "orders.models.TimeInForceChoices",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "oauth2": {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": "/o/token/",
                        "scopes": {"read": "Read access", "trade": "Place, modify and cancel orders"},
                    }
                },
            }
        }
    },
}

# A bare authenticated endpoint that inserts one row: the floor the bench compares against.
BENCH_FLOOR_ENDPOINT = env_bool("TRADEMASTER_BENCH_FLOOR", False)

# --- brokers ------------------------------------------------------------------------------------
BROKER_ADAPTERS = {
    "paper": "brokers.adapters.paper.PaperAdapter",
    "binance": "brokers.adapters.binance.BinanceAdapter",
    "alpaca": "brokers.adapters.alpaca.AlpacaAdapter",
    # the Charles Schwab Trader API, successor of the TD Ameritrade API (switched off in May 2024)
    "schwab": "brokers.adapters.schwab.SchwabAdapter",
    # TWS API through ib_async, in its own long-running gateway worker (brokers.ibkr)
    "ibkr": "brokers.adapters.ibkr.IbkrAdapter",
}
# --- brokers: Interactive Brokers gateway ---
# `manage.py run_ib_gateway` holds the TWS connections (ib_async) and serves a JSON bridge on
# loopback; the ibkr adapter calls it with the shared token: IB_GATEWAY_TOKEN, or one derived from
# SECRET_KEY (which every process of the service shares), never a fixed default.
IB_GATEWAY_URL = os.environ.get("IB_GATEWAY_URL", "http://127.0.0.1:7510")
IB_GATEWAY_TOKEN = (
    os.environ.get("IB_GATEWAY_TOKEN")
    or hmac.new(SECRET_KEY.encode(), b"trademaster ib gateway", hashlib.sha256).hexdigest()
)
IB_GATEWAY_TIMEOUT_SECONDS = float(os.environ.get("IB_GATEWAY_TIMEOUT_SECONDS", "15"))  # adapter -> bridge
IB_GATEWAY_STREAM_WAIT_SECONDS = float(os.environ.get("IB_GATEWAY_STREAM_WAIT_SECONDS", "20"))  # long poll
# TWS / IB Gateway defaults; an account's credentials JSON {"host", "port", "client_id"} overrides them
IB_TWS_HOST = os.environ.get("IB_TWS_HOST", "127.0.0.1")
IB_TWS_PORT_PAPER = int(os.environ.get("IB_TWS_PORT_PAPER", "7497"))
IB_TWS_PORT_LIVE = int(os.environ.get("IB_TWS_PORT_LIVE", "7496"))
IB_TWS_CLIENT_ID = int(os.environ.get("IB_TWS_CLIENT_ID", "17"))
IB_TWS_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("IB_TWS_CONNECT_TIMEOUT_SECONDS", "4"))
IB_TWS_REQUEST_TIMEOUT_SECONDS = float(os.environ.get("IB_TWS_REQUEST_TIMEOUT_SECONDS", "5"))  # acks, replies
IB_TWS_RECONNECT_MAX_SECONDS = float(os.environ.get("IB_TWS_RECONNECT_MAX_SECONDS", "30"))
# --- brokers: order-update feeds (streams and polling) ---
# manage.py run_broker_feeds (orders/feeds.py): one feed per active non-paper account. It polls
# an account every BROKER_FEED_POLL_SECONDS (per broker below; REST polls count against the
# broker's rate limit: Alpaca 200/min, Binance weight 6000/min) and at once when its stream pushes.
BROKER_FEED_POLL_SECONDS = int(os.environ.get("BROKER_FEED_POLL_MS", "2000")) / 1000
# Binance REST polling costs weight ~100 (myTrades 20 per symbol, openOrders 80): every 5 s is
# ~1,200 of the 6,000/min per IP; with the user data stream up it polls REST only to catch up
BROKER_FEED_POLL_SECONDS_BY_BROKER: dict[str, float] = {"binance": 5.0}
BROKER_FEED_REFRESH_SECONDS = 5.0  # how often the account list is re-read
BROKER_FEED_BACKOFF_SECONDS = 1.0  # after an adapter error, doubling up to the max
BROKER_FEED_BACKOFF_MAX_SECONDS = 60.0
BROKER_FEED_DOWN_AFTER_FAILURES = 3  # failures in a row that make an account DOWN (not DEGRADED)
# a dropped stream (Alpaca trade_updates, Binance user data) reconnects after this, doubling
BROKER_STREAM_BACKOFF_SECONDS = 1.0
BROKER_STREAM_BACKOFF_MAX_SECONDS = 30.0
# --- brokers: Schwab OAuth ---
# Schwab's login sends the browser back here; Schwab takes https only (http on 127.0.0.1 for local
# runs). Empty: this server's own /brokers/schwab/callback/ URL (which must be registered at Schwab).
SCHWAB_REDIRECT_URI = os.environ.get("SCHWAB_REDIRECT_URI", "")
SCHWAB_AUTHORIZE_URL = os.environ.get("SCHWAB_AUTHORIZE_URL", "https://api.schwabapi.com/v1/oauth/authorize")
SCHWAB_OAUTH_STATE_MAX_AGE_SECONDS = int(os.environ.get("SCHWAB_OAUTH_STATE_MAX_AGE_SECONDS", "600"))
# the refresh token lives 7 days (hard); health turns DEGRADED in its last hours, DOWN after
SCHWAB_REFRESH_TOKEN_LIFETIME_HOURS = int(os.environ.get("SCHWAB_REFRESH_TOKEN_LIFETIME_HOURS", "168"))
SCHWAB_REFRESH_WARN_HOURS = int(os.environ.get("SCHWAB_REFRESH_WARN_HOURS", "24"))
# the ACCT_ACTIVITY streamer (feed worker): REST re-reads after cues, else at this safety cadence
SCHWAB_STREAM_SAFETY_POLL_SECONDS = int(os.environ.get("SCHWAB_STREAM_SAFETY_POLL_SECONDS", "60"))
SCHWAB_STREAM_IDLE_SECONDS = int(os.environ.get("SCHWAB_STREAM_IDLE_SECONDS", "60"))
SCHWAB_STREAM_BACKOFF_SECONDS = int(os.environ.get("SCHWAB_STREAM_BACKOFF_SECONDS", "1"))
SCHWAB_STREAM_BACKOFF_MAX_SECONDS = int(os.environ.get("SCHWAB_STREAM_BACKOFF_MAX_SECONDS", "30"))
# --- brokers: rate limits, retries and call statistics ---
# Per broker, a list replacing brokers.domain.ratelimit.DEFAULT_LIMITS for that broker, e.g.
# {"schwab": [{"name": "orders", "count": 60, "seconds": 60, "burst": 5, "orders_only": true}]}
BROKER_RATE_LIMITS: dict[str, list[dict]] = json.loads(os.environ.get("BROKER_RATE_LIMITS", "{}"))
# Redis keys of the shared buckets, cooldowns and call statistics (REDIS_URL set); in-process otherwise
BROKER_RATE_LIMIT_KEY_PREFIX = os.environ.get("BROKER_RATE_LIMIT_KEY_PREFIX", "tm:rl:")
# A placement the broker refuses for now (429, 418, the local limiter) on an account it cannot
# leave is re-sent after max(advised delay, backoff): backoff = BASE * 2**(attempt-1), at most
# CAP, with jitter; after MAX_ATTEMPTS sends or MAX_SECONDS since submission it is rejected.
BROKER_RETRY_MAX_ATTEMPTS = int(os.environ.get("BROKER_RETRY_MAX_ATTEMPTS", "6"))
BROKER_RETRY_MAX_SECONDS = int(os.environ.get("BROKER_RETRY_MAX_SECONDS", "300"))
BROKER_RETRY_BASE_SECONDS = Decimal(os.environ.get("BROKER_RETRY_BASE_SECONDS", "1"))
BROKER_RETRY_CAP_SECONDS = Decimal(os.environ.get("BROKER_RETRY_CAP_SECONDS", "60"))
# Call statistics: a rolling window of slots per account; the health check writes the error rate
# of the window and marks a CONNECTED account DEGRADED above the threshold (with enough calls).
BROKER_CALL_STATS_WINDOW_SECONDS = int(os.environ.get("BROKER_CALL_STATS_WINDOW_SECONDS", "300"))
BROKER_CALL_STATS_SLOT_SECONDS = int(os.environ.get("BROKER_CALL_STATS_SLOT_SECONDS", "10"))
BROKER_ERROR_RATE_DEGRADED_PERCENT = Decimal(os.environ.get("BROKER_ERROR_RATE_DEGRADED_PERCENT", "20"))
BROKER_ERROR_RATE_MIN_CALLS = int(os.environ.get("BROKER_ERROR_RATE_MIN_CALLS", "10"))
# --- brokers: demo mode (the fakes of tests/fakes serving the real adapters) ---
# TRADEMASTER_DEMO_BROKERS=1 (`DEMO_BROKERS=1 make run`): `manage.py run_broker_fakes` serves fake
# Alpaca, Binance, Schwab and IB TWS servers on fixed loopback ports from TRADEMASTER_DEMO_BROKERS_PORT
# on, the real adapters are pointed at them here, and seed_demo gives the demo user an account at
# each (the IB one stores the fake TWS's address; run_ib_gateway's bridge takes the port after them).
DEMO_BROKERS = env_bool("TRADEMASTER_DEMO_BROKERS", False)
_demo_port = int(os.environ.get("TRADEMASTER_DEMO_BROKERS_PORT", "7601"))
DEMO_BROKER_PORTS = {  # the service on each port
    "alpaca": _demo_port,
    "alpaca_stream": _demo_port + 1,
    "binance": _demo_port + 2,
    "binance_ws": _demo_port + 3,
    "schwab": _demo_port + 4,
    "ibkr_tws": _demo_port + 5,
}
DEMO_BROKERS_TICK_SECONDS = float(os.environ.get("TRADEMASTER_DEMO_BROKERS_TICK_SECONDS", "0.5"))
if DEMO_BROKERS:
    ALPACA_TRADING_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['alpaca']}"
    ALPACA_DATA_URL = ALPACA_TRADING_URL  # the fake serves the market data API too
    ALPACA_STREAM_URL = f"ws://127.0.0.1:{DEMO_BROKER_PORTS['alpaca_stream']}/stream"
    BINANCE_REST_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['binance']}"
    BINANCE_WS_API_URL = f"ws://127.0.0.1:{DEMO_BROKER_PORTS['binance_ws']}/ws-api/v3"
    SCHWAB_TRADER_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['schwab']}/trader/v1"
    SCHWAB_MARKETDATA_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['schwab']}/marketdata/v1"
    SCHWAB_TOKEN_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['schwab']}/v1/oauth/token"
    SCHWAB_AUTHORIZE_URL = f"http://127.0.0.1:{DEMO_BROKER_PORTS['schwab']}/v1/oauth/authorize"
    IB_GATEWAY_URL = os.environ.get("IB_GATEWAY_URL", f"http://127.0.0.1:{_demo_port + 6}")
# The simulated market: one seed makes every run reproducible.
MARKET_SEED = int(os.environ.get("MARKET_SEED", "20261125"))

# --- routing ---------------------------------------------------------------------------------------
# An order without a named broker is split across venues by displayed depth when its notional or
# its estimated market impact reaches these (and more than one venue can take it).
ROUTING_SPLIT_MIN_NOTIONAL = Decimal(os.environ.get("ROUTING_SPLIT_MIN_NOTIONAL", "100000"))
ROUTING_SPLIT_MIN_IMPACT_BPS = Decimal(os.environ.get("ROUTING_SPLIT_MIN_IMPACT_BPS", "10"))
# the web order form asks the trader to confirm an order from this notional up (or from 25% of
# their equity across brokers: orders.domain.entry)
ORDER_CONFIRM_NOTIONAL = Decimal(os.environ.get("ORDER_CONFIRM_NOTIONAL", "50000"))
# square-root impact model: impact_bps = coefficient * daily volatility * sqrt(quantity / ADV)
ROUTING_IMPACT_COEFFICIENT = Decimal(os.environ.get("ROUTING_IMPACT_COEFFICIENT", "1"))
# score weights per asset class override routing.domain.scoring.DEFAULT_WEIGHTS, e.g.
# ROUTING_WEIGHTS = {"EQUITY": {"liquidity_bps": "5", "latency_bps_per_100ms": "0.5"}}
ROUTING_WEIGHTS: dict[str, dict[str, str]] = json.loads(os.environ.get("ROUTING_WEIGHTS", "{}"))
# a late TWAP/VWAP slice releases at most this many times its planned quantity
ALGO_CATCH_UP_LIMIT = Decimal(os.environ.get("ALGO_CATCH_UP_LIMIT", "3"))
ALGO_SLICE_SECONDS = int(os.environ.get("ALGO_SLICE_SECONDS", "60"))
# tests and replays: a file holding the time scheduled work sees as now (trademaster.clock)
TRADEMASTER_CLOCK_FILE = os.environ.get("TRADEMASTER_CLOCK_FILE", "")
MARKET_TICK_MS = int(os.environ.get("MARKET_TICK_MS", "500"))
# re-marked positions are announced on the stream (POSITIONS_MARKED) at most this often per user
POSITION_MARK_EVENT_SECONDS = Decimal(os.environ.get("POSITION_MARK_EVENT_SECONDS", "1"))

# --- i18n / static --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# serve from the app directories too when collectstatic has not run (tests, first start)
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- agentos (the trading agent) -------------------------------------------------------------------
# django-oauth-toolkit's Application is swappable: agentos.AgentProfile points at it, and the
# migration autodetector needs the setting named (its default value)
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
# one agent request (validate -> risk + route -> execute -> track) must finish within this
AGENT_DEADLINE_SECONDS = Decimal(os.environ.get("AGENT_DEADLINE_SECONDS", "30"))
# worker threads for the agent's database and broker work; each holds at most one database
# connection while it runs (returned after every call), so keep it below DATABASE_POOL_MAX.
# SQLite serialises writers anyway: one thread there unless set.
AGENT_THREADS = int(
    os.environ.get("AGENT_THREADS", "1" if DATABASES["default"]["ENGINE"].endswith("sqlite3") else "16")
)
# how often tracking looks at the order while waiting for the broker's acknowledgement
AGENT_TRACK_POLL_SECONDS = Decimal(os.environ.get("AGENT_TRACK_POLL_SECONDS", "0.05"))
# units of work the agent runs at once (per event loop); more requests wait for admission, and
# their deadline starts when they are admitted
AGENT_CONCURRENCY = int(os.environ.get("AGENT_CONCURRENCY", str(2 * AGENT_THREADS)))
