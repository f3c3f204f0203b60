"""One hot stock row on MariaDB: 100 buyers for 20 copies, by reservation design and by pool.

Run it with ``.venv/bin/python -m benchmarks.bench_hot_row`` (about two minutes on 2 cores;
``--rounds N`` for more rounds, ``--quick`` only checks that it runs, ``--pools`` runs only
the pools' table, ``--hogs N`` runs it beside N spinning processes, as the hot-row
integration test does: slow, several minutes a round). It needs the MariaDB
on 127.0.0.1:3306 (root, no password) and exits 2, saying why, when none answers. It writes
the figures to ``build/bench_hot_row.json``. It exits 1 when a run sells anything but exactly
20 copies, never because of a time.

The scene is the inventory service's, without gRPC: two worker processes (two inventory
replicas), each with 16 threads (the default ``BOOKSTORE_GRPC_WORKERS``) and its own engine,
reserve one copy each for 100 buyers of one book that has 20 copies, all released at the same
instant. Measured per run: seconds until every buyer has an answer, seconds until the 20th
copy is sold, and how many buyers waited longer than 2 s (the order service's deadline for
ReserveStock, ``BOOKSTORE_DEADLINE_S``).

1. **Reservation designs**, each on the pool the services use (``BOOKSTORE_DB_POOL_SIZE``,
   4 connections opened before the buyers start, no more ever), so that only the statement
   differs:

   * ``conditional_update`` (the baseline, and what ``InventoryStore`` does): one transaction
     inserts the reservation row, runs ``UPDATE stock SET available = available - :n WHERE
     book_id = :id AND available >= :n`` (the rowcount says whether it took), inserts the
     items and commits. Waiters queue on the row lock inside InnoDB.
   * ``nowait``: ``SELECT ... FOR UPDATE NOWAIT`` on the stock row; a buyer that finds it
     locked rolls back and tries again after a random pause (full jitter, at most 30 tries).
   * ``skip_locked``: the same with ``FOR UPDATE SKIP LOCKED`` (an empty result means locked).
   * ``lock_wait_1s``: ``SELECT ... FOR UPDATE`` with the session's
     ``innodb_lock_wait_timeout`` lowered to 1 s; a timeout is retried the same way.

2. **Connection pools**, all with the baseline statement: the pool the services had (10
   connections kept, 20 more opened for a burst and closed on return, empty at start: the
   baseline) against the pool they have now (4 opened at start, no overflow: a burst waits
   for one of them) and, for reference, a pool of 20 opened at start (one per server thread
   and some spare; it exhausted ``max_connections`` when CI clusters overlapped).

Every configuration runs once per round, in the same order, so a machine that slows down for
a while slows all of them alike; the tables show medians over the rounds and the ratio to the
baseline of the same table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from benchmarks.common import load_average, machine, warn_if_busy, write_report
from bookstore.domain.errors import FailedPrecondition, NotFound
from bookstore.domain.models import Reservation, ReservationStatus, StockItem
from bookstore.launcher.load import cpu_hogs
from bookstore.platform.database import drop_mysql_databases, mysql_unavailable_reason
from bookstore.platform.settings import Settings
from bookstore.services.inventory.store import (
    InventoryStore,
    ReservationItemRow,
    ReservationRow,
    StockRow,
)

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_hot_row.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_hot_row"
SERVER = "mysql+pymysql://root@127.0.0.1:3306/"

BOOK = 1
COPIES = 20
BUYERS = 100
PROCESSES = 2  # inventory replicas
THREADS = 16  # server threads per replica (BOOKSTORE_GRPC_WORKERS)
DEADLINE_S = 2.0  # the order service's deadline for one ReserveStock
LOCK_TRIES = 30
LOCK_PAUSE_S = 0.2  # the longest random pause between two tries


# ----------------------------------------------------------------------------- the designs


class LockBusy(Exception):
    """The stock row was locked by another buyer: roll back and try again later."""


class LockingStore(InventoryStore):
    """Reads the stock row with a locking SELECT, checks it in Python, then writes.

    Subclasses choose how the SELECT treats a row another transaction has locked.
    """

    def reserve(self, order_id: str, items: Sequence[StockItem]) -> Reservation:
        for attempt in range(LOCK_TRIES):
            try:
                return super().reserve(order_id, items)
            except LockBusy:
                time.sleep(random.uniform(0, min(LOCK_PAUSE_S, 0.005 * 2**attempt)))  # full jitter
        raise RuntimeError(f"the stock row stayed locked through {LOCK_TRIES} tries")

    def _reserve_once(self, order_id: str, items: Sequence[StockItem]) -> Reservation:
        with self._sessions.begin() as session:
            existing = session.get(ReservationRow, order_id, with_for_update=True)
            if existing is not None:
                return existing.to_domain()
            conn = session.connection()
            for index, item in sorted(enumerate(items), key=lambda pair: pair[1].book_id):
                try:
                    available = self._locked_stock(session, item.book_id)
                except OperationalError as error:
                    if "lock" in str(error.orig).lower():
                        raise LockBusy from error
                    raise
                if available is None:
                    raise NotFound(f"book {item.book_id} is not stocked", field=f"items[{index}].book_id")
                if available < item.quantity:
                    raise FailedPrecondition(f"only {available} left", field=f"items[{index}].quantity")
                conn.execute(
                    update(StockRow)
                    .where(StockRow.book_id == item.book_id)
                    .values(available=StockRow.available - item.quantity)
                )
            conn.execute(
                insert(ReservationRow).values(
                    order_id=order_id,
                    status=ReservationStatus.RESERVED.value,
                    updated_at_unix=int(time.time()),
                )
            )
            conn.execute(
                insert(ReservationItemRow),
                [
                    {
                        "order_id": order_id,
                        "book_id": item.book_id,
                        "quantity": item.quantity,
                        "position": index,
                    }
                    for index, item in enumerate(items)
                ],
            )
            return Reservation(order_id=order_id, status=ReservationStatus.RESERVED, items=tuple(items))

    def _locked_stock(self, session: Session, book_id: int) -> int | None:
        raise NotImplementedError


class NowaitStore(LockingStore):
    def _locked_stock(self, session: Session, book_id: int) -> int | None:
        query = select(StockRow.available).where(StockRow.book_id == book_id).with_for_update(nowait=True)
        return session.scalar(query)


class SkipLockedStore(LockingStore):
    def _locked_stock(self, session: Session, book_id: int) -> int | None:
        query = select(StockRow.available).where(StockRow.book_id == book_id)
        rows = session.execute(query.with_for_update(skip_locked=True)).all()
        if rows:
            return int(rows[0][0])
        if session.scalar(query) is None:  # an unlocking read tells "absent" from "locked"
            return None
        raise LockBusy


class LockWaitStore(LockingStore):
    def _locked_stock(self, session: Session, book_id: int) -> int | None:
        session.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
        return session.scalar(select(StockRow.available).where(StockRow.book_id == book_id).with_for_update())


DESIGNS: dict[str, type[InventoryStore]] = {
    "conditional_update": InventoryStore,
    "nowait": NowaitStore,
    "skip_locked": SkipLockedStore,
    "lock_wait_1s": LockWaitStore,
}


@dataclass(frozen=True)
class Config:
    """One way to run the scene: a design, a pool (kept, extra for bursts), opened first or not."""

    name: str
    design: str
    pool_size: int
    max_overflow: int
    warm: bool


SERVICE_POOL = Settings().db_pool_size  # what service_engine opens at start (BOOKSTORE_DB_POOL_SIZE)
SIZED_POOL = 20  # one per default server thread (16) and some spare
DESIGN_CONFIGS = [Config(name, name, SERVICE_POOL, 0, True) for name in DESIGNS]
POOL_CONFIGS = [
    Config("pool 10+20, cold (before)", "conditional_update", 10, 20, False),
    Config(f"pool {SERVICE_POOL}, opened first (now)", "conditional_update", SERVICE_POOL, 0, True),
    Config(f"pool {SIZED_POOL}, opened first", "conditional_update", SIZED_POOL, SIZED_POOL, True),
]


# ----------------------------------------------------------------------------- one run


def _engine(url: str, config: Config) -> Engine:
    return create_engine(
        url,
        isolation_level="READ COMMITTED",
        pool_pre_ping=True,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
    )


def _worker(config: Config, url: str, buyers: int, ready: Any, results: Any) -> None:
    """One replica: THREADS threads reserve one copy each for ``buyers`` buyers, once all are ready."""
    from concurrent.futures import ThreadPoolExecutor

    engine = _engine(url, config)
    store = DESIGNS[config.design](engine)
    if config.warm:
        connections = [engine.connect() for _ in range(min(THREADS, config.pool_size))]
        for connection in connections:
            connection.close()
    ready.wait()  # every process has imported and connected: the buyers start together

    def buy(_: int) -> tuple[str, float, float]:
        began = time.perf_counter()
        try:
            store.reserve(str(uuid.uuid4()), (StockItem(book_id=BOOK, quantity=1),))
            outcome = "sold"
        except FailedPrecondition:
            outcome = "short"
        except Exception as error:  # counted and shown, never hidden
            outcome = f"{type(error).__name__}: {str(error)[:80]}"
        ended = time.perf_counter()
        return outcome, ended - began, time.time()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results.put(list(pool.map(buy, range(buyers))))
    engine.dispose()


@dataclass
class Run:
    config: str
    sold: int
    errors: list[str]
    all_answered_s: float
    twentieth_sold_s: float
    over_deadline: int


def run_once(config: Config) -> Run:
    template = f"{SERVER}bench_hot_row_{uuid.uuid4().hex[:8]}_{{service}}"
    url = template.replace("{service}", "inventory")
    seeder = _engine(url, config)
    from bookstore.platform.database import make_engine

    make_engine(url).dispose()  # creates the schema
    InventoryStore(seeder, initial_stock=COPIES, book_count=1)
    seeder.dispose()
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        ready = context.Barrier(PROCESSES + 1)
        share = BUYERS // PROCESSES
        workers = [
            context.Process(target=_worker, args=(config, url, share, ready, results))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        ready.wait(timeout=300)
        start_at = time.time()
        answers = [answer for _ in workers for answer in results.get(timeout=300)]
        for worker in workers:
            worker.join()
    finally:
        drop_mysql_databases(template, ["inventory"])
    sold_at = sorted(at for outcome, _, at in answers if outcome == "sold")
    return Run(
        config=config.name,
        sold=len(sold_at),
        errors=[outcome for outcome, _, _ in answers if outcome not in ("sold", "short")],
        all_answered_s=max(at for _, _, at in answers) - start_at,
        twentieth_sold_s=(sold_at[-1] - start_at) if sold_at else float("nan"),
        over_deadline=sum(1 for _, seconds, _ in answers if seconds > DEADLINE_S),
    )


# ----------------------------------------------------------------------------- report


def table(title: str, configs: Sequence[Config], runs: Sequence[Run]) -> list[dict[str, Any]]:
    print(f"\n{title}")
    print(
        f"  {'configuration':30} {'all answered':>12} {'20th sold':>10} {'ratio':>6} {'> 2 s':>6} {'sold':>8}"
    )
    rows = []
    baseline = None
    for config in configs:
        mine = [run for run in runs if run.config == config.name]
        answered = statistics.median(run.all_answered_s for run in mine)
        twentieth = statistics.median(run.twentieth_sold_s for run in mine)
        over = statistics.median(run.over_deadline for run in mine)
        baseline = answered if baseline is None else baseline
        sold = "/".join(str(run.sold) for run in mine)
        print(
            f"  {config.name:30} {answered:>10.2f} s {twentieth:>8.2f} s {answered / baseline:>5.2f}x"
            f" {over:>6.0f} {sold:>8}"
        )
        rows.append(
            {
                "config": asdict(config),
                "all_answered_s_median": answered,
                "twentieth_sold_s_median": twentieth,
                "ratio_to_baseline": answered / baseline,
                "over_deadline_median": over,
                "sold": [run.sold for run in mine],
            }
        )
    return rows


DESIGNS_TITLE = "Reservation designs (median over rounds; ratio = all answered / baseline's)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of every configuration")
    parser.add_argument("--quick", action="store_true", help="one round of two configurations")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    parser.add_argument("--hogs", type=int, default=0, help="spinning processes beside the runs (load)")
    parser.add_argument("--pools", action="store_true", help="only the connection pools' table")
    args = parser.parse_args(argv)
    reason = mysql_unavailable_reason(SERVER)
    if reason is not None:
        print(f"this benchmark needs MariaDB: {reason}")
        return 2
    started = time.perf_counter()
    info = machine("sqlalchemy", "pymysql")
    print(f"{BUYERS} buyers, {COPIES} copies of one book, {PROCESSES} processes x {THREADS} threads")
    if args.hogs:
        print(f"beside {args.hogs} spinning processes (--hogs)")
    else:
        warn_if_busy(info, "absolute seconds say more about the load than the code; read the ratios")
    design_configs = [] if args.pools else DESIGN_CONFIGS[:2] if args.quick else DESIGN_CONFIGS
    pool_configs = [] if args.quick else POOL_CONFIGS
    runs: list[Run] = []
    loads: list[float] = []
    with cpu_hogs(args.hogs):
        for round_index in range(1 if args.quick else args.rounds):
            for config in [*design_configs, *pool_configs]:
                run = run_once(config)
                runs.append(run)
                loads.append(load_average() or 0.0)
                print(
                    f"  round {round_index + 1} {config.name:30} {run.all_answered_s:6.2f} s,"
                    f" sold {run.sold}, > 2 s: {run.over_deadline}, errors: {len(run.errors)},"
                    f" load {loads[-1]:.1f}",
                    flush=True,
                )
    print(f"1-minute load average after each run: {min(loads):.1f} to {max(loads):.1f}")
    designs = table(DESIGNS_TITLE, design_configs, runs) if design_configs else []
    pools = (
        table("Connection pools, conditional_update (ratio to the pool of before)", pool_configs, runs)
        if pool_configs
        else []
    )
    wrong = [run for run in runs if run.sold != COPIES or run.errors]
    for run in wrong:
        print(f"  FAILED: {run.config} sold {run.sold} of {COPIES}; errors: {run.errors[:3]}")
    report = {
        "command": COMMAND,
        "machine": info,
        "hogs": args.hogs,
        "load_average_after_each_run": loads,
        "designs": designs,
        "pools": pools,
        "runs": [asdict(run) for run in runs],
        "total_seconds": time.perf_counter() - started,
    }
    write_report(args.json, report)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
