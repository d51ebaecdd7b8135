"""Decision-path throughput: requests per second through ``Engine.decide``, the simulator excluded.

Requests are drawn from the scenario's market ahead of time (each tick served with no ads, so the
market moves on tick by tick); only ``engine.decide`` is timed, with each campaign's multiplier at
``1 / target_roi`` and its whole budget left. Every figure is the median of repeated passes over
the same requests after one warm-up call, the passes of all figures taken round-robin.

Measured: the ``default`` size with a warm engine (trained by a full simulated day) at three
batch sizes and the ``large`` size with a fresh engine (priors), each with numpy's OpenBLAS on
its default thread count and on one thread; the per-stage split of the warm engine; and how
throughput grows with items and with campaigns (fresh engines, one BLAS thread).

    python benchmarks/decision_throughput.py            # full run, ~3 minutes on 2 cores
    python benchmarks/decision_throughput.py --quick    # smoke test on the tiny scenario
    python benchmarks/decision_throughput.py --write    # full run, then update RESULTS.md
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import functools
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from arguments import parse_benchmark_args
from quanzhan.domain import CampaignMode
from quanzhan.engine.auction import run_auction
from quanzhan.engine.batch import RequestBatch
from quanzhan.engine.decision import Engine
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.market import Market, MarketView
from quanzhan.sim.run import Simulation
from sections import code_version, machine, write_section

TARGET_RPS = 100_000
RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- decision-throughput:start -->"
END = "<!-- decision-throughput:end -->"
STAGES = ("profiles", "retrieval", "features + prediction", "bidding", "auction")
REST = "assembly + rest (decide − stages)"
DECIDE = "decide (measured)"

Tick = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one invocation measures."""

    base: str  # scenario for the size table, the stage split and the sweeps
    batches: tuple[tuple[int, int], ...]  # (batch size, requests) at the base size
    large: str | None  # scenario measured with a fresh engine, or None to skip
    large_requests: int
    items: tuple[int, ...]  # item counts of the items sweep (campaigns at the base's count)
    campaigns: tuple[int, ...]  # campaign counts of the campaigns sweep (items at the base's)
    sweep_requests: int
    sweep_batch: int
    repeats: int


FULL = Plan(
    base="default",
    batches=((10_000, 200_000), (1_000, 100_000), (100, 100_000)),
    large="large",
    large_requests=100_000,
    items=(10_000, 50_000, 200_000, 1_000_000),
    campaigns=(250, 1_000, 5_000, 20_000),
    sweep_requests=50_000,
    sweep_batch=10_000,
    repeats=7,
)
QUICK = Plan(
    base="tiny",
    batches=((2_000, 8_000), (100, 2_000)),
    large=None,
    large_requests=0,
    items=(2_000, 8_000),
    campaigns=(40, 80),
    sweep_requests=4_000,
    sweep_batch=2_000,
    repeats=3,
)


@dataclass(frozen=True, slots=True)
class Workload:
    """An engine, the requests to send it, and the bidding inputs ``decide`` takes."""

    config: ScenarioConfig
    engine: Engine
    requests: RequestBatch
    multiplier: NDArray[np.float64]
    budget: NDArray[np.float64]
    state: str  # "warm" (trained by a simulated day) or "priors" (fresh)

    def decide(self, batch: RequestBatch) -> None:
        self.engine.decide(batch, multiplier=self.multiplier, remaining_budget=self.budget)


@dataclass(frozen=True, slots=True)
class Measurement:
    """Requests per second of repeated passes over one workload at one batch size."""

    group: str
    config: ScenarioConfig
    state: str
    blas: int | None  # BLAS threads, None for the library's default
    batch_size: int
    requests: int
    rates: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def key(self) -> tuple[int, int, int, int]:
        """Sort order within a group: items, campaigns, largest batch first, default BLAS first."""
        config = self.config
        single = 0 if self.blas is None else 1
        return (config.catalog.n_items, config.campaigns.n_campaigns, -self.batch_size, single)

    @property
    def size(self) -> tuple[str, str, str]:
        """Items, campaigns and users, short."""
        return (
            _count(self.config.catalog.n_items),
            _count(self.config.campaigns.n_campaigns),
            _count(self.config.users.n_users),
        )


@dataclass(frozen=True, slots=True)
class StageSplit:
    """Median seconds per pass of each stage, of the rest of ``decide`` and of ``decide``."""

    batch_size: int
    requests: int
    blas: int | None
    seconds: dict[str, float]  # STAGES, REST and DECIDE


# --- building workloads -------------------------------------------------------------------


def max_slots(config: ScenarioConfig) -> int:
    return max(page.ad_slots for page in config.traffic.pages.values())


def build_engine(config: ScenarioConfig, view: MarketView, seed: int) -> Engine:
    """The engine exactly as ``Simulation.__init__`` builds it."""
    return Engine(
        config=config.engine,
        items=view.items,
        campaigns=view.campaigns,
        n_users=view.n_users,
        max_slots=max_slots(config),
        history_user=view.history_user,
        history_item=view.history_item,
        seed=seed,
    )


def build_workload(
    config: ScenarioConfig, *, warm: bool, n_requests: int, seed: int, tick: Tick | None = None
) -> Workload:
    """A fresh engine, or one trained by a full simulated day; requests from a fresh market.

    The market is rebuilt from the same seed, so its catalog and campaigns are the engine's.
    """
    market = Market(config)
    view = market.reset(seed=seed)
    engine = _trained_engine(config, seed, tick) if warm else build_engine(config, view, seed)
    return Workload(
        config=config,
        engine=engine,
        requests=draw_requests(market, n_requests, max_slots(config)),
        multiplier=1.0 / view.campaigns.target_roi,
        budget=view.campaigns.budget.copy(),
        state="warm" if warm else "priors",
    )


def _trained_engine(config: ScenarioConfig, seed: int, tick: Tick | None) -> Engine:
    simulation = Simulation(config, seed=seed)
    simulation.run(progress=tick)
    return simulation.engine


def draw_requests(market: Market, n_requests: int, slots: int) -> RequestBatch:
    """The first ``n_requests`` page views of the market's day, each tick served with no ads."""
    parts: list[RequestBatch] = []
    total = 0
    while total < n_requests and (batch := market.next_requests()) is not None:
        empty = np.full((len(batch), slots), -1, dtype=np.int32)
        market.serve(campaign=empty, item=empty)
        parts.append(batch)
        total += len(batch)
    if total < n_requests:
        raise SystemExit(f"{market.config.name} yields {total} requests a run; {n_requests} asked")
    return _slice(_concat(parts), 0, n_requests)


def _concat(parts: list[RequestBatch]) -> RequestBatch:
    return RequestBatch(
        **{
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(RequestBatch)
        }
    )


def _slice(batch: RequestBatch, start: int, end: int) -> RequestBatch:
    return RequestBatch(**{f.name: getattr(batch, f.name)[start:end] for f in fields(RequestBatch)})


def split(batch: RequestBatch, size: int) -> list[RequestBatch]:
    return [_slice(batch, start, start + size) for start in range(0, len(batch), size)]


def scaled(config: ScenarioConfig, *, n_items: int, n_campaigns: int) -> ScenarioConfig:
    """``config`` with another catalog size and campaign count, validated."""
    changed = config.model_copy(
        update={
            "name": f"{config.name}-{n_items}i-{n_campaigns}c",
            "catalog": config.catalog.model_copy(update={"n_items": n_items}),
            "campaigns": config.campaigns.model_copy(update={"n_campaigns": n_campaigns}),
        }
    )
    return ScenarioConfig.model_validate(changed.model_dump())


# --- BLAS threads ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blas:
    """The thread count of the OpenBLAS that numpy bundles, through OpenBLAS's own C calls."""

    get: Callable[[], int]
    set: Callable[[int], None]
    default: int  # as the process started (OPENBLAS_NUM_THREADS or the core count)

    def use(self, threads: int | None) -> None:
        """``threads`` BLAS threads from now on; ``None`` for the default."""
        wanted = self.default if threads is None else threads
        if self.get() != wanted:
            self.set(wanted)


@functools.cache
def blas() -> Blas | None:
    """numpy's OpenBLAS, or ``None`` where numpy links another BLAS or none is found."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(folder.glob("*openblas*")):
        lib = ctypes.CDLL(str(path))
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    return Blas(get=get, set=set_, default=int(get()))
    return None


def use_blas(threads: int | None) -> None:
    control = blas()
    if control is not None:
        control.use(threads)


def blas_label(threads: int | None) -> str:
    control = blas()
    if threads is not None:
        return str(threads)
    return "default" if control is None else f"default ({control.default})"


# --- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One timed figure: a workload's first requests cut into batches of one size."""

    groups: tuple[str, ...]  # the result tables it is listed in
    workload: Workload
    batches: list[RequestBatch]
    blas: int | None = None  # BLAS threads while timing; None for the default

    @staticmethod
    def of(
        groups: tuple[str, ...],
        workload: Workload,
        batch_size: int,
        n_requests: int,
        blas: int | None = None,
    ) -> Case:
        batches = split(_slice(workload.requests, 0, n_requests), batch_size)
        return Case(groups, workload, batches, blas)

    @property
    def requests(self) -> int:
        return sum(len(b) for b in self.batches)

    def warm_up(self) -> None:
        use_blas(self.blas)
        self.workload.decide(self.batches[0])  # the index for the live set, caches

    def rate(self) -> float:
        """Requests per second of one pass; only ``decide`` is inside the clock."""
        use_blas(self.blas)
        gc.collect()
        start = time.perf_counter()
        for batch in self.batches:
            self.workload.decide(batch)
        return self.requests / (time.perf_counter() - start)

    def measurements(self, rates: list[float]) -> list[Measurement]:
        w = self.workload
        size = len(self.batches[0])
        return [
            Measurement(g, w.config, w.state, self.blas, size, self.requests, tuple(rates))
            for g in self.groups
        ]


class _Stopwatch:
    """Accumulates the seconds between successive ``lap`` calls under each lap's name."""

    def __init__(self, totals: dict[str, float]) -> None:
        self.totals = totals
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.totals[name] = self.totals.get(name, 0.0) + now - self._last
        self._last = now


def _staged_chunk(workload: Workload, batch: RequestBatch, watch: _Stopwatch) -> None:
    """The calls of ``Engine._decide_chunk`` (decision.py), one lap each; assembly left out."""
    engine, campaigns = workload.engine, workload.engine.campaigns
    live = workload.budget > 0
    interest = engine.profiles.distribution(batch.user)
    affinity = engine.affinity.affinities(interest)
    watch.lap("profiles")
    candidates = engine.retriever.retrieve(batch, interest=interest, affinity=affinity, live=live)
    watch.lap("retrieval")
    x_ctr, x_cvr = engine.predictor.features(
        campaign=candidates.campaign,
        retrieval=candidates.score,
        interest=interest,
        affinity=affinity,
    )
    pctr, pcvr = engine.predictor.predict(surface=batch.surface, x_ctr=x_ctr, x_cvr=x_cvr)
    watch.lap("features + prediction")
    c = np.maximum(candidates.campaign, 0)
    manual = campaigns.mode[c] == CampaignMode.MANUAL_CPC
    value = workload.multiplier[c] * pcvr * engine.items.price[campaigns.item[c]]
    bid = np.minimum(np.where(manual, campaigns.manual_cpc[c], value), workload.budget[c])
    watch.lap("bidding")
    run_auction(
        bid=bid,
        pctr=pctr,
        item=campaigns.item[c],
        valid=candidates.valid & live[c],
        n_slots=batch.n_slots,
        reserve=np.array(engine.config.reserve_by_surface())[batch.surface],
        relevance_floor=np.array(engine.config.floor_by_surface())[batch.surface],
        max_slots=engine.max_slots,
    )
    watch.lap("auction")


def stage_split(case: Case, repeats: int) -> StageSplit:
    """Median time per stage and of ``decide``; each batch goes through both back to back, so
    the two see the same machine noise."""
    passes: list[dict[str, float]] = []
    case.warm_up()
    for _ in range(repeats):
        totals: dict[str, float] = {}
        gc.collect()
        for batch in case.batches:
            watch = _Stopwatch(totals)
            _staged_chunk(case.workload, batch, watch)
            case.workload.decide(batch)
            watch.lap(DECIDE)
        totals[REST] = totals[DECIDE] - sum(totals[name] for name in STAGES)
        passes.append(totals)
    names = (*STAGES, REST, DECIDE)
    medians = {name: statistics.median(p[name] for p in passes) for name in names}
    return StageSplit(len(case.batches[0]), case.requests, case.blas, medians)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Results:
    measurements: list[Measurement]
    stages: StageSplit | None
    started: dt.datetime
    code: str  # the code version measured
    load: tuple[float, float]  # 1-minute load average before and after the timed rounds


class Runner:
    """Builds every workload, then times all cases round-robin: pass 1 of each case, then pass 2
    of each, and so on, so a burst of load on the shared machine hits every figure alike."""

    def __init__(self, plan: Plan, seed: int, progress: Progress) -> None:
        self.plan = plan
        self.seed = seed
        self.progress = progress
        self.base = load_scenario(plan.base)
        self._overall = progress.add_task("benchmark", total=None)

    def run(self) -> Results:
        started, code = dt.datetime.now().astimezone(), code_version()
        cases = self._cases()
        self.progress.update(self._overall, total=self.plan.repeats + 1, completed=0)
        load_before = os.getloadavg()[0]
        rates = self._rounds(cases)
        load_after = os.getloadavg()[0]
        self._step(f"{self.plan.base}: per-stage split")
        # On one BLAS thread where possible: stalls of BLAS threads waiting for a busy core
        # would otherwise land on whichever stage calls BLAS (retrieval).
        split_case = next((case for case in cases if case.blas == 1), cases[0])
        stages = stage_split(split_case, self.plan.repeats)
        self.progress.advance(self._overall)
        measurements = [
            m for case, r in zip(cases, rates, strict=True) for m in case.measurements(r)
        ]
        order = {group: i for i, group in enumerate(dict.fromkeys(m.group for m in measurements))}
        measurements.sort(key=lambda m: (order[m.group], *m.key))
        return Results(measurements, stages, started, code, (load_before, load_after))

    def _step(self, description: str) -> None:
        self.progress.update(self._overall, description=description)

    def _rounds(self, cases: list[Case]) -> list[list[float]]:
        for case in cases:
            case.warm_up()
        rates: list[list[float]] = [[] for _ in cases]
        for round_ in range(self.plan.repeats):
            self._step(f"timing: round {round_ + 1} of {self.plan.repeats}")
            for case, case_rates in zip(cases, rates, strict=True):
                case_rates.append(case.rate())
            self.progress.advance(self._overall)
        return rates

    def _cases(self) -> list[Case]:
        """The base size (the stage split reuses one of its cases), the large size, the sweeps."""
        plan = self.plan
        warm = self._warm_base()
        cases = [
            Case.of((plan.base,), warm, size, n, blas=threads)
            for threads in self._blas_settings()
            for size, n in plan.batches
        ]
        if plan.large is not None:
            self._step(f"{plan.large}: building market and engine")
            config, n = load_scenario(plan.large), plan.large_requests
            large = build_workload(config, warm=False, n_requests=n, seed=self.seed)
            cases += [
                Case.of((plan.large,), large, plan.sweep_batch, n, blas=threads)
                for threads in self._blas_settings()
            ]
            self._log(f"{plan.large}: market and engine built")
        return cases + self._sweep_cases()

    @staticmethod
    def _blas_settings() -> list[int | None]:
        """The default BLAS thread count, and one thread where that differs and can be set."""
        control = blas()
        return [None, 1] if control is not None and control.default > 1 else [None]

    def _warm_base(self) -> Workload:
        self._step(f"{self.plan.base}: simulating a day to train the engine")
        ticks = self.progress.add_task("  simulated ticks", total=None)

        def tick(done: int, total: int) -> None:
            self.progress.update(ticks, completed=done, total=total)

        requests = max(n for _, n in self.plan.batches)
        workload = build_workload(
            self.base, warm=True, n_requests=requests, seed=self.seed, tick=tick
        )
        self.progress.remove_task(ticks)
        self._log(f"{self.plan.base}: engine trained by a simulated day")
        return workload

    def _sweep_cases(self) -> list[Case]:
        """One case per distinct market; the point both sweeps share is listed in both groups."""
        items, campaigns = self.base.catalog.n_items, self.base.campaigns.n_campaigns
        points: dict[tuple[int, int], tuple[str, ...]] = {}
        for n in self.plan.items:
            points[(n, campaigns)] = (*points.get((n, campaigns), ()), "items")
        for n in self.plan.campaigns:
            points[(items, n)] = (*points.get((items, n), ()), "campaigns")
        cases = []
        for (n_items, n_campaigns), groups in points.items():
            self._step(f"growth: building {_count(n_items)} items, {_count(n_campaigns)} campaigns")
            config = scaled(self.base, n_items=n_items, n_campaigns=n_campaigns)
            n = self.plan.sweep_requests
            workload = build_workload(config, warm=False, n_requests=n, seed=self.seed)
            # The sweeps run on the steadier setting: one BLAS thread where it can be set.
            threads = self._blas_settings()[-1]
            cases.append(Case.of(groups, workload, self.plan.sweep_batch, n, blas=threads))
            self._log(f"growth: {_count(n_items)} items, {_count(n_campaigns)} campaigns built")
        return cases

    def _log(self, line: str) -> None:
        self.progress.console.log(line)


# --- reporting ------------------------------------------------------------------------------

HEADERS = [
    "group",
    "items",
    "campaigns",
    "users",
    "engine",
    "BLAS threads",
    "batch",
    "requests",
    "median req/s",
    "min–max req/s",
    "vs 100k/s",
]
STAGE_HEADERS = ["stage", "ms per pass", "µs / request", "share of decide"]
_LEFT = {"group", "engine", "stage"}
_TITLES = {"items": "Growth with items", "campaigns": "Growth with campaigns"}


def _count(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % (div // 10) == 0:
            return f"{n / div:g}{unit}"
    return f"{n:,}"


def _row(m: Measurement) -> list[str]:
    return [
        m.group,
        *m.size,
        m.state,
        blas_label(m.blas),
        f"{m.batch_size:,}",
        f"{m.requests:,}",
        f"{m.median:,.0f}",
        f"{min(m.rates):,.0f}–{max(m.rates):,.0f}",
        f"{m.median / TARGET_RPS:.2f}×",
    ]


def _stage_rows(split_: StageSplit) -> list[list[str]]:
    decide = split_.seconds[DECIDE]
    return [
        [
            name,
            f"{seconds * 1e3:,.0f}",
            f"{seconds / split_.requests * 1e6:.2f}",
            f"{seconds / decide:.0%}",
        ]
        for name, seconds in split_.seconds.items()
    ]


def _rich_table(title: str, headers: list[str], rows: Iterable[list[str]]) -> Table:
    table = Table(title=title, header_style="bold")
    for h in headers:
        table.add_column(h, justify="left" if h in _LEFT else "right")
    for row in rows:
        table.add_row(*row)
    return table


def rich_tables(results: Results) -> list[Table]:
    tables = [_rich_table("Engine.decide throughput", HEADERS, map(_row, results.measurements))]
    if results.stages is not None:
        s = results.stages
        title = (
            f"Per-stage split, warm engine, {s.requests:,} requests, batches of {s.batch_size:,},"
            f" BLAS threads {blas_label(s.blas)}"
        )
        tables.append(_rich_table(title, STAGE_HEADERS, _stage_rows(s)))
    return tables


def _markdown_table(headers: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: Results, command: str, plan: Plan) -> str:
    """The RESULTS.md section: provenance, headline, one table per group, the stage split."""
    lines = [
        "## Decision-path throughput",
        "",
        f"- Command: `{command}`",
        f"- Date: {results.started.isoformat(timespec='minutes')}",
        f"- Machine: {machine()}",
        f"- Load: 1-minute load average {results.load[0]:.1f} before the timed rounds,"
        f" {results.load[1]:.1f} after (other work shared the machine)",
        f"- Code: {results.code}",
        *_headline(results, plan),
        "",
        *_method(plan),
    ]
    groups = dict.fromkeys(m.group for m in results.measurements)
    for group in groups:
        rows = [_row(m) for m in results.measurements if m.group == group]
        title = _TITLES.get(group, f"`{group}` size")
        lines += ["", f"### {title}", "", _markdown_table(HEADERS, rows)]
        if group == plan.base and results.stages is not None:
            lines += ["", *_stage_section(results.stages, plan)]
    return "\n".join(lines)


def _headline(results: Results, plan: Plan) -> list[str]:
    """The base size at the first batch size, once per BLAS setting, against the target."""
    size = plan.batches[0][0]
    return [
        f"- **`{plan.base}` size, {m.state} engine, batches of {size:,}, BLAS threads"
        f" {blas_label(m.blas)}: {m.median:,.0f} requests/s, {m.median / TARGET_RPS:.2f}× the"
        f" target of {TARGET_RPS:,} requests/s.**"
        for m in results.measurements
        if m.group == plan.base and m.batch_size == size
    ]


def _method(plan: Plan) -> list[str]:
    base = load_scenario(plan.base)
    lines = [
        "Only `Engine.decide` is timed (retrieval, prediction, bidding, auction), on requests"
        " drawn beforehand from the scenario's market (each tick served with no ads);"
        " multiplier = 1 / target ROI, remaining budget = the whole budget. Each figure is the"
        f" median requests/s of {plan.repeats} passes over the same requests, after one warm-up"
        " call; the passes of all figures run round-robin (pass 1 of every figure, then pass 2,"
        " ...) so that load from other work on the shared machine falls on all of them alike;"
        " min–max is the spread, and the max the least-disturbed pass. *warm*: the engine after"
        " a full simulated day (trained models, profiles, quality); *priors*: a freshly built"
        " engine. *BLAS threads*: numpy's OpenBLAS thread count while timing (set through"
        " OpenBLAS's C API); *default* is what the engine gets out of the box.",
        "",
        f"- Growth rows: fresh engines, {_count(base.users.n_users)} users,"
        f" {base.catalog.n_categories} categories, {plan.sweep_requests:,} requests in batches"
        f" of {plan.sweep_batch:,}; the items sweep keeps {base.campaigns.n_campaigns:,}"
        f" campaigns, the campaigns sweep {_count(base.catalog.n_items)} items. The point both"
        f" share is the `{plan.base}` market with a fresh engine, measured once and listed twice."
        " They run on one BLAS thread where that can be set, the steadier setting on a shared"
        " machine: a multi-threaded BLAS call waits for all its threads, so another process"
        " busy on a core stalls it.",
    ]
    if plan.large is not None:
        large = load_scenario(plan.large)
        lines.append(
            f"- `{plan.large}` ({large.catalog.n_categories} categories) uses a fresh engine:"
            f" a full simulated day at that size ({_count(large.traffic.requests_per_day)}"
            " requests) is too slow to run for a benchmark."
        )
    return lines


def _stage_section(split_: StageSplit, plan: Plan) -> list[str]:
    return [
        f"Per-stage split (warm engine, {split_.requests:,} requests in batches of"
        f" {split_.batch_size:,}, BLAS threads {blas_label(split_.blas)}): the calls of"
        " `Engine._decide_chunk` timed one by one, each batch then sent through `decide`"
        " itself; the rest is `decide` minus the stages"
        " (assembling the `Decision`, the winners' features). Medians over"
        f" {plan.repeats} passes.",
        "",
        _markdown_table(STAGE_HEADERS, _stage_rows(split_)),
    ]


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    return parse_benchmark_args(
        argv,
        description=__doc__.splitlines()[0],
        results_name=RESULTS.name,
        repeats_help="passes per figure",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.repeats is not None:
        plan = replace(plan, repeats=args.repeats)
    console = Console(width=None if sys.stdout.isatty() else 140)  # full tables in logs too
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        results = Runner(plan, args.seed, progress).run()
    for table in rich_tables(results):
        console.print(table)
    console.print(f"total wall time {time.perf_counter() - started:,.0f} s")
    if args.write:
        command = " ".join(["python", "benchmarks/decision_throughput.py", *argv])
        write_section(RESULTS, START, END, markdown(results, command, plan))
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
