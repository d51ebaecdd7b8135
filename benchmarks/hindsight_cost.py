"""Hindsight cost: seconds for `bench bidding`'s evaluation of one policy's run, whole against
shortlisted.

After each policy's run, `bench bidding` solves every campaign-day's hindsight LP
(``menu_lp.solve_menus``) and the best uniform multiplier under GSP (``response.solve_response``)
over the run's true menus. Large problems go by a shortlist of the rows that can matter
(``bidding.shortlist``); this times both solvers that way and over every row
(``solve_all_menus``, ``respond_all``) on the same problem, checks that the answers are
identical bit for bit, and says how many rows the shortlist kept.

The problem is the one `bench bidding --scenario NAME --seed N` builds after running the
``dual`` policy (the quickest to run). Each figure is the median of repeated calls, the four
calls taken round-robin so that load from other work falls on all of them alike.

    python benchmarks/hindsight_cost.py            # steady, seed 7: ~5 minutes on 2 cores
    python benchmarks/hindsight_cost.py --quick    # smoke test on the tiny scenario, seconds
    python benchmarks/hindsight_cost.py --write    # full run, then update RESULTS.md
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from arguments import parse_benchmark_args
from quanzhan.bidding import shortlist
from quanzhan.bidding.menu_lp import (
    MenuProblem,
    shortlisted_rows,
    solve_all_menus,
    solve_menus,
)
from quanzhan.bidding.response import respond_all, solve_response
from quanzhan.sim.bench import hindsight_problem, run_policy
from quanzhan.sim.config import load_scenario
from sections import code_version, machine, write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- hindsight-cost:start -->"
END = "<!-- hindsight-cost:end -->"
POLICY = "dual"


@dataclass(frozen=True, slots=True)
class Plan:
    scenario: str
    repeats: int


FULL = Plan(scenario="steady", repeats=3)
QUICK = Plan(scenario="tiny", repeats=2)

SOLVERS: dict[str, Callable[[MenuProblem], Any]] = {
    "LP, every row": solve_all_menus,
    "LP, shortlisted": solve_menus,
    "GSP response, every row": respond_all,
    "GSP response, shortlisted": solve_response,
}
PAIRS = (
    ("LP, every row", "LP, shortlisted"),
    ("GSP response, every row", "GSP response, shortlisted"),
)


def time_solvers(problem: MenuProblem, repeats: int) -> tuple[dict[str, list[float]], list[str]]:
    """Seconds per call of each solver, and the pairs whose answers differ (none, we expect)."""
    laps: dict[str, list[float]] = {name: [] for name in SOLVERS}
    answers: dict[str, Any] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("timing", total=repeats * len(SOLVERS))
        for _ in range(repeats):
            for name, solve in SOLVERS.items():
                gc.collect()
                start = time.perf_counter()
                answers[name] = solve(problem)
                laps[name].append(time.perf_counter() - start)
                progress.advance(task)
    differ = [
        f"{whole} / {short}: {f.name}"
        for whole, short in PAIRS
        for f in fields(answers[whole])
        if not np.array_equal(getattr(answers[whole], f.name), getattr(answers[short], f.name))
    ]
    return laps, differ


def listed_share(problem: MenuProblem) -> float:
    """The share of menu rows the LP's shortlist keeps."""
    near = shortlisted_rows(problem, shortlist.guess_bound(problem, solve_all_menus))
    return float(near.mean()) if len(near) else 0.0


def report(
    laps: dict[str, list[float]], problem: MenuProblem, plan: Plan, seed: int
) -> tuple[Table, list[str]]:
    table = Table(title=f"hindsight evaluation, {plan.scenario} seed {seed} ({POLICY})")
    for header in ("solver", "median s", "min-max s", "whole / shortlisted"):
        table.add_column(header, justify="left" if header == "solver" else "right")
    lines = ["| solver | median s | min-max s | whole / shortlisted |", "|---|---|---|---|"]
    for whole, short in PAIRS:
        ratio = statistics.median(laps[whole]) / max(statistics.median(laps[short]), 1e-9)
        for name in (whole, short):
            cells = (
                name,
                f"{statistics.median(laps[name]):.2f}",
                f"{min(laps[name]):.2f}-{max(laps[name]):.2f}",
                f"{ratio:.1f}x" if name == short else "",
            )
            table.add_row(*cells)
            lines.append("| " + " | ".join(cells) + " |")
    rows, slots = problem.value.shape
    lines.append("")
    lines.append(
        f"{rows:,} menu rows of {slots} slots over {len(problem.budget):,} campaign-days; "
        f"the shortlist kept {listed_share(problem):.1%} of the rows."
    )
    return table, lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_benchmark_args(
        argv, description=__doc__.splitlines()[0], results_name=RESULTS.name,
        repeats_help="timed calls per solver",
    )  # fmt: skip
    plan = QUICK if args.quick else FULL
    seed = args.seed
    if args.repeats is not None:
        plan = Plan(plan.scenario, args.repeats)
    console = Console(width=None if sys.stdout.isatty() else 140)
    started_at, code = dt.datetime.now().astimezone(), code_version()
    started = time.perf_counter()
    console.log(f"{plan.scenario}: running {POLICY} for its true menus")
    result = run_policy(load_scenario(plan.scenario), seed=seed, policy=POLICY)
    problem = hindsight_problem(result)
    del result
    load_before = os.getloadavg()[0]
    laps, differ = time_solvers(problem, plan.repeats)
    load_after = os.getloadavg()[0]
    table, lines = report(laps, problem, plan, seed)
    console.print(table)
    if differ:
        raise SystemExit("shortlisted answers differ from the whole ones: " + "; ".join(differ))
    console.print("answers identical, bit for bit")
    console.print(f"total wall time {time.perf_counter() - started:,.0f} s")
    if args.write:
        command = " ".join(["python", "benchmarks/hindsight_cost.py", *argv])
        head = [
            "## Hindsight evaluation cost",
            "",
            f"- Command: `{command}`",
            f"- Date: {started_at:%Y-%m-%d %H:%M %Z}; machine: {machine()}",
            f"- Code: {code}; load average {load_before:.1f} before, {load_after:.1f} after",
            f"- Median of {plan.repeats} calls each, round-robin; answers identical bit for bit",
            "",
        ]
        write_section(RESULTS, START, END, "\n".join(head + lines))
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
