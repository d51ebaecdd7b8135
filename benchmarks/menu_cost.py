"""Menu cost: what asking ``Engine.decide`` for slot menus adds to a batch, by how many of the
campaigns have spent their budget.

A policy that plans over the landscape (``landscape``, the default) has the engine work out each
candidate's slot menu (``engine.opportunity``), and a campaign out of budget keeps getting the
menus of the auctions it would have entered: retrieval runs a second time over the spent
campaigns, and their menus are priced against the live bidders. Here one batch of requests from
the scenario's market goes through a warm engine (trained by a simulated day) without menus, and
with them while none, a fifth and half of the campaigns (drawn at random) have no budget left;
only ``decide`` is timed, each figure the median of repeated calls after a warm-up, the cases
taken round-robin.

    python benchmarks/menu_cost.py            # default market, 16,384 requests: ~3 minutes
    python benchmarks/menu_cost.py --quick    # tiny market, few repeats (smoke test)
    python benchmarks/menu_cost.py --write    # full run, then update RESULTS.md
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import track
from rich.table import Table

from arguments import parse_benchmark_args
from decision_throughput import build_workload
from quanzhan.sim.config import load_scenario
from sections import code_version, machine, write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- menu-cost:start -->"
END = "<!-- menu-cost:end -->"
SPENT_SHARES = (0.0, 0.2, 0.5)
console = Console()


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    budget: NDArray[np.float64]
    with_menus: bool


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_benchmark_args(
        argv,
        description=__doc__.splitlines()[0],
        results_name=RESULTS.name,
        repeats_help="timed calls per case (default 7; 2 with --quick)",
    )
    scenario, requests = ("tiny", 2_048) if args.quick else ("default", 16_384)
    repeats = args.repeats or (2 if args.quick else 7)
    console.print(f"{scenario}: simulating a day to train the engine")
    workload = build_workload(
        load_scenario(scenario), warm=True, n_requests=requests, seed=args.seed
    )
    n = len(workload.budget)
    order = np.random.default_rng(args.seed).permutation(n)
    cases = [Case("no menus", workload.budget.copy(), False)]
    for share in SPENT_SHARES:
        budget = workload.budget.copy()
        budget[order[: round(share * n)]] = 0.0
        cases.append(Case(f"menus, {share:.0%} of campaigns spent", budget, True))
    menus: dict[str, int] = {}

    def call(case: Case) -> float:
        started = time.perf_counter()
        decided = workload.engine.decide(
            workload.requests,
            multiplier=workload.multiplier,
            remaining_budget=case.budget,
            with_menus=case.with_menus,
        )
        seconds = time.perf_counter() - started
        menus[case.name] = 0 if decided.menus is None else len(decided.menus)
        return seconds

    for case in cases:  # warm-up: each live set's retrieval index is built once
        call(case)
    laps: dict[str, list[float]] = {case.name: [] for case in cases}
    rounds = [case for _ in range(repeats) for case in cases]
    for case in track(rounds, description="timed calls", console=console):
        laps[case.name].append(call(case))
    base = statistics.median(laps[cases[0].name])
    rows = [
        (
            case.name,
            f"{menus[case.name]:,}",
            f"{statistics.median(laps[case.name]) * 1000:.0f}",
            f"{min(laps[case.name]) * 1000:.0f}-{max(laps[case.name]) * 1000:.0f}",
            f"{statistics.median(laps[case.name]) / base:.2f}",
        )
        for case in cases
    ]
    headers = ("case", "menus", "median ms", "min-max ms", "vs no menus")
    table = Table(title=f"Engine.decide over {requests:,} requests ({scenario}, warm engine)")
    for header in headers:
        table.add_column(header, justify="left" if header == "case" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.write:
        command = " ".join(["python", "benchmarks/menu_cost.py", *argv])
        write_section(RESULTS, START, END, _markdown(command, requests, repeats, headers, rows))
        console.print(f"wrote {RESULTS}")


def _markdown(
    command: str,
    requests: int,
    repeats: int,
    headers: tuple[str, ...],
    rows: list[tuple[str, ...]],
) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Menu cost (slot menus in the decision path)",
        "",
        f"- Command: `{command}`",
        f"- Date: {when}; machine: {machine()}",
        f"- Code: {code_version()}",
        f"- One batch of {requests:,} `default` requests through an engine trained by a"
        f" simulated day (seed 7); the median of {repeats} calls a case, cases round-robin;"
        " spent campaigns drawn at random",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
