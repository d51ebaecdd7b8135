"""Scoring cost: milliseconds for the engine's Predictor to give 100,000 candidates pCTR and pCVR.

Timed are the two calls of ``Engine._decide_chunk`` (decision.py) that score candidates:
``predictor.features(...)`` then ``predictor.predict(...)``. The candidates are the ones the
engine's own retriever finds for page views drawn from the scenario's market (retrieval is
outside the clock), and the predictor is trained: the engine first lives through a simulated day
of the same market at reduced traffic, refreshing its models on schedule. Scoring does the same
arithmetic whatever the weights, so the reduced day changes nothing timed.

Two sizes: about 100,000 candidates in one call (the issue's unit; ``ceil(100,000 / K)``
requests of ``K`` candidates each) and one full chunk of ``decide`` (16,384 requests). Both are
reported per 100,000 candidates. Every figure is the median of repeated calls after one warm-up
call, the calls of both sizes taken round-robin so that load from other work falls on both.

    python benchmarks/scoring_cost.py            # default scenario, ~1 minute on 2 cores
    python benchmarks/scoring_cost.py --quick    # smoke test on the tiny scenario
    python benchmarks/scoring_cost.py --write    # full run, then update RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from arguments import parse_benchmark_args
from quanzhan.engine.batch import Candidates, RequestBatch
from quanzhan.engine.decision import Engine
from quanzhan.engine.prediction import FEATURES
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.market import Market
from quanzhan.sim.run import Simulation
from sections import code_version, machine, write_section

TARGET_MS = 50.0  # per 100,000 candidates, from the issue
UNIT = 100_000
DECIDE_CHUNK = 16_384  # requests per chunk in Engine.decide (decision._CHUNK)
RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- scoring-cost:start -->"
END = "<!-- scoring-cost:end -->"


@dataclass(frozen=True, slots=True)
class Plan:
    scenario: str
    warm_requests: int  # page views of the day that trains the predictor
    repeats: int


FULL = Plan(scenario="default", warm_requests=250_000, repeats=31)
QUICK = Plan(scenario="tiny", warm_requests=30_000, repeats=5)


@dataclass(frozen=True, slots=True)
class Case:
    """One size: requests, their interest and affinity profiles and the candidates the engine
    scores."""

    label: str
    batch: RequestBatch
    interest: NDArray[np.float32]
    affinity: NDArray[np.float32]
    candidates: Candidates

    @property
    def n_candidates(self) -> int:
        return int(self.candidates.campaign.size)


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds of each call, one entry per repeat."""

    case: Case
    features: tuple[float, ...]
    predict: tuple[float, ...]

    @property
    def total(self) -> tuple[float, ...]:
        return tuple(f + p for f, p in zip(self.features, self.predict, strict=True))

    def per_unit_ms(self, seconds: float) -> float:
        return seconds * 1e3 * UNIT / self.case.n_candidates


@dataclass(frozen=True, slots=True)
class Results:
    timings: list[Timing]
    plan: Plan
    k: int
    refreshes: int
    started: dt.datetime
    code: str
    load: tuple[float, float]  # 1-minute load average before and after the timed calls


# --- building the inputs ------------------------------------------------------------------


def trained_engine(config: ScenarioConfig, *, requests: int, seed: int) -> Engine:
    """The engine after a simulated day of ``config``'s market with ``requests`` page views."""
    traffic = config.traffic.model_copy(update={"requests_per_day": requests})
    short = ScenarioConfig.model_validate(
        config.model_copy(update={"traffic": traffic}).model_dump()
    )
    simulation = Simulation(short, seed=seed, recall=False)
    simulation.run()
    return simulation.engine


def draw_requests(config: ScenarioConfig, n: int, seed: int) -> RequestBatch:
    """The first ``n`` page views of the market's day, each tick served with no ads.

    The market is rebuilt from the same seed, so its catalog and campaigns are the engine's.
    """
    market = Market(config)
    market.reset(seed=seed)
    parts: list[RequestBatch] = []
    total = 0
    while total < n and (batch := market.next_requests()) is not None:
        empty = np.full((len(batch), market.max_ad_slots), -1, dtype=np.int32)
        market.serve(campaign=empty, item=empty)
        parts.append(batch)
        total += len(batch)
    if total < n:
        raise SystemExit(f"{config.name} yields {total} requests a run; {n} asked")
    return RequestBatch(
        **{
            f.name: np.concatenate([getattr(p, f.name) for p in parts])[:n]
            for f in fields(RequestBatch)
        }
    )


def build_cases(engine: Engine, requests: RequestBatch) -> list[Case]:
    k = engine.retriever.k
    sizes = [("~100k candidates, one call", math.ceil(UNIT / k))]
    sizes.append((f"one decide chunk ({DECIDE_CHUNK:,} requests)", DECIDE_CHUNK))
    live = np.ones(len(engine.campaigns), dtype=bool)
    cases = []
    for label, n in sizes:
        batch = RequestBatch(
            **{f.name: getattr(requests, f.name)[:n] for f in fields(RequestBatch)}
        )
        candidates, interest, affinity = engine.retrieve(batch, live=live)
        cases.append(Case(label, batch, interest, affinity, candidates))
    return cases


# --- timing ---------------------------------------------------------------------------------


def score(engine: Engine, case: Case) -> tuple[float, float]:
    """Seconds of ``features`` and of ``predict``, as ``Engine._decide_chunk`` calls them."""
    predictor = engine.predictor
    start = time.perf_counter()
    x_ctr, x_cvr = predictor.features(
        campaign=case.candidates.campaign,
        retrieval=case.candidates.score,
        interest=case.interest,
        affinity=case.affinity,
    )
    middle = time.perf_counter()
    predictor.predict(surface=case.batch.surface, x_ctr=x_ctr, x_cvr=x_cvr)
    return middle - start, time.perf_counter() - middle


def time_cases(engine: Engine, cases: list[Case], repeats: int) -> list[Timing]:
    for case in cases:
        score(engine, case)  # warm-up: first-touch allocations
    laps: list[list[tuple[float, float]]] = [[] for _ in cases]
    for _ in range(repeats):
        for case, case_laps in zip(cases, laps, strict=True):
            gc.collect()
            case_laps.append(score(engine, case))
    return [
        Timing(case, tuple(f for f, _ in case_laps), tuple(p for _, p in case_laps))
        for case, case_laps in zip(cases, laps, strict=True)
    ]


# --- reporting ------------------------------------------------------------------------------

HEADERS = [
    "size",
    "requests",
    "candidates",
    "features ms / 100k",
    "predict ms / 100k",
    "total ms / 100k",
    "min–max total",
    "vs 50 ms",
]


def _row(t: Timing) -> list[str]:
    total = [t.per_unit_ms(s) for s in t.total]
    return [
        t.case.label,
        f"{len(t.case.batch):,}",
        f"{t.case.n_candidates:,}",
        f"{t.per_unit_ms(statistics.median(t.features)):.2f}",
        f"{t.per_unit_ms(statistics.median(t.predict)):.2f}",
        f"{statistics.median(total):.2f}",
        f"{min(total):.2f}–{max(total):.2f}",
        f"{statistics.median(total) / TARGET_MS:.2f}×",
    ]


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(results: Results) -> Table:
    table = Table(title="Predictor scoring cost (features + predict)", header_style="bold")
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "size" else "right")
    for t in results.timings:
        table.add_row(*_row(t))
    return table


def markdown(results: Results, command: str) -> str:
    plan = results.plan
    first = results.timings[0]
    median = statistics.median(first.per_unit_ms(s) for s in first.total)
    verdict = "within" if median <= TARGET_MS else "over"
    return "\n".join(
        [
            "## Scoring cost (pCTR and pCVR per 100,000 candidates)",
            "",
            f"- Command: `{command}`",
            f"- Date: {results.started.isoformat(timespec='minutes')}",
            f"- Machine: {machine()}",
            f"- Load: 1-minute load average {results.load[0]:.1f} before the timed calls,"
            f" {results.load[1]:.1f} after (other work shared the machine)",
            f"- Code: {results.code}",
            f"- **`{plan.scenario}` size, trained predictor, {first.case.n_candidates:,}"
            f" candidates in one call: {median:.2f} ms per 100,000 candidates (median of"
            f" {plan.repeats}), {verdict} the target of {TARGET_MS:.0f} ms"
            f" ({median / TARGET_MS:.2f}× of it).**",
            "",
            "Timed: `predictor.features(...)` then `predictor.predict(...)`, the two calls of"
            " `Engine._decide_chunk` that turn candidates into pCTR and pCVR"
            f" ({len(FEATURES)} features per model, per-surface logistic regressions), on the"
            " candidates the engine's retriever"
            f" returns (K = {results.k} per request) for page views of the `{plan.scenario}`"
            " market; retrieval is outside the clock. The predictor was trained by a simulated"
            f" day of the same market at {plan.warm_requests:,} page views"
            f" ({results.refreshes} model refreshes); the arithmetic timed does not depend on"
            f" the weights. Each figure is the median of {plan.repeats} calls after one warm-up"
            " call, both sizes taken round-robin; figures are scaled to 100,000 candidates."
            " The features, predict and total columns are medians taken separately, so the first"
            " two need not add up to the third; min–max is the spread of the totals, the min the"
            " least-disturbed call.",
            "",
            _markdown_table([_row(t) for t in results.timings]),
        ]
    )


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    return parse_benchmark_args(
        argv,
        description=__doc__.splitlines()[0],
        results_name=RESULTS.name,
        repeats_help="timed calls per size",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.repeats is not None:
        plan = Plan(plan.scenario, plan.warm_requests, args.repeats)
    console = Console(width=None if sys.stdout.isatty() else 140)
    started_at, code = dt.datetime.now().astimezone(), code_version()
    started = time.perf_counter()
    config = load_scenario(plan.scenario)
    console.log(f"{plan.scenario}: training the engine on {plan.warm_requests:,} page views")
    engine = trained_engine(config, requests=plan.warm_requests, seed=args.seed)
    cases = build_cases(engine, draw_requests(config, DECIDE_CHUNK, args.seed))
    console.log(f"timing {len(cases)} sizes, {plan.repeats} calls each")
    load_before = os.getloadavg()[0]
    timings = time_cases(engine, cases, plan.repeats)
    load_after = os.getloadavg()[0]
    results = Results(
        timings=timings,
        plan=plan,
        k=engine.retriever.k,
        refreshes=engine.predictor.refreshes,
        started=started_at,
        code=code,
        load=(load_before, load_after),
    )
    console.print(rich_table(results))
    console.print(f"total wall time {time.perf_counter() - started:,.0f} s")
    if args.write:
        command = " ".join(["python", "benchmarks/scoring_cost.py", *argv])
        write_section(RESULTS, START, END, markdown(results, command))
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
