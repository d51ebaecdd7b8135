"""The bidding benchmark: every policy in turn on the same market and seed, against hindsight.

Each policy steers the scenario's full-site campaigns through the whole run (the scenario's
manual-CPC campaigns stay as they are, part of the competition); ``manual_cpc`` runs those
full-site campaigns as fixed-CPC ones instead, bidding the break-even price at the engine's
published prior conversion rate. For every steered campaign and day the oracle gives the
expected GMV achieved and, over that run's true slot menus, the hindsight optimum. Then per
policy:

- ``efficiency`` of a campaign: expected GMV achieved / hindsight-optimal GMV, over all days;
  ``efficiency_median`` and ``efficiency_p10`` across campaigns with a positive optimum;
- ``bid_ceiling_median``: the most a uniform multiplier could have bought each day under GSP
  (``bidding.response``) over the hindsight optimum, the LP, which may take a lower slot where
  the step up is dear and no bid can; ``efficiency_vs_bid_median`` holds the achieved GMV
  against that attainable optimum instead;
- ``learned_ceiling_median``: the same on the engine's own bids: the most a uniform multiplier
  on its predicted value per click (the auctions it takes are those its predictions win, what
  they bring is the truth's) could have bought each day, over the LP; what the models' errors
  leave of the optimum. ``efficiency_vs_learned_median`` holds the achieved GMV against it:
  what the policy reaches of what the models allow;
- ``roi_met_share``: share of campaigns whose expected ROI (on their basis) is at least 98% of
  target (a campaign that spent nothing has not broken its target);
- ``budget_utilisation_median``: spend / budget over the run; ``overspend_campaigns``: campaigns
  charged past their daily budget on any day;
- ``gmv``: expected ad GMV of the steered campaigns; ``cmr``: all charges of the run;
- ``by_binding``: the campaign-days split by what binds the learned ceiling (``budget``: it
  spends at least 99% of the day's budget; ``roi``: the target holds it first), each with how
  many there are, the GMV achieved over the ceiling's in all and the median per campaign-day,
  the share that met the target on the day's spend, and the median expected spend over the
  ceiling's: whether a policy loses where money runs out or where the target binds, and by
  spending too little or too much.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from quanzhan.bidding.menu_lp import MenuProblem, solve_menus
from quanzhan.bidding.registry import DEFAULT_POLICY, POLICIES, make_policy
from quanzhan.bidding.response import ResponseCurve, solve_response
from quanzhan.domain import CampaignMode, RoiBasis
from quanzhan.errors import ConfigError, OutputError
from quanzhan.sim.config import ScenarioConfig
from quanzhan.sim.oracle import TrueMenus
from quanzhan.sim.past import PlatformPast, play_past
from quanzhan.sim.run import Simulation, SimulationResult, check_perturbation
from quanzhan.sim.summary import ROI_MET_TOLERANCE

MANUAL_CPC = "manual_cpc"
# Manual-CPC campaigns ignore the multipliers; the simulation still steps a policy, so the
# cheapest one that plans without slot menus.
_IDLE_POLICY = "pid_roi"
BENCH_POLICIES = (*sorted(POLICIES), MANUAL_CPC)
# The policy whose run costs most (it sorts its landscape every tick) starts first, so that the
# last worker to finish is not left alone with it.
_SLOWEST_FIRST = (DEFAULT_POLICY,)
# What one policy's run of a benchmark scenario holds at its peak, with room to spare.
_BYTES_PER_JOB = 8 * 2**30
Progress = Callable[[str, int, int], None]
# What ``progress`` calls the days before the run (``sim.past``), played once for all policies.
PAST = "days before"
# Share of the day's budget the learned ceiling spends for the budget to be what binds it.
_BUDGET_BOUND = 0.99


@dataclass(frozen=True, slots=True)
class CampaignOutcomes:
    """Per steered campaign ``(k,)``: who, and how it did against its hindsight optimum."""

    campaign: NDArray[np.int64]
    achieved: NDArray[np.float64]
    optimum: NDArray[np.float64]
    bid_optimum: NDArray[np.float64]
    learned_optimum: NDArray[np.float64]
    roi_expected: NDArray[np.float64]
    target_roi: NDArray[np.float64]
    spend: NDArray[np.float64]
    budget: NDArray[np.float64]
    overspent: NDArray[np.bool_]
    # Per steered campaign and day ``(k, days)``: the same in each day's terms.
    achieved_daily: NDArray[np.float64]
    optimum_daily: NDArray[np.float64]
    roi_daily: NDArray[np.float64]
    # The learned ceiling's GMV and spend, the expected spend achieved and the daily budget.
    learned_daily: NDArray[np.float64]
    learned_spend_daily: NDArray[np.float64]
    spend_daily: NDArray[np.float64]
    budget_daily: NDArray[np.float64]

    @property
    def efficiency(self) -> NDArray[np.float64]:
        """Achieved over optimum, for the campaigns whose optimum is positive."""
        scored = self.optimum > 0
        out: NDArray[np.float64] = self.achieved[scored] / self.optimum[scored]
        return out


def run_policy(
    config: ScenarioConfig,
    *,
    seed: int,
    policy: str,
    progress: Progress | None = None,
    oracle_predictions: bool = False,
    pctr_perturbation: float = 0.0,
    past: PlatformPast | None = None,
) -> SimulationResult:
    """One run of the scenario with ``policy`` steering its full-site campaigns; with
    ``oracle_predictions`` the engine bids on the true click and purchase odds; without it,
    every pCTR its models serve is scaled by ``1 + pctr_perturbation`` (``Simulation``). ``past`` is
    the platform's past (``sim.past``), played here when the scenario has one and none is
    given."""
    if policy not in BENCH_POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; known: {', '.join(BENCH_POLICIES)}")
    chosen = _IDLE_POLICY if policy == MANUAL_CPC else policy
    simulation = Simulation(
        config,
        seed=seed,
        policy=make_policy(chosen),
        menus=True,
        recall=False,
        oracle_predictions=oracle_predictions,
        pctr_perturbation=pctr_perturbation,
        past=past,
    )
    if policy == MANUAL_CPC:
        _as_manual(simulation)
    report = None if progress is None else (lambda done, total: progress(policy, done, total))
    return simulation.run(report)


def _as_manual(simulation: Simulation) -> None:
    """Full-site campaigns bid a fixed CPC: break-even at the engine's prior conversion rate."""
    table = simulation.view.campaigns
    auto = table.mode == CampaignMode.FULL_SITE
    price = simulation.view.items.price[table.item]
    guess = simulation.config.engine.prior_cvr * price / table.target_roi
    manual = replace(
        table,
        mode=np.where(auto, CampaignMode.MANUAL_CPC, table.mode).astype(np.int8),
        manual_cpc=np.where(auto, np.maximum(guess, 0.01), table.manual_cpc),
    )
    simulation.engine.set_campaigns(manual)


def outcomes(result: SimulationResult, *, steered: NDArray[np.bool_]) -> CampaignOutcomes:
    """Achieved against hindsight for every steered campaign."""
    table = result.view.campaigns
    oracle = result.oracle
    days = oracle.days
    problem = hindsight_problem(result)
    organic = problem.base_gmv.reshape(len(table), days)
    # The LP optimum, and the most a uniform multiplier buys under GSP, per campaign-day.
    optimum_daily, bid_optimum_daily = (
        solver(problem).value.reshape(len(table), days) for solver in (solve_menus, solve_response)
    )
    optimum, bid_optimum = optimum_daily.sum(axis=1), bid_optimum_daily.sum(axis=1)
    learned_daily, learned_spend_daily = (
        figure.reshape(len(table), days) for figure in _learned_response(oracle.menus(), problem)
    )
    learned_optimum = learned_daily.sum(axis=1)
    achieved = oracle.value.sum(axis=1)
    roi, roi_daily = (
        _roi(gmv, base, spend)
        for gmv, base, spend in (
            (achieved, organic.sum(axis=1), oracle.spend.sum(axis=1)),
            (oracle.value, organic, oracle.spend),
        )
    )
    daily_spend = _daily_spend(result, days)
    overspent = np.any(daily_spend > table.budget[:, None] * (1 + 1e-9) + 1e-9, axis=1)
    index = np.flatnonzero(steered)
    return CampaignOutcomes(
        campaign=index,
        achieved=achieved[index],
        optimum=optimum[index],
        bid_optimum=bid_optimum[index],
        learned_optimum=learned_optimum[index],
        roi_expected=roi[index],
        target_roi=table.target_roi[index],
        spend=daily_spend.sum(axis=1)[index],
        budget=table.budget[index] * days,
        overspent=overspent[index],
        achieved_daily=oracle.value[index],
        optimum_daily=optimum_daily[index],
        roi_daily=roi_daily[index],
        learned_daily=learned_daily[index],
        learned_spend_daily=learned_spend_daily[index],
        spend_daily=oracle.spend[index],
        budget_daily=np.repeat(table.budget[index, None], days, axis=1),
    )


def _roi(
    gmv: NDArray[np.float64], base: NDArray[np.float64], spend: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Expected ROI on the campaign's basis; infinite where nothing was spent."""
    out: NDArray[np.float64] = np.where(spend > 0, (gmv + base) / np.maximum(spend, 1e-12), np.inf)
    return out


def hindsight_problem(result: SimulationResult) -> MenuProblem:
    """Every campaign-day's true menus as one problem: campaign-day ``c x days + d`` is group
    ``c x days + d``, with the day's budget, the target and the day's organic GMV where it
    counts towards the ROI (full-site campaigns)."""
    table, days = result.view.campaigns, result.oracle.days
    full_site = table.roi_basis == RoiBasis.FULL_SITE
    organic = np.where(full_site[:, None], result.oracle.organic, 0.0)
    menus = result.oracle.menus()
    return MenuProblem(
        group=menus.campaign * days + menus.day, value=menus.value, cost=menus.cost,
        budget=np.repeat(table.budget, days), target_roi=np.repeat(table.target_roi, days),
        base_gmv=organic.ravel(),
    )  # fmt: skip


def learned_ceiling(menus: TrueMenus, problem: MenuProblem) -> NDArray[np.float64]:
    """Per campaign-day (``problem``, over the same ``menus``): the most a uniform multiplier
    on the engine's bids could have bought, within the day's budget and the true ROI target."""
    return _learned_response(menus, problem)[0]


def _learned_response(
    menus: TrueMenus, problem: MenuProblem
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``learned_ceiling`` per campaign-day, and what it spends. Solved one day at a time:
    the steps of a whole run's menus would hold gigabytes at once."""
    bought, spent = np.zeros(len(problem.budget)), np.zeros(len(problem.budget))
    for day in np.unique(menus.day):
        rows = menus.day == day
        curve = ResponseCurve.of(
            problem.group[rows],
            menus.value[rows],
            menus.cost[rows],
            len(problem.budget),
            threshold=menus.bid_thresholds(rows),
        )
        # Campaign-days of other days have no steps here, and buy nothing.
        answer = curve.answer(
            budget=problem.budget, target_roi=problem.target_roi, base_gmv=problem.base_gmv
        )
        bought += answer.value
        spent += answer.spend
    return bought, spent


def _daily_spend(result: SimulationResult, days: int) -> NDArray[np.float64]:
    rows = result.ledger.rows()
    n = len(result.view.campaigns)
    flat = rows.campaign.astype(np.int64) * days + np.minimum(rows.day, days - 1)
    return (
        np.bincount(flat, weights=rows.amount, minlength=n * days)
        .reshape(n, days)
        .astype(np.float64)
    )


def policy_figures(found: CampaignOutcomes, result: SimulationResult) -> dict[str, Any]:
    """The benchmark's figures for one policy."""
    efficiency = found.efficiency
    met = found.roi_expected >= ROI_MET_TOLERANCE * found.target_roi
    # A campaign no uniform bid could serve has a ceiling of 0, not none.
    ceiling = found.bid_optimum[found.optimum > 0] / found.optimum[found.optimum > 0]
    reachable = found.bid_optimum > 0
    versus_bid = found.achieved[reachable] / found.bid_optimum[reachable]
    learned = found.learned_optimum[found.optimum > 0] / found.optimum[found.optimum > 0]
    allowed = found.learned_optimum > 0
    versus_learned = found.achieved[allowed] / found.learned_optimum[allowed]
    # GMV bought while breaking the target is not what the merchant asked for: within target, a
    # campaign that missed it counts 0, and none counts past its optimum.
    scored_met = met[found.optimum > 0]
    within = np.where(scored_met, np.minimum(efficiency, 1.0), 0.0)
    return {
        "efficiency_median": _round(np.median(efficiency)) if len(efficiency) else None,
        "efficiency_p10": _round(np.percentile(efficiency, 10)) if len(efficiency) else None,
        "efficiency_within_target_median": _round(np.median(within)) if len(within) else None,
        "efficiency_vs_bid_median": _round(np.median(versus_bid)) if len(versus_bid) else None,
        "bid_ceiling_median": _round(np.median(ceiling)) if len(ceiling) else None,
        "learned_ceiling_median": _round(np.median(learned)) if len(learned) else None,
        "efficiency_vs_learned_median": _round(np.median(versus_learned))
        if len(versus_learned)
        else None,
        "roi_met_share": _round(float(np.mean(met))) if len(met) else None,
        "budget_utilisation_median": _round(float(np.median(found.spend / found.budget)))
        if len(found.spend)
        else None,
        "overspend_campaigns": int(found.overspent.sum()),
        "gmv": _round(float(found.achieved.sum())),
        "cmr": _round(float(result.ledger.rows().amount.sum())),
        "campaigns": len(found.campaign),
        "by_day": _by_day(found),
        "by_binding": _by_binding(found),
    }


def _by_binding(found: CampaignOutcomes) -> dict[str, dict[str, Any]]:
    """The campaign-days with a positive learned ceiling, split by whether the day's budget
    or the target binds it."""
    allowed = found.learned_daily > 0
    budget_bound = found.learned_spend_daily >= _BUDGET_BOUND * found.budget_daily
    met = found.roi_daily >= ROI_MET_TOLERANCE * found.target_roi[:, None]
    out = {}
    for name, chosen in (("budget", allowed & budget_bound), ("roi", allowed & ~budget_bound)):
        achieved, ceiling = found.achieved_daily[chosen], found.learned_daily[chosen]
        spend, ceiling_spend = found.spend_daily[chosen], found.learned_spend_daily[chosen]
        some = len(achieved) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            spend_ratio = spend / ceiling_spend
        out[name] = {
            "campaign_days": int(chosen.sum()),
            "of_learned_ceiling": _round(achieved.sum() / ceiling.sum()) if some else None,
            "of_learned_ceiling_median": _round(np.median(achieved / ceiling)) if some else None,
            "roi_met_share": _round(float(np.mean(met[chosen]))) if some else None,
            # A ceiling that spends nothing (organic GMV alone) leaves no ratio to read.
            "spend_of_ceiling_median": _round(np.median(spend_ratio[ceiling_spend > 0]))
            if np.any(ceiling_spend > 0)
            else None,
        }
    return out


def _by_day(found: CampaignOutcomes) -> list[dict[str, Any]]:
    """Each day on its own, against that day's hindsight optimum and the target on that
    day's spend: where in the run a policy gains or loses (a first day on untrained models,
    a shock at noon)."""
    days = []
    for achieved, optimum, roi in zip(
        found.achieved_daily.T, found.optimum_daily.T, found.roi_daily.T, strict=True
    ):
        scored = optimum > 0
        efficiency = achieved[scored] / optimum[scored]
        days.append(
            {
                "efficiency_median": _round(np.median(efficiency)) if len(efficiency) else None,
                "roi_met_share": _round(float(np.mean(roi >= ROI_MET_TOLERANCE * found.target_roi)))
                if len(roi)
                else None,
                "gmv": _round(float(achieved.sum())),
                "optimum_gmv": _round(float(optimum.sum())),
            }
        )
    return days


def _round(value: float) -> float:
    return round(float(value), 5)


def dump_run(directory: Path, *, policy: str, result: SimulationResult) -> Path:
    """Write one run's true slot menus and outcomes as ``DIR/POLICY.npz`` (see ``docs``)."""
    menus = result.oracle.menus()
    table = result.view.campaigns
    path = directory / f"{policy}.npz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            menu_campaign=menus.campaign,
            menu_day=menus.day,
            menu_value=menus.value,
            menu_cost=menus.cost,
            menu_click_value=menus.click_value,
            menu_bid_value=menus.bid_value,
            budget=table.budget,
            target_roi=table.target_roi,
            roi_basis=table.roi_basis,
            mode=table.mode,
            organic_gmv=result.oracle.organic,
            achieved_gmv=result.oracle.value,
            achieved_spend=result.oracle.spend,
        )
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def _one_policy(
    config: ScenarioConfig,
    *,
    seed: int,
    policy: str,
    progress: Progress | None,
    dump: Path | None,
    oracle_predictions: bool,
    pctr_perturbation: float,
    past: PlatformPast | None,
) -> tuple[dict[str, Any], CampaignOutcomes]:
    """One policy's run: its figures and per-campaign outcomes (``dump`` writes its menus).

    Linear algebra runs on one thread: a sum split over another number of threads rounds
    differently, and the feedback policies carry such last-bit differences into figures a few
    hundredths apart. So the figures do not depend on the machine's cores or on ``jobs``.
    """
    with threadpool_limits(limits=1):
        result = run_policy(
            config,
            seed=seed,
            policy=policy,
            progress=progress,
            oracle_predictions=oracle_predictions,
            pctr_perturbation=pctr_perturbation,
            past=past,
        )
        steered = result.view.campaigns.mode == CampaignMode.FULL_SITE
        found = outcomes(result, steered=steered)
    if dump is not None:
        dump_run(dump, policy=policy, result=result)
    return policy_figures(found, result), found


# A worker process reports progress through this queue (set by ``_start_worker``).
_progress_queue: Any = None


def _start_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue


def _report_to_queue(policy: str, done: int, total: int) -> None:
    _progress_queue.put((policy, done, total))


def _one_policy_in_worker(
    config: ScenarioConfig,
    seed: int,
    policy: str,
    dump: Path | None,
    oracle_predictions: bool,
    pctr_perturbation: float,
    past: PlatformPast | None,
) -> tuple[dict[str, Any], CampaignOutcomes]:
    return _one_policy(
        config,
        seed=seed,
        policy=policy,
        progress=_report_to_queue,
        dump=dump,
        oracle_predictions=oracle_predictions,
        pctr_perturbation=pctr_perturbation,
        past=past,
    )


def bench_bidding(
    config: ScenarioConfig,
    *,
    seed: int,
    policies: tuple[str, ...] = BENCH_POLICIES,
    progress: Progress | None = None,
    dump: Path | None = None,
    oracle_predictions: bool = False,
    jobs: int | None = None,
    pctr_perturbation: float = 0.0,
) -> tuple[dict[str, Any], dict[str, CampaignOutcomes]]:
    """Run every policy on the same market and seed; the benchmark's JSON and the per-campaign
    outcomes behind it. ``oracle_predictions`` runs them on the true click and purchase odds
    (evaluation only), to show what the models' errors cost each policy;
    ``pctr_perturbation`` scales every pCTR the runs serve (not the platform's past) by ``1 +``
    it (evaluation only: the figures' noise floor, ``docs/bidding.md``). ``jobs`` policies run
    at once, each in its own process (by default as many as the machine's cores and memory
    allow, ``default_jobs``); the figures do not depend on it, since every run starts from the
    seed alone and the platform's past (``sim.past``), played once here for them all."""
    if jobs is None:
        jobs = default_jobs(len(policies))
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    try:
        check_perturbation(pctr_perturbation)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    with threadpool_limits(limits=1):
        past = play_past(
            config,
            seed=seed,
            progress=None if progress is None else lambda d, t: progress(PAST, d, t),
        )
    done: dict[str, tuple[dict[str, Any], CampaignOutcomes]] = {}
    if jobs == 1 or len(policies) == 1:
        for policy in policies:
            done[policy] = _one_policy(
                config,
                seed=seed,
                policy=policy,
                progress=progress,
                dump=dump,
                oracle_predictions=oracle_predictions,
                pctr_perturbation=pctr_perturbation,
                past=past,
            )
    else:
        done = _in_processes(
            config,
            seed=seed,
            policies=policies,
            progress=progress,
            dump=dump,
            oracle_predictions=oracle_predictions,
            pctr_perturbation=pctr_perturbation,
            past=past,
            jobs=jobs,
        )
    summary = {
        "scenario": config.name,
        "seed": seed,
        "days": config.traffic.days,
        "warmup_days": config.traffic.warmup_days,
        "default_policy": DEFAULT_POLICY,
        "predictions": "oracle" if oracle_predictions else "learned",
        "pctr_perturbation": pctr_perturbation,
        "policies": {policy: done[policy][0] for policy in policies},
    }
    return summary, {policy: done[policy][1] for policy in policies}


def default_jobs(n_policies: int) -> int:
    """Policies to run at once: one per core this process may use, as many as memory holds
    (``_BYTES_PER_JOB`` each), and no more than there are policies."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = _BYTES_PER_JOB
    return max(1, min(cores, memory // _BYTES_PER_JOB, n_policies))


def _in_processes(
    config: ScenarioConfig,
    *,
    seed: int,
    policies: tuple[str, ...],
    progress: Progress | None,
    dump: Path | None,
    oracle_predictions: bool,
    pctr_perturbation: float,
    past: PlatformPast | None,
    jobs: int,
) -> dict[str, tuple[dict[str, Any], CampaignOutcomes]]:
    """The policies' runs, ``jobs`` at a time in worker processes, progress relayed here."""
    context = multiprocessing.get_context("spawn")  # no threads of this process are copied
    queue = context.Manager().Queue()
    done: dict[str, tuple[dict[str, Any], CampaignOutcomes]] = {}
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(policies)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(queue,),
    ) as pool:
        slowest_first = sorted(policies, key=lambda policy: policy not in _SLOWEST_FIRST)
        futures = {
            pool.submit(
                _one_policy_in_worker,
                config,
                seed,
                policy,
                dump,
                oracle_predictions,
                pctr_perturbation,
                past,
            ): policy
            for policy in slowest_first
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _relay(queue, progress)
            for future in finished:
                done[futures[future]] = future.result()
        _relay(queue, progress)
    return done


def _relay(queue: Any, progress: Progress | None) -> None:
    while not queue.empty():
        policy, ticks, total = queue.get()
        if progress is not None:
            progress(policy, ticks, total)
