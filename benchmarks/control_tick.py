"""Control tick cost: seconds for one tick of the service's control loop over many campaigns,
and the bytes of policy state it reads and writes, under each policy.

The service keeps each campaign's policy pickled in the ``controllers`` table and steers every
active campaign at each tick (``api/control.py``). A ``landscape`` controller carries the day's
sampled slot menus and yesterday's, so its state and its tick cost more than ``dual``'s. Here
every campaign's state is the one a policy has at ten past eight in the evening of its second
day (yesterday's 96 ticks and today's 81, each with 24 sampled menus, from one campaign run
through them: the arithmetic does not depend on which campaign it is), every campaign has 24
menus queued, and one tick is timed; the policies' ticks alternate, on SQLite in a temporary
folder.

    python benchmarks/control_tick.py            # 2,000 campaigns, 3 ticks a policy: ~2 minutes
    python benchmarks/control_tick.py --quick    # 50 campaigns, one tick a policy
    python benchmarks/control_tick.py --write    # full run, then update RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import Connection, func, insert, select, update

from quanzhan.api.control import ControlLoop, new_controller
from quanzhan.bidding.policy import MenuView, Observation
from quanzhan.store.database import Database
from quanzhan.store.menus import MenuRows, add_menu_samples
from quanzhan.store.schema import campaigns, controllers, items, menu_samples, merchants
from sections import code_version, machine, write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- control-tick:start -->"
END = "<!-- control-tick:end -->"
POLICIES = ("dual", "landscape")
MENUS_PER_TICK = 24
TICKS_PER_DAY = 96
# 2026-11-25, ten past eight in the evening: most of the day's state is there.
EVENING = 1_795_564_800.0 + 20 * 3600 + 600
console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 campaigns, one tick a policy")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--campaigns", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="ticks timed per policy")
    args = parser.parse_args()
    if args.quick and args.write:
        parser.error("--write records the full benchmark; drop --quick")
    if args.quick:
        args.campaigns, args.repeats = 50, 1
    folder = Path(tempfile.mkdtemp(prefix="quanzhan-tick-"))
    try:
        laps: dict[str, list[float]] = {p: [] for p in POLICIES}
        state_bytes: dict[str, int] = {}
        databases = {p: _database(folder, p, args.campaigns) for p in POLICIES}
        for policy in POLICIES:
            state_bytes[policy] = _fill(databases[policy], policy, args.campaigns)
        rounds = [(r, p) for r in range(args.repeats) for p in POLICIES]
        for r, policy in track(rounds, description="ticks", console=console):
            laps[policy].append(_tick(databases[policy], args.campaigns, r))
        for database in databases.values():
            database.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _report(args, laps, state_bytes)


def _database(folder: Path, policy: str, n: int) -> Database:
    database = Database(f"sqlite:///{folder / f'{policy}.db'}")
    database.migrate()
    return database


def _evening_state(policy: str) -> bytes:
    """A controller's state at ten past eight in the evening: yesterday's 96 ticks and today's
    81 so far, each with its sampled menus."""
    start = new_controller(
        policy=policy, daily_budget=100.0, target_roi=2.0, roi_basis="full_site", now=0.0
    )
    steered = pickle.loads(start.state)
    rng = np.random.default_rng(0)
    for ticks in (TICKS_PER_DAY, 81):
        steered.start_day()
        for tick in range(ticks):
            value = rng.uniform(1.0, 6.0, (MENUS_PER_TICK, 3))
            share = (tick + 1) / TICKS_PER_DAY
            steered.update(
                Observation(
                    now=tick * 900.0, day_fraction=share, planned_share=share,
                    spend=np.array([80.0 * share]), gmv_realized=np.array([150.0 * share]),
                    gmv_predicted=np.array([160.0 * share]),
                    orders_realized=np.array([8.0 * share]),
                    orders_arrived=np.array([8.0 * share]), gmv_organic=np.array([60.0 * share]),
                    clicks=np.array([90.0 * share]),
                    menus=MenuView(
                        campaign=np.zeros(MENUS_PER_TICK, np.int64), value=value,
                        cost=value / rng.uniform(1.0, 8.0, (MENUS_PER_TICK, 3)),
                        weight=np.full(MENUS_PER_TICK, 20.0),
                        day_fraction=(tick + rng.uniform(0.0, 1.0, MENUS_PER_TICK))
                        / TICKS_PER_DAY,
                    ) if steered.needs_menus else None,
                )
            )  # fmt: skip
    return pickle.dumps(steered)


def _fill(database: Database, policy: str, n: int) -> int:
    """``n`` active campaigns, each with the same evening state; its size in bytes."""
    state = _evening_state(policy)
    day = dt.datetime.fromtimestamp(EVENING, dt.UTC).strftime("%Y-%m-%d")

    def work(connection: Connection) -> None:
        connection.execute(
            insert(merchants).values(id=1, name="m", key_hash="0" * 64, created_at=0.0)
        )
        connection.execute(
            insert(items),
            [dict(id=i + 1, merchant_id=1, title=f"item {i}", price=20.0, category="c",
                  created_at=0.0) for i in range(n)],
        )  # fmt: skip
        connection.execute(
            insert(campaigns),
            [dict(id=i + 1, merchant_id=1, item_id=i + 1, daily_budget=100.0, target_roi=2.0,
                  roi_basis="full_site", status="active", created_at=0.0, updated_at=0.0,
                  revision=1) for i in range(n)],
        )  # fmt: skip
        connection.execute(
            insert(controllers),
            [dict(campaign_id=i + 1, policy=policy, multiplier=0.5, state=state, day=day,
                  updated_at=0.0) for i in range(n)],
        )  # fmt: skip

    database.retrying(work)
    return len(state)


def _tick(database: Database, n: int, repeat: int) -> float:
    """Seconds for one tick over every campaign, with 24 menus queued for each."""
    rng = np.random.default_rng(repeat)
    m = n * MENUS_PER_TICK
    value = rng.uniform(1.0, 6.0, (m, 3))
    rows = MenuRows(
        campaign_id=np.repeat(np.arange(1, n + 1, dtype=np.int64), MENUS_PER_TICK),
        time=EVENING - rng.uniform(0.0, 900.0, m),
        weight=np.full(m, 20.0),
        value=value,
        cost=value / rng.uniform(1.0, 8.0, (m, 3)),
    )
    database.retrying(lambda c: add_menu_samples(c, rows))
    # Every state as stored at the end of the day, not as the last repeat left it.
    database.retrying(lambda c: c.execute(update(controllers).values(updated_at=0.0)))
    now = EVENING + repeat * 900.0
    loop = ControlLoop(database=database, tick_seconds=900.0, holder="bench", clock=lambda: now)
    loop._fitted_at = now  # the hourly refits read the week's orders: none here, not timed
    started = time.perf_counter()
    if not loop.tick():
        sys.exit("error: the tick did not run")
    seconds = time.perf_counter() - started
    with database.read() as connection:
        left = connection.execute(select(func.count()).select_from(menu_samples)).scalar_one()
    if left:
        sys.exit(f"error: the tick left {left} queued menus")
    return seconds


def _report(args: argparse.Namespace, laps: dict[str, list[float]], sizes: dict[str, int]) -> None:
    table = Table(title=f"One control tick over {args.campaigns:,} campaigns (SQLite)")
    for column in ("policy", "median s", "min-max s", "ms per campaign", "state KB"):
        table.add_column(column, justify="right")
    lines = [
        "## Control tick cost",
        "",
        f"- Command: `python benchmarks/control_tick.py {' '.join(sys.argv[1:])}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}",
        f"- Code: {code_version()}",
        f"- {args.campaigns:,} active campaigns on SQLite, each with a second day's evening state"
        f" (177 ticks of {MENUS_PER_TICK} sampled menus) and {MENUS_PER_TICK} menus queued;"
        f" median of {args.repeats} ticks a policy, the policies' ticks alternating",
        "",
        "| policy | median s | min-max s | ms per campaign | state KB |",
        "|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        median = statistics.median(laps[policy])
        cells = (
            policy,
            f"{median:.2f}",
            f"{min(laps[policy]):.2f}-{max(laps[policy]):.2f}",
            f"{1000 * median / args.campaigns:.2f}",
            f"{sizes[policy] / 1024:.0f}",
        )
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    if args.write:
        write_section(RESULTS, START, END, "\n".join(lines))
        console.print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
