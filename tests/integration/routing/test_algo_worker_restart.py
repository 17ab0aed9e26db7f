"""A real Celery worker with beat, killed and restarted mid-schedule, releases each slice once.

The worker (``celery -A trademaster worker -B``) runs in its own process group on the
filesystem transport and shares a database with this test (as in
``tests/integration/test_celery_worker.py``: a SQLite file, or a ``tm_celery_<hex>`` PostgreSQL
database when the suite runs on PostgreSQL). Beat runs ``algo-release-due`` every second, and
the task reads now from ``TRADEMASTER_CLOCK_FILE``: the test moves time by rewriting that file
and polls the database for what the worker did, never sleeping a fixed time.

The scenario: a TWAP parent (BUY 1000 AAPL, 10 slices of 100, one a minute) is placed in
another process. The worker releases slices 0-3 and is killed with SIGKILL. While it is dead,
the crash window is staged: slice 4 is left RELEASING (claimed, with its quantity and fixed
client_order_id, no child yet) as a worker killed between claim and placement leaves it, and
the clock runs past slices 5 and 6. The restarted worker must place slice 4, merge the late
slice 5 into 6 and release 7. It is killed again; this time a process running the release
task dies right after the broker accepted the child of slice 8, before the slice is marked.
A third worker must adopt that child rather than send another, then release the last slice.

The worker runs on ``trademaster.celery_fs`` (kombu's filesystem transport writing each message
whole before renaming it into place); a worker that stops by itself fails the test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.test_celery_worker import ROOT, SharedDatabase, run_django, subprocess_env, wait_until
from trademaster.clock import clock_set

SLICES = 10
QUANTITY = Decimal(1000)
INTERVAL = dt.timedelta(minutes=1)  # 10 slices of 100 over a 10-minute window
KILLED_AT = 4  # the first worker releases slices 0-3, then is killed
CLAIMED = 4  # claimed by a dead worker, never placed
LATE = 5  # comes due while no worker runs: merged into slice 6
CAUGHT_UP = 6
PLACED_THEN_DIED = 8  # its child reached the broker, then the worker died before marking it
SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

PLACE_TWAP = """
import datetime as dt, json
from decimal import Decimal
import django
django.setup()
from django.contrib.auth import get_user_model
from brokers.services import market_set_mid
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.services import Actor, order_place
from routing.algos import AlgoParams

user = get_user_model().objects.create_user(username="restart", password="pw-for-tests-1")
market_set_mid(symbol="AAPL", mid=Decimal("100.00"))  # 1000 shares fit the paper accounts' cash
request = OrderRequest(
    symbol="AAPL", side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("{quantity}"),
    time_in_force=TimeInForce.DAY,
)
params = AlgoParams(
    kind="TWAP", start_time=dt.datetime.fromisoformat("{start}"), duration_seconds={seconds},
    slices={slices},
)
parent = order_place(user=user, request=request, actor=Actor.for_user(user), algo=params).order
print(json.dumps({{"parent": parent.pk, "algo": parent.algo_order.pk, "status": parent.status}}))
"""

# what a worker killed between the claim (step 2) and the placement (step 3) leaves behind
CLAIM_SLICE = """
import datetime as dt
import django
django.setup()
from routing.models import AlgoSlice, SliceState

s = AlgoSlice.objects.get(algo_id={algo}, seq={seq}, state=SliceState.PLANNED)
s.state = SliceState.RELEASING
s.released_quantity = s.quantity
s.client_order_id = "TMA{algo}S{seq}"
s.released_at = dt.datetime.fromisoformat("{at}")
s.save(update_fields=["state", "released_quantity", "client_order_id", "released_at"])
"""

# the worker's task, in a process that dies as soon as the broker has answered for the child
RELEASE_THEN_DIE = """
import json, os
import django
django.setup()
import routing.algos
from routing.tasks import algo_release_due_task

order_place = routing.algos.order_place

def place_then_die(**kwargs):
    child = order_place(**kwargs).order
    print(json.dumps({"child": child.pk, "client_order_id": child.client_order_id}), flush=True)
    os._exit(0)  # no cleanup, no commit of what follows: the slice stays RELEASING

routing.algos.order_place = place_then_die
algo_release_due_task()
raise SystemExit("the release task placed no child")
"""


@pytest.fixture
def shared_db(tmp_path) -> Iterator[SharedDatabase]:
    database = SharedDatabase(tmp_path)
    try:
        run_django(database, tmp_path, "manage.py", "migrate", "--no-input", "-v", "0")
        yield database
    finally:
        database.drop()


class Workers:
    """``celery worker -B`` processes, each in its own process group."""

    def __init__(self, database: SharedDatabase, var_dir: Path) -> None:
        self.database, self.var_dir = database, var_dir
        self.log_path = var_dir / "worker.log"
        self.log_path.write_text("")
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "trademaster", "worker", "-B"]
        command += ["--scheduler", SCHEDULER, "--concurrency", "1", "-l", "info"]
        with open(self.log_path, "a") as log:
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=subprocess_env(self.database, self.var_dir),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # worker, pool child and beat: one group to kill
                )
            )

    def kill(self) -> None:
        """SIGKILL every group: no warm shutdown, a task stops wherever it is."""
        while self.processes:  # each group once: a reaped group's id may be reused
            process = self.processes.pop()
            with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()

    def supervise(self) -> None:
        """Between polls: a worker that stopped by itself fails the test."""
        for process in self.processes:
            # WNOWAIT: the exited main process stays unreaped, so its group id cannot be reused
            exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            assert exited is None, f"the worker exited by itself:\n{self.log()[-4000:]}"


@pytest.fixture
def workers(shared_db, tmp_path) -> Iterator[Workers]:
    started = Workers(shared_db, tmp_path)
    try:
        yield started
    finally:
        started.kill()


def slice_states(db: SharedDatabase, algo: int) -> dict[int, str]:
    return dict(db.rows("SELECT seq, state FROM algo_slices WHERE algo_id = ?", algo))


def children(db: SharedDatabase, parent: int) -> list[str]:
    """The children's client_order_ids, oldest first."""
    return [
        cid
        for (cid,) in db.rows("SELECT client_order_id FROM orders WHERE parent_id = ? ORDER BY id", parent)
    ]


def test_killing_and_restarting_the_worker_releases_each_remaining_slice_exactly_once(
    shared_db, workers, tmp_path, monkeypatch
):
    db = shared_db
    clock = tmp_path / "clock.txt"
    # every subprocess (the snippets and the workers) takes its now from this file
    monkeypatch.setenv("TRADEMASTER_CLOCK_FILE", str(clock))
    placed_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = placed_at + dt.timedelta(hours=1)

    def due(seq: int) -> dt.datetime:
        return start + seq * INTERVAL

    def wait(condition: Callable[[], bool], what: str) -> None:
        def supervised() -> bool:
            workers.supervise()
            return condition()

        wait_until(supervised, what, workers.log)  # 60 s each: worker and beat start included

    def released(*seqs: int) -> Callable[[], bool]:
        return lambda: all(slice_states(db, algo)[seq] == "RELEASED" for seq in seqs)

    # given a TWAP parent placed by another process before its window opens
    clock_set(clock, placed_at)
    script = PLACE_TWAP.format(quantity=QUANTITY, start=start.isoformat(), seconds=SLICES * 60, slices=SLICES)
    placed = json.loads(run_django(db, tmp_path, "-c", script).strip().splitlines()[-1])
    parent, algo = placed["parent"], placed["algo"]
    assert placed["status"] == "ACCEPTED"
    assert slice_states(db, algo) == dict.fromkeys(range(SLICES), "PLANNED")

    # when a worker with beat releases slice after slice as the clock reaches each one
    clock_set(clock, due(0) - dt.timedelta(seconds=1))
    workers.start()
    for seq in range(KILLED_AT):
        clock_set(clock, due(seq))
        wait(released(seq), f"slice {seq} was released")
        assert children(db, parent) == [f"TMA{algo}S{s}" for s in range(seq + 1)]
    # and is killed (SIGKILL, the whole group) before the next one comes due
    workers.kill()
    assert [s for s, state in slice_states(db, algo).items() if state == "PLANNED"] == list(
        range(KILLED_AT, SLICES)
    )

    # while none runs: a claim that never got placed, and two more slices coming due
    clock_set(clock, due(CLAIMED))
    run_django(db, tmp_path, "-c", CLAIM_SLICE.format(algo=algo, seq=CLAIMED, at=due(CLAIMED).isoformat()))
    clock_set(clock, due(CAUGHT_UP) + dt.timedelta(seconds=5))
    assert len(children(db, parent)) == KILLED_AT

    # then a restarted worker places the claimed slice once and catches up on the late ones
    workers.start()
    wait(released(CLAIMED, CAUGHT_UP), "the claimed slice and the late slices were released")
    clock_set(clock, due(7))
    wait(released(7), "slice 7 was released")
    workers.kill()

    # a release that dies once the broker has the child of slice 8, before the slice is marked
    clock_set(clock, due(PLACED_THEN_DIED))
    died = json.loads(run_django(db, tmp_path, "-c", RELEASE_THEN_DIE).strip().splitlines()[-1])
    assert died["client_order_id"] == f"TMA{algo}S{PLACED_THEN_DIED}"
    assert slice_states(db, algo)[PLACED_THEN_DIED] == "RELEASING"

    # and the next worker adopts that child instead of sending another, then finishes the window
    workers.start()
    wait(released(PLACED_THEN_DIED), f"slice {PLACED_THEN_DIED} was marked released")
    clock_set(clock, due(SLICES - 1))
    wait(
        lambda: not {"PLANNED", "RELEASING"} & set(slice_states(db, algo).values()),
        "no slice is left to release",
    )
    workers.kill()

    # every slice was released or skipped; the late one went with the next
    slices = {
        seq: (state, note, client_order_id, child_id)
        for seq, state, note, client_order_id, child_id in db.rows(
            "SELECT seq, state, note, client_order_id, child_id FROM algo_slices WHERE algo_id = ?", algo
        )
    }
    released_seqs = sorted(seq for seq, (state, *_) in slices.items() if state == "RELEASED")
    skipped = sorted(seq for seq, (state, *_) in slices.items() if state == "SKIPPED")
    assert sorted(released_seqs + skipped) == list(range(SLICES))
    assert skipped == [LATE]
    assert slices[LATE][1].startswith("late:"), slices[LATE]
    for seq in released_seqs:
        assert slices[seq][2] == f"TMA{algo}S{seq}"
        assert slices[seq][3] is not None, f"slice {seq} has no child: {slices[seq][1]}"
    assert slices[PLACED_THEN_DIED][3] == died["child"]

    # exactly one child per released slice, named after it; together the parent's quantity
    rows = db.rows(
        "SELECT id, client_order_id, CAST(quantity AS TEXT), status FROM orders WHERE parent_id = ?", parent
    )
    ids = [cid for _, cid, _, _ in rows]
    assert len(rows) == len(released_seqs)
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == sorted(f"TMA{algo}S{seq}" for seq in released_seqs)
    assert {child_id for child_id, *_ in rows} == {slices[seq][3] for seq in released_seqs}
    quantities = {cid: Decimal(quantity) for _, cid, quantity, _ in rows}
    assert sum(quantities.values(), Decimal(0)) == QUANTITY
    # each slice 100, slice 6 with the late slice 5's 100 on top
    expected = dict.fromkeys(released_seqs, Decimal(100)) | {CAUGHT_UP: Decimal(200)}
    assert quantities == {f"TMA{algo}S{seq}": q for seq, q in expected.items()}
    assert {status for *_, status in rows} == {"FILLED"}

    totals = "SELECT status, CAST(filled_quantity AS TEXT) FROM orders WHERE id = ?"
    [(status, filled)] = db.rows(totals, parent)
    assert (status, Decimal(filled)) == ("FILLED", QUANTITY)
    assert db.rows("SELECT state FROM algo_orders WHERE id = ?", algo) == [("DONE",)]

    # and the broker side never saw a client_order_id twice
    duplicates = "SELECT client_order_id FROM brokers_paperorder GROUP BY client_order_id HAVING count(*) > 1"
    assert db.rows(duplicates) == []
    paper = db.rows(
        "SELECT client_order_id FROM brokers_paperorder WHERE client_order_id LIKE ?", f"TMA{algo}S%"
    )
    assert sorted(cid for (cid,) in paper) == sorted(ids)
