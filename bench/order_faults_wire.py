"""Order success rate with faults injected in the broker fakes, through the real adapters on loopback.

    .venv/bin/python bench/order_faults_wire.py [--orders 10000] [--fault-percent 1] [--overhead-orders 1000]
        [--timeout 0.5] [--seed 6] [--no-ibkr] [--db sqlite|postgres]
        [--database-url postgres://postgres@127.0.0.1:5432/tm_bench_wire]

The wire sibling of ``order_faults.py`` (whose helpers it uses): no adapter is replaced. The fakes
of ``tests/fakes`` serve the real adapters over real sockets: FakeAlpaca for trading (behind a
``tests.fakes.demo.Relay``, so it can be taken down and brought back on the same port), a second
FakeAlpaca as Alpaca's market data API (so a scripted trading fault never meets a quote read),
FakeSchwab (trader, market data, OAuth) and, unless ``--no-ibkr``, FakeTws with the IB gateway and
its bridge in this process. One user holds an account at each, created with the demo credentials
(``tests.fakes.demo``) and marked CONNECTED (its paper accounts are deactivated). The adapters'
timeouts are ``--timeout`` seconds (IB: the gateway's wait for TWS); ``BROKER_RATE_LIMITS`` is
raised to 60,000 calls a minute (burst 500) per account so the limiter does not throttle the bench
itself, while the cooldown a 429 sets stays as it is; Redis is not used (in-process limiter state).
The fakes' ``http.server`` handlers get TCP_NODELAY (otherwise each reply waits ~40 ms for a
delayed ACK: an artefact of the fake, not of the adapters).

For each of ``--orders`` small MARKET orders (1..5 shares; buy AAPL, sell AAPL, buy MSFT, sell MSFT,
...) one broker is picked at random and quoted a cent around the mid, the others $1.50 (more than
IB's $1 minimum commission on one share), so routing prefers it. Each fake fills every market order
whole at the mid on placement: Alpaca's and Schwab's fills scripts are stocked again before each
order; the fake TWS gets ``next_place("fill")`` when IB is preferred, and whatever rests there (an
order it took without answering, or one failed over to it) is filled with ``fill_open`` after each
order (the OMS learns of that fill from reconciliation). With seeded probabilities
(``--fault-percent`` each) the preferred fake is scripted, through its public API, for its next
trading request ("landed": it met a placement; a fault whose order went to another broker is taken
off again with a read of the bench's own, so it never meets a later order):

- 429: ``fail_next(429)`` with ``X-Ratelimit-Reset`` (Alpaca) / ``Retry-After`` (Schwab), 1 s;
- 5xx: ``fail_next(500)``: nothing placed, the outcome is unknown to the adapter (looked up);
- slow: ``delay_next(timeout + 0.5 s)``: the fake places (and fills) the order and answers late;
- reject: ``fail_next(403, "insufficient buying power")`` (Alpaca) / ``reject_next`` (Schwab, the
  order is taken then REJECTED): a business reject, which a healthy broker gives too;
- IB (no HTTP, no 429): 5xx -> ``next_place("swallow")`` (taken, never acknowledged), slow ->
  ``next_place("fill", delay=...)``, reject -> ``next_place("reject")``.

Orders 40 % to 50 % of the run see Alpaca's trading API down: the relay is stopped (connections
refused) and started again after. ``order_place`` runs without a named broker (routing picks, a
refused order fails over); ``orders_resend_due`` runs every 20 orders and, after the last order,
until no order is SUBMITTED with ``resend_at`` (deadline 300 s); then ``reconcile_all()`` once.
When no account can take an order at entry (``no_eligible_broker``, HTTP 400: e.g. Alpaca down and
Schwab cooling down after a 429, so neither is quoted), the bench acts as a client and tries again
every 0.25 s for 10 s with the same client order id; an order still refused counts as not executed.

Counted: FILLED (executed), business rejects (REJECTED with "insufficient buying power"), other
rejects by reason, other states; duplicates: client order ids Alpaca holds twice, Schwab orders no
order of ours maps to (or two map to), IB orderRefs placed twice, client order ids executed at two
brokers; the fakes' fills against ours. Success rate = executed / (orders not business-rejected),
goal 99.9 %; exit 1 when missed or on any duplicate. Adapter overhead: ``--overhead-orders``
fault-free orders per broker (named), the adapter's ``place()`` (timed inside it: the round trips
to the fake included) against the whole ``order_place``; percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import httpx
from order_faults import GOAL_PERCENT, in_throwaway_database, ms, pct, percent

ROOT = Path(__file__).resolve().parent.parent
MIDS = {"AAPL": D("190.00"), "MSFT": D("410.00")}
SYMBOLS = tuple(MIDS)
FAULT_KINDS = ("429", "5xx", "slow", "reject")
BUSINESS_REJECT = "insufficient buying power"
DOWN_FROM, DOWN_TO = D("0.40"), D("0.50")  # share of the run during which Alpaca's trading API is down
RESEND_EVERY = 20
FILLS_STOCKED = 1000  # scripted fills per symbol, stocked again before each order
ENTRY_RETRY_SECONDS, ENTRY_RETRY_PAUSE = 10, 0.25  # a client re-trying an order no account could take
DRAIN_SECONDS = 300
IB_TOKEN = "bench-ib-bridge-token"
LIMITS = {
    "ibkr": [{"name": "messages", "count": 60000, "seconds": 60, "burst": 500}],
    "alpaca": [{"name": "requests", "count": 60000, "seconds": 60, "burst": 500}],
    "schwab": [
        {"name": "requests", "count": 60000, "seconds": 60, "burst": 500},
        {"name": "orders", "count": 60000, "seconds": 60, "burst": 500, "orders_only": True},
    ],
}
CENT, WIDE = D("0.01"), D("1.50")  # the preferred broker's half spread, the others'

TimedAlpaca = TimedSchwab = TimedIbkr = None  # adapters timing their own place() (set up in run())
PLACE_NS: dict[str, list[int]] = {"alpaca": [], "schwab": [], "ibkr": []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--orders", type=int, default=10000, help="orders placed with faults injected")
    parser.add_argument("--fault-percent", default="1", help="probability of each fault kind per order")
    parser.add_argument(
        "--overhead-orders", type=int, default=1000, help="fault-free orders timed per broker"
    )
    parser.add_argument("--timeout", default="0.5", help="the adapters' HTTP timeout, seconds")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--no-ibkr", dest="ibkr", action="store_false", help="leave the fake TWS out")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tm_bench_wire")
    args = parser.parse_args()
    if args.orders < 1 or args.overhead_orders < 1:
        parser.error("--orders and --overhead-orders must be positive")
    args.fault_percent = D(args.fault_percent)
    if not D(0) <= args.fault_percent * len(FAULT_KINDS) <= D(100):
        parser.error("--fault-percent times the four fault kinds must be within 0..100")

    os.environ.pop("REDIS_URL", None)  # in-process limiter and cooldowns: nothing left from another run
    return in_throwaway_database(
        args, run, prefix="tm-bench-wire-", env={"BROKER_RATE_LIMITS": json.dumps(LIMITS)}
    )


def timed(base: type, label: str) -> type:
    """``base`` whose place() records its own duration (only when it returns)."""

    class Timed(base):
        def place(self, request):
            started = time.perf_counter_ns()
            updates = super().place(request)
            PLACE_NS[label].append(time.perf_counter_ns() - started)
            return updates

    Timed.__name__ = Timed.__qualname__ = f"Timed{base.__name__}"
    return Timed


def quote(mid: D, width: D) -> tuple[D, D]:
    return mid - width, mid + width


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # every unknown outcome, failover and (ib_async, at ERROR) TWS reject is logged; the counts say it
    logging.disable(logging.ERROR)

    from brokers.adapters.alpaca import AlpacaAdapter
    from brokers.adapters.ibkr import IbkrAdapter
    from brokers.adapters.schwab import SchwabAdapter
    from brokers.ibkr.bridge import IbBridge
    from brokers.ibkr.gateway import IbGateway
    from brokers.services import adapters_reset
    from tests.fakes.alpaca import FakeAlpaca
    from tests.fakes.demo import DEMO_ALPACA, DEMO_IBKR, DEMO_SCHWAB, Relay
    from tests.fakes.ibkr import FakeTws
    from tests.fakes.schwab import FakeSchwab

    global TimedAlpaca, TimedSchwab, TimedIbkr
    TimedAlpaca, TimedSchwab = timed(AlpacaAdapter, "alpaca"), timed(SchwabAdapter, "schwab")
    TimedIbkr = timed(IbkrAdapter, "ibkr")

    # --- the fakes and the settings pointing at them ----------------------------------------------
    alpaca = FakeAlpaca(key=DEMO_ALPACA.api_key, secret=DEMO_ALPACA.api_secret).start()
    alpaca_data = FakeAlpaca(key=DEMO_ALPACA.api_key, secret=DEMO_ALPACA.api_secret).start()
    schwab = FakeSchwab(
        app_key=DEMO_SCHWAB.api_key, app_secret=DEMO_SCHWAB.api_secret, refresh=DEMO_SCHWAB.refresh_token
    ).start()
    for fake in (alpaca, alpaca_data, schwab):
        # http.server writes the headers and the body apart: without TCP_NODELAY each reply waits
        # for the client's delayed ACK (~40 ms on Linux), an artefact no real broker has
        fake.server.RequestHandlerClass.disable_nagle_algorithm = True
    alpaca_port = int(alpaca.url.rsplit(":", 1)[1])
    relay = Relay(0, alpaca_port, name="alpaca-trading").start()
    env = {
        "alpaca": alpaca,
        "alpaca_data": alpaca_data,
        "schwab": schwab,
        "alpaca_port": alpaca_port,
        "relay": relay,
        "relay_port": relay.port,
        "relay_up": True,
        "timeout": float(args.timeout),
        "tws": None,
    }
    gateway = bridge = None
    if args.ibkr:  # the fake TWS, and the gateway + bridge in this process (their own threads)
        env["tws"] = FakeTws(accounts=(DEMO_IBKR.account_id,)).start()
        gateway = IbGateway(
            connect_timeout=2, request_timeout=float(args.timeout), reconnect_min=0.05, reconnect_max=0.2
        ).start()
        bridge = IbBridge(gateway, token=IB_TOKEN).start()
        settings.IB_GATEWAY_URL, settings.IB_GATEWAY_TOKEN = bridge.url, IB_TOKEN
        # adapter -> bridge outlasts the gateway's wait for TWS (the gateway answers a timeout itself)
        settings.IB_GATEWAY_TIMEOUT_SECONDS = float(args.timeout) * 2 + 2
        settings.IB_GATEWAY_STREAM_WAIT_SECONDS = 2
    alpaca.account["buying_power"] = alpaca.account["cash"] = D("100000000")
    schwab.balances["buyingPower"] = schwab.balances["cashBalance"] = D("100000000")
    settings.ALPACA_TRADING_URL = f"http://127.0.0.1:{relay.port}"
    settings.ALPACA_DATA_URL = alpaca_data.url
    settings.SCHWAB_TRADER_URL = schwab.trader_url
    settings.SCHWAB_MARKETDATA_URL = schwab.marketdata_url
    settings.SCHWAB_TOKEN_URL = schwab.token_url
    settings.ALPACA_TIMEOUT_SECONDS = settings.SCHWAB_TIMEOUT_SECONDS = float(args.timeout)
    settings.BROKER_ADAPTERS = {
        **settings.BROKER_ADAPTERS,
        "alpaca": f"{__name__}.TimedAlpaca",
        "schwab": f"{__name__}.TimedSchwab",
        "ibkr": f"{__name__}.TimedIbkr",
    }
    adapters_reset()
    try:
        return measure(args, env)
    finally:
        if env["relay_up"]:
            env["relay"].stop()
        for fake in (alpaca, alpaca_data, schwab):
            fake.stop()
        if bridge is not None:
            bridge.stop()
            gateway.stop()
            env["tws"].stop()


def measure(args: argparse.Namespace, env: dict) -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from brokers.credentials import broker_account_create
    from brokers.domain.adapter import BrokerError
    from brokers.domain.credentials import CredentialChange
    from brokers.models import BrokerAccount, ConnectionStatus
    from brokers.services import adapter_for
    from orders.domain.enums import OrderType, Side, TimeInForce
    from orders.domain.validation import OrderRequest
    from orders.models import Order, OrderEvent
    from orders.reconcile import reconcile_all
    from orders.services import Actor, order_place, orders_resend_due
    from risk.models import RiskProfile
    from tests.fakes.demo import DEMO_ALPACA, DEMO_IBKR, DEMO_SCHWAB, Relay, demo_ibkr_connection
    from trademaster.errors import TradeMasterError

    alpaca, alpaca_data, schwab, tws = env["alpaca"], env["alpaca_data"], env["schwab"], env["tws"]
    timeout = env["timeout"]

    # --- the user: an equity account at each fake -------------------------------------------------
    user = get_user_model().objects.create_user("wire-faults-bench", password=None)
    accounts = {}
    for demo in (DEMO_ALPACA, DEMO_SCHWAB):
        accounts[demo.broker_name] = broker_account_create(
            user=user,
            broker_name=demo.broker_name,
            account_id=demo.account_id,
            label=demo.label,
            sandbox_mode=True,
            credentials=CredentialChange(
                api_key=demo.api_key, api_secret=demo.api_secret, refresh_token=demo.refresh_token or None
            ),
        )
    if tws is not None:  # the IB account stores the fake TWS's address (client id 1)
        accounts["ibkr"] = broker_account_create(
            user=user,
            broker_name=DEMO_IBKR.broker_name,
            account_id=DEMO_IBKR.account_id,
            label=DEMO_IBKR.label,
            sandbox_mode=True,
            credentials=CredentialChange(connection=demo_ibkr_connection(tws.port)),
        )
    BrokerAccount.objects.filter(user=user).exclude(pk__in=[a.pk for a in accounts.values()]).update(
        is_active=False
    )  # the paper accounts every user gets: the bench routes between the two fakes only
    big = D("100000000")
    BrokerAccount.objects.filter(user=user).update(
        connection_status=ConnectionStatus.CONNECTED,
        health_detail="bench",
        buying_power=big,
        cash=big,
        total_value=big,
        day_trading_policy="off",
    )
    accounts = {k: BrokerAccount.objects.get(pk=a.pk) for k, a in accounts.items()}
    label_of = {a.pk: k for k, a in accounts.items()}
    RiskProfile.objects.update_or_create(
        user=user,
        defaults={
            "max_position_notional": None,
            "max_gross_exposure": None,
            "max_open_orders": None,
            "max_orders_per_minute": None,
            "daily_loss_limit": None,
            "duplicate_window_seconds": 0,
            "pdt_enforcement": False,
            "max_concentration_percent": None,
        },
    )
    actor = Actor.for_user(user)
    rng = random.Random(args.seed)
    trading = {"alpaca": alpaca, "schwab": schwab}
    names = list(accounts)
    ib = {"queued": 0}  # behaviours given to the fake TWS; it takes one per new order (len(tws.orders))

    def set_market(preferred: str) -> None:
        for symbol, mid in MIDS.items():
            for name in names:
                bid, ask = quote(mid, CENT if name == preferred else WIDE)
                if name == "ibkr":
                    tws.set_quote(symbol, bid, ask)
                    continue
                (alpaca_data if name == "alpaca" else schwab).set_quote(symbol, bid, ask)
                fake = trading[name]
                with fake.lock:  # every market order of the symbol fills whole at the mid
                    fake.fills[symbol] = [(D(1000000), mid)] * FILLS_STOCKED

    def ib_next(kind: str = "fill", **how) -> bool:
        """Script the fake TWS's next new order (a fill at the quote unless told) if nothing is
        scripted yet; False when a behaviour is still waiting (the last order went elsewhere)."""
        if tws is None or ib["queued"] > len(tws.orders):
            return False
        tws.next_place(kind, **how)
        ib["queued"] += 1
        return True

    def ib_sweep() -> None:
        """Fill at the mid what rests at the fake TWS (an order it took without answering)."""
        if tws is None:
            return
        for order in tws.open_orders():
            tws.fill_open(order.order_ref, order.remaining, MIDS[order.fields["symbol"]])

    def request(i: int, cid: str | None = None) -> OrderRequest:
        return OrderRequest(
            symbol=SYMBOLS[(i // 2) % 2],
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            order_type=OrderType.MARKET,
            quantity=D(rng.randint(1, 5)),
            time_in_force=TimeInForce.DAY,
            client_order_id=cid,
        )

    def arm(name: str, kind: str) -> bool:
        """Script ``kind`` for the next trading request at ``name``; False when not scripted."""
        if name == "ibkr":  # TWS speaks no HTTP: no 429 (its pacing is ib_async's), no 5xx
            if kind == "5xx":
                return ib_next("swallow")  # taken, never acknowledged: the outcome is unknown
            if kind == "slow":
                return ib_next("fill", delay=timeout + 0.5)
            if kind == "reject":
                return ib_next("reject", reason=BUSINESS_REJECT)
            return False
        fake = trading[name]
        if kind == "429":
            if name == "alpaca":
                reset = str(int(time.time()) + 1)
                fake.fail_next(
                    429, {"code": 42910000, "message": "rate limit exceeded"}, {"X-Ratelimit-Reset": reset}
                )
            else:
                fake.fail_next(429, {"message": "Too Many Requests", "errors": []}, {"Retry-After": "1"})
        elif kind == "5xx":
            body = {"code": 50010000, "message": "internal server error"}
            fake.fail_next(
                500, body if name == "alpaca" else {"message": "Internal Server Error", "errors": []}
            )
        elif kind == "slow":
            fake.delay_next(timeout + 0.5)
        elif name == "alpaca":
            fake.fail_next(403, {"code": 40310000, "message": BUSINESS_REJECT})
        else:
            fake.reject_next = f"Order not accepted: {BUSINESS_REJECT}"
        return True

    def flush(name: str) -> None:
        """Take a scripted fault off ``name`` with a read of the bench's own (it meets that read)."""
        if name == "schwab" and schwab.reject_next is not None:
            schwab.reject_next = None  # only a placement meets it
            return
        if name == "alpaca":
            url = f"{alpaca.url}/v2/account"
            headers = {"APCA-API-KEY-ID": DEMO_ALPACA.api_key, "APCA-API-SECRET-KEY": DEMO_ALPACA.api_secret}
        else:
            url = f"{schwab.trader_url}/accounts/accountNumbers"
            headers = {"Authorization": f"Bearer {next(iter(schwab.access_tokens))}"}
        httpx.get(url, headers=headers, timeout=timeout + 5)

    # warm up: the Schwab token and account hash, the HTTP connections (not counted)
    for account in accounts.values():
        adapter_for(account).account()

    # --- the faulty run ------------------------------------------------------------------------
    n = args.orders
    down_from, down_to = int(DOWN_FROM * n), int(DOWN_TO * n)
    relay = env["relay"]
    armed: Counter = Counter()
    flushed: Counter = Counter()  # armed faults taken off again: their order went to another broker
    landed: Counter = Counter()  # armed faults whose fake's next trading request was a placement
    ids: list[int] = []
    resent = refused_for_good = 0
    entry_refusals: Counter = Counter()
    retried: set[int] = set()
    pause = threading.Event()
    started = time.perf_counter_ns()
    for i in range(n):
        if i == down_from:
            relay.stop()
            env["relay_up"] = False
        if i == down_to:
            relay = env["relay"] = Relay(env["relay_port"], env["alpaca_port"], name="alpaca-trading").start()
            env["relay_up"] = True
        if i % RESEND_EVERY == 0:
            resent += orders_resend_due()
        preferred = names[rng.randrange(len(names))]
        set_market(preferred)
        draw = D(rng.randrange(1_000_000)) / D(10_000)  # 0.0000 .. 99.9999 percent
        kind = next((k for j, k in enumerate(FAULT_KINDS) if draw < args.fault_percent * (j + 1)), None)
        seen = len(tws.placed) if preferred == "ibkr" else len(trading[preferred].requests)
        if kind is not None and arm(preferred, kind):
            armed[(preferred, kind)] += 1
        else:
            kind = None
        if preferred == "ibkr":
            ib_next()  # IB's next new order fills (unless a fault was scripted for it just now)
        req = request(i, f"W{args.seed}x{i}")
        give_up = time.monotonic() + ENTRY_RETRY_SECONDS
        while True:
            try:
                ids.append(order_place(user=user, request=req, actor=actor).order.pk)
                break
            except TradeMasterError as exc:  # no account can take it now: the client tries again
                if exc.code != "no_eligible_broker":
                    raise
                entry_refusals[" / ".join(sorted(exc.extra.get("candidates", [])))[:100]] += 1
                retried.add(i)
                if time.monotonic() >= give_up:
                    refused_for_good += 1
                    break
                pause.wait(ENTRY_RETRY_PAUSE)  # the client's pause before it tries again
        ib_sweep()
        if kind is not None and preferred == "ibkr":
            landed[(preferred, kind)] += len(tws.placed) > seen
        elif kind is not None:
            fake = trading[preferred]
            first = fake.requests[seen] if len(fake.requests) > seen else None
            if first is not None and first[0] == "POST" and first[1].endswith("/orders"):
                landed[(preferred, kind)] += 1
            if first is None or (preferred == "schwab" and schwab.reject_next is not None):
                flush(preferred)  # the order went elsewhere: the fault must not meet a later one
                flushed[(preferred, kind)] += 1
    if not env["relay_up"]:
        env["relay"] = Relay(env["relay_port"], env["alpaca_port"], name="alpaca-trading").start()
        env["relay_up"] = True
    placing_ns = time.perf_counter_ns() - started

    # --- deferred orders: re-sent until none is left waiting (deadline) ---------------------------
    waiting = Order.objects.filter(pk__in=ids, status="SUBMITTED", resend_at__isnull=False)
    started = time.perf_counter_ns()
    deadline = time.monotonic() + DRAIN_SECONDS
    while waiting.exists() and time.monotonic() < deadline:
        resent += orders_resend_due()
        ib_sweep()
        pause.wait(0.2)  # poll interval of the deadline loop
    drain_ns = time.perf_counter_ns() - started
    still_waiting = waiting.count()
    ib_sweep()
    before_reconcile = Counter(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
    started = time.perf_counter_ns()
    reports = reconcile_all()
    reconcile_ns = time.perf_counter_ns() - started

    # --- the counts ------------------------------------------------------------------------------
    orders = list(
        Order.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "client_order_id", "status", "status_reason", "broker_id", "broker_order_id")
    )
    states = Counter(o[2] for o in orders)
    business = [o for o in orders if o[2] == "REJECTED" and BUSINESS_REJECT in (o[3] or "")]
    other_rejects = Counter((o[3] or "")[:100] for o in orders if o[2] == "REJECTED" and o not in business)
    executed = states["FILLED"]
    eligible = len(orders) + refused_for_good - len(business)
    missed = [o[0] for o in orders if o[2] != "FILLED" and o not in business]
    by_broker = Counter(label_of.get(o[4], str(o[4])) for o in orders if o[2] == "FILLED")

    with alpaca.lock:
        alpaca_orders = [dict(o) for o in alpaca.orders.values()]
    with schwab.lock:
        schwab_orders = [dict(o) for o in schwab.orders.values()]
    alpaca_cids = Counter(o["client_order_id"] for o in alpaca_orders)
    alpaca_twice = sum(1 for c in alpaca_cids.values() if c > 1)
    schwab_pk = accounts["schwab"].pk
    schwab_ids = Counter(o[5] for o in orders if o[4] == schwab_pk and o[5])
    schwab_claimed_twice = sum(1 for c in schwab_ids.values() if c > 1)
    unmapped = [o for o in schwab_orders if str(o["orderId"]) not in schwab_ids]
    schwab_orphans = [o for o in unmapped if o["status"] != "REJECTED"]  # a rejected one never executed
    alpaca_filled = {o["client_order_id"] for o in alpaca_orders if o["status"] == "filled"}
    schwab_filled = {str(o["orderId"]) for o in schwab_orders if o["status"] == "FILLED"}
    ib_refs: Counter = Counter()
    ib_filled: set[str] = set()
    if tws is not None:
        ib_refs = Counter(p["orderRef"] for p in list(tws.placed))
        ib_filled = {o.order_ref for o in list(tws.orders.values()) if o.status == "Filled"}
    ib_twice = sum(1 for c in ib_refs.values() if c > 1)
    executed_at: Counter = Counter()
    for cid in alpaca_filled | ib_filled:
        executed_at[cid] += 1
    for o in orders:
        if o[4] == schwab_pk and o[5] in schwab_filled:
            executed_at[o[1]] += 1
    both = sum(1 for c in executed_at.values() if c > 1)
    duplicates = alpaca_twice + schwab_claimed_twice + len(schwab_orphans) + ib_twice + both
    venue_fills = len(alpaca_filled) + len(schwab_filled) + len(ib_filled)
    alpaca_at_fake = len(alpaca_orders)
    schwab_at_fake = len(schwab_orders)

    # --- adapter overhead: fault-free orders per broker, place() alone vs the whole order_place ---
    set_market("alpaca")
    for account in accounts.values():  # a 429 of the last orders may still cool an account down
        quoted_by = time.monotonic() + 10
        while time.monotonic() < quoted_by:
            try:
                adapter_for(account).quote(SYMBOLS[0])
                break
            except BrokerError:
                pause.wait(0.2)  # poll interval of the deadline loop
    while tws is not None and ib["queued"] > len(tws.orders):  # a fault scripted, its order went elsewhere
        order_place(user=user, request=request(0), actor=actor, broker_id=accounts["ibkr"].pk)
    ib_sweep()
    overhead = {}
    filled_now: Counter = Counter()  # overhead orders FILLED when order_place returned
    for name, account in accounts.items():
        PLACE_NS[name].clear()
        total_ns: list[int] = []
        for i in range(args.overhead_orders):
            set_market(name)
            ib_next()
            req = request(i)
            t0 = time.perf_counter_ns()
            placed = order_place(user=user, request=req, actor=actor, broker_id=account.pk).order
            total_ns.append(time.perf_counter_ns() - t0)
            filled_now[name] += placed.status == "FILLED"
            # IB: TWS acknowledges, then fills: the fill may come after place() has returned
            taken = ("FILLED", "ACCEPTED") if name == "ibkr" else ("FILLED",)
            if placed.status not in taken or len(PLACE_NS[name]) != i + 1:
                path = OrderEvent.objects.filter(order_id=placed.pk).values_list("event_type", "data")
                raise SystemExit(
                    f"fault-free {name} order {placed.pk} ended {placed.status}: {placed.status_reason} "
                    f"({len(PLACE_NS[name])} place() timed of {i + 1}; events {list(path)})"
                )
        adapter_ns = list(PLACE_NS[name])
        overhead[name] = (adapter_ns, total_ns, [t - a for t, a in zip(total_ns, adapter_ns, strict=True)])

    # --- the summary ---------------------------------------------------------------------------
    rate = D(executed) * 100 / D(eligible) if eligible else D(0)
    ok = rate >= GOAL_PERCENT and duplicates == 0
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"order_faults_wire on {engine}, seed {args.seed}, adapter timeout {args.timeout}s")
    print(
        f"fakes: FakeAlpaca (trading via relay, data apart), FakeSchwab"
        f"{', FakeTws (gateway + bridge in process)' if tws is not None else ''}; Alpaca trading down (relay "
        f"stopped) for orders {down_from}..{down_to - 1}; each fault kind {args.fault_percent}% per order"
    )
    print(f"orders placed: {n} in {ms(placing_ns)} ms ({ms(placing_ns // n)} ms/order)")
    print(
        "faults armed on the preferred fake (landed on a placement): "
        + ", ".join(f"{b} {k} {armed[(b, k)]} ({landed[(b, k)]})" for b in names for k in FAULT_KINDS)
        + f"; total {sum(armed.values())} ({sum(landed.values())}); taken off unmet (the order went "
        f"elsewhere) {sum(flushed.values())}"
    )
    print(
        f"refused at entry (no_eligible_broker, HTTP 400), the client trying again every "
        f"{ENTRY_RETRY_PAUSE}s for {ENTRY_RETRY_SECONDS}s: {sum(entry_refusals.values())} refusals over "
        f"{len(retried)} orders, refused for good {refused_for_good} (counted as not executed)"
    )
    for reason, count in entry_refusals.most_common(5):
        print(f"    {count:6d}  {reason}")
    print(
        f"deferred re-sends: {resent}; drain after the last order {ms(drain_ns)} ms, "
        f"still waiting {still_waiting}"
    )
    print(f"states before reconciliation: {dict(sorted(before_reconcile.items()))}")
    print(
        f"reconcile_all: {len(reports)} account(s) in {ms(reconcile_ns)} ms; "
        f"states after: {dict(sorted(states.items()))}"
    )
    print(f"executed (FILLED): {executed} of {len(orders)}; by broker {dict(sorted(by_broker.items()))}")
    print(f"rejected, business reject: {len(business)} (a healthy broker would refuse them too)")
    print(f"rejected, anything else: {sum(other_rejects.values())}")
    for reason, count in other_rejects.most_common(10):
        print(f"    {count:6d}  {reason}")
    at_fake = {o["client_order_id"]: o["status"] for o in alpaca_orders}
    at_fake.update({str(o["orderId"]): o["status"] for o in schwab_orders})
    if tws is not None:
        at_fake.update({o.order_ref: o.status for o in list(tws.orders.values())})
    for pk, cid, _status, _, broker, broker_order_id in (o for o in orders if o[0] in missed[:5]):
        path = OrderEvent.objects.filter(order_id=pk).order_by("id").values_list("event_type", "data")
        there = at_fake.get(cid) or at_fake.get(broker_order_id or "")
        print(
            f"    order {pk} {cid} at {label_of.get(broker)} ({broker_order_id}; the fake says {there}): "
            + " -> ".join(f"{kind} {data}" if data else kind for kind, data in path)
        )
    others = {s: c for s, c in states.items() if s not in ("FILLED", "REJECTED")}
    print(f"other states: {others or 'none'}")
    print(
        f"success rate: {executed} / {eligible} orders a healthy broker would accept = {rate:.3f}% "
        f"(goal >= {GOAL_PERCENT}%: {'MET' if rate >= GOAL_PERCENT else 'MISSED'}); "
        f"not executed {eligible - executed} ({percent(eligible - executed, eligible)})"
    )
    print(
        f"at the fakes: Alpaca {alpaca_at_fake} orders, Schwab {schwab_at_fake}, IB {len(ib_refs)}; "
        f"filled there {venue_fills} "
        f"(ours FILLED {executed})"
    )
    print(
        f"duplicates: {duplicates} (Alpaca client ids held twice {alpaca_twice}, Schwab orders no order "
        f"maps to {len(schwab_orphans)}, Schwab orders two orders map to {schwab_claimed_twice}, "
        f"IB orderRefs placed twice {ib_twice}, executed at two brokers {both}; goal 0); "
        f"Schwab REJECTED orders with no order id of ours "
        f"{len(unmapped) - len(schwab_orphans)}"
    )
    print(
        f"adapter overhead over {args.overhead_orders} fault-free orders per broker (ms); FILLED when "
        f"order_place returned: {dict(filled_now)}"
    )
    print(f"    {'':38s} {'p50':>9s} {'p95':>9s} {'max':>9s}")
    for name, (adapter_ns, total_ns, service_ns) in overhead.items():
        for label, samples in (
            (f"{name} adapter place() (HTTP)", adapter_ns),
            (f"{name} whole order_place", total_ns),
            (f"{name} order_place minus place()", service_ns),
        ):
            p50, p95, top = ms(pct(samples, 50)), ms(pct(samples, 95)), ms(max(samples))
            print(f"    {label:38s} {p50:>9s} {p95:>9s} {top:>9s}")
    print("RESULT: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
