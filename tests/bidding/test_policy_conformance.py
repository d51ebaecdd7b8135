"""Every registered policy against the contract of ``bidding.policy``, on synthetic days of
observations, and end to end through the bidding benchmark on a small two-day market."""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass, replace

import numpy as np
import pytest
from numpy.typing import NDArray

from quanzhan.bidding.hindsight import solve_hindsight
from quanzhan.bidding.policy import CampaignSpec, MenuView, Observation, Policy
from quanzhan.bidding.registry import POLICIES
from quanzhan.domain import CampaignMode, RoiBasis
from quanzhan.sim.bench import outcomes, run_policy
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.run import SimulationResult

DAY = 86_400.0
NAMES = sorted(POLICIES)
SLOTS = 3
TICKS = 6
DAYS = 3

SPEC = CampaignSpec(
    budget=np.array([120.0, 40.0, 300.0]),
    target_roi=np.array([2.0, 3.5, 1.5]),
    roi_basis=np.array([RoiBasis.FULL_SITE, RoiBasis.AD_ONLY, RoiBasis.FULL_SITE], dtype=np.int8),
)
N = len(SPEC)


def _fresh(name: str) -> Policy:
    policy = POLICIES[name]()
    policy.reset(campaigns=SPEC, seed=7)
    return policy


# --- synthetic days --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """What the driver shows a policy at one tick, and whether a new day starts before it."""

    observation: Observation
    new_day: bool


@dataclass(frozen=True)
class Figures:
    """How one campaign's days go: its pace against the plan, ROI of the clicks it buys,
    organic GMV a day, and how rich and how profitable its menus are."""

    pace: float
    roi: float
    organic: float
    menu_rows: int
    menu_roi: float


BASE = (
    Figures(pace=0.6, roi=4.0, organic=30.0, menu_rows=40, menu_roi=6.0),  # behind, profitable
    Figures(pace=1.4, roi=2.5, organic=10.0, menu_rows=30, menu_roi=2.0),  # ahead, below target
    Figures(pace=1.0, roi=1.7, organic=0.0, menu_rows=50, menu_roi=1.8),  # on plan, near target
)


def _menus(rng: np.random.Generator, campaign: int, rows: int, roi: float) -> MenuView:
    """GSP-like menus: the top slot is worth and costs the most; the last slot is absent on
    about a third of the pages."""
    value = rng.lognormal(0.0, 0.5, rows)[:, None] * (0.85 ** np.arange(SLOTS))[None, :]
    markup = rng.uniform(0.5, 1.5, rows)[:, None] * (0.7 ** np.arange(SLOTS))[None, :]
    cost = value * markup / roi
    absent = rng.random(rows) < 0.35
    value[absent, -1] = np.nan
    cost[absent, -1] = np.nan
    return MenuView(campaign=np.full(rows, campaign, dtype=np.int64), value=value, cost=cost)


def _concat(parts: list[MenuView]) -> MenuView:
    return MenuView(
        campaign=np.concatenate([p.campaign for p in parts]),
        value=np.concatenate([p.value for p in parts]),
        cost=np.concatenate([p.cost for p in parts]),
    )


def days_of_ticks(figures: tuple[Figures, ...] = BASE, *, menus: bool) -> list[Tick]:
    """``DAYS`` days of ``TICKS`` ticks each, every figure cumulative over its day.

    Each campaign draws from its own random stream, so changing one campaign's figures leaves
    every other campaign's numbers exactly as they were.
    """
    streams = [np.random.default_rng([11, c]) for c in range(N)]
    ticks: list[Tick] = []
    for day in range(DAYS):
        for t in range(TICKS):
            parts: list[MenuView] = []  # the auctions since the previous tick
            share = ((t + 1) / TICKS) ** 1.3  # the forecast: traffic late in the day
            spend = np.zeros(N)
            gmv = np.zeros(N)
            clicks = np.zeros(N)
            organic = np.zeros(N)
            for c, (f, rng) in enumerate(zip(figures, streams, strict=True)):
                noise = rng.uniform(0.9, 1.1, 2)
                spend[c] = min(SPEC.budget[c], SPEC.budget[c] * share * f.pace * noise[0])
                gmv[c] = spend[c] * f.roi * noise[1]
                clicks[c] = np.floor(spend[c] / 0.4)
                organic[c] = f.organic * share
                if menus:
                    parts.append(_menus(rng, c, f.menu_rows, f.menu_roi))
            arrived = np.clip(0.3 + 0.1 * t, 0.0, 1.0)
            observation = Observation(
                now=(day + share) * DAY,
                day_fraction=(t + 1) / TICKS,
                planned_share=share,
                spend=spend,
                gmv_realized=gmv * arrived * 0.9,
                gmv_predicted=gmv,
                orders_realized=clicks * 0.05 * arrived * 0.9,
                orders_arrived=clicks * 0.05 * arrived,
                gmv_organic=organic,
                clicks=clicks,
                menus=_concat(parts) if parts else None,
            )
            ticks.append(Tick(observation=observation, new_day=day > 0 and t == 0))
    return ticks


def _needs_menus(name: str) -> bool:
    return bool(POLICIES[name]().needs_menus)


def play(policy: Policy, ticks: list[Tick]) -> NDArray[np.float64]:
    """Drive the policy as the simulator does; ``(ticks, n)`` multipliers after each update."""
    seen = []
    for tick in ticks:
        if tick.new_day:
            policy.start_day()
        policy.update(tick.observation)
        seen.append(policy.multipliers())
    return np.array(seen)


# --- the contract ----------------------------------------------------------------------------


def _check_multipliers(k: NDArray[np.float64]) -> None:
    assert isinstance(k, np.ndarray)
    assert k.shape == (N,)
    assert np.issubdtype(k.dtype, np.floating)
    assert np.all(np.isfinite(k))
    assert np.all(k >= 0)


@pytest.mark.parametrize("name", NAMES)
def test_multipliers_are_finite_and_non_negative_from_reset_on(name: str) -> None:
    policy = _fresh(name)
    _check_multipliers(policy.multipliers())
    for tick in days_of_ticks(menus=_needs_menus(name)):
        if tick.new_day:
            policy.start_day()
            _check_multipliers(policy.multipliers())
        policy.update(tick.observation)
        _check_multipliers(policy.multipliers())


@pytest.mark.parametrize("name", NAMES)
def test_the_policy_name_matches_its_registry_key(name: str) -> None:
    assert POLICIES[name]().name == name


@pytest.mark.parametrize("name", NAMES)
def test_multipliers_never_alias_internal_state(name: str) -> None:
    policy = _fresh(name)
    ticks = days_of_ticks(menus=_needs_menus(name))
    for stage in (ticks[:0], ticks[:4], ticks[4 : TICKS + 2]):
        play(policy, stage)
        first = policy.multipliers()
        kept = first.copy()
        first[:] = 1e6
        first += 1.0
        np.testing.assert_array_equal(policy.multipliers(), kept)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_and_observations_give_the_same_multipliers(name: str) -> None:
    menus = _needs_menus(name)
    # Independently built sequences: nothing is shared between the two runs.
    one = play(_fresh(name), days_of_ticks(menus=menus))
    two = play(_fresh(name), days_of_ticks(menus=menus))
    np.testing.assert_array_equal(one, two)
    assert len(np.unique(one, axis=0)) > 1  # the sequence does move the policy


@pytest.mark.parametrize("name", NAMES)
def test_a_policy_pickles_and_the_copy_carries_on_identically(name: str) -> None:
    ticks = days_of_ticks(menus=_needs_menus(name))
    for cut in (0, TICKS - 2, TICKS + 1):
        original = _fresh(name)
        play(original, ticks[:cut])
        copy = pickle.loads(pickle.dumps(original))
        np.testing.assert_array_equal(copy.multipliers(), original.multipliers())
        np.testing.assert_array_equal(play(copy, ticks[cut:]), play(original, ticks[cut:]))


def _money_changed(ticks: list[Tick], campaign: int) -> list[Tick]:
    """The same days, but the campaign spends at another pace, at another ROI, with another
    organic GMV; its clicks, orders and menus stay as they were."""
    out = []
    for tick in ticks:
        o = tick.observation
        spend, gmv, realized, organic = (
            a.copy() for a in (o.spend, o.gmv_predicted, o.gmv_realized, o.gmv_organic)
        )
        spend[campaign] = min(2.5 * spend[campaign], SPEC.budget[campaign])
        gmv[campaign] *= 0.3
        realized[campaign] *= 0.2
        organic[campaign] = 7.0 * organic[campaign] + 40.0
        changed = replace(
            o, spend=spend, gmv_predicted=gmv, gmv_realized=realized, gmv_organic=organic
        )
        out.append(Tick(observation=changed, new_day=tick.new_day))
    return out


@pytest.mark.parametrize("changed", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_a_campaign_is_unaffected_by_another_campaigns_spend_and_gmv(
    name: str, changed: int
) -> None:
    ticks = days_of_ticks(menus=_needs_menus(name))
    base = play(_fresh(name), ticks)
    moved = play(_fresh(name), _money_changed(ticks, changed))
    others = np.arange(N) != changed
    np.testing.assert_array_equal(moved[:, others], base[:, others])
    if name != "online_lp":  # it steers on its menus, not on spend
        assert not np.array_equal(moved[:, changed], base[:, changed])


def _baseline_limit(reason: str) -> pytest.MarkDecorator:
    """A property a baseline does not have by design (its docstring says so)."""
    return pytest.mark.xfail(strict=True, reason=reason)


def _everything_changed(campaign: int) -> tuple[Figures, ...]:
    """The campaign buys at another pace and ROI, on another landscape, with other clicks and
    orders: nothing like before."""
    other = Figures(pace=2.5, roi=0.8, organic=0.0, menu_rows=7, menu_roi=0.9)
    return tuple(other if c == campaign else f for c, f in enumerate(BASE))


@pytest.mark.parametrize("changed", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_a_campaign_is_unaffected_by_all_of_another_campaigns_figures(
    name: str, changed: int
) -> None:
    """Orders, clicks and menus too: everything in ``Observation`` is per campaign."""
    menus = _needs_menus(name)
    base = play(_fresh(name), days_of_ticks(menus=menus))
    moved = play(_fresh(name), days_of_ticks(_everything_changed(changed), menus=menus))
    others = np.arange(N) != changed
    assert not np.array_equal(moved[:, changed], base[:, changed])  # it did see the change
    np.testing.assert_array_equal(moved[:, others], base[:, others])


@pytest.mark.parametrize("name", NAMES)
def test_update_before_reset_raises(name: str) -> None:
    tick = days_of_ticks(menus=_needs_menus(name))[2]
    with pytest.raises(RuntimeError):
        POLICIES[name]().update(tick.observation)


def _spent_out(observation: Observation, campaign: int) -> Observation:
    """The same tick, but the campaign has spent its whole budget at a fine ROI."""
    spend = observation.spend.copy()
    spend[campaign] = SPEC.budget[campaign]
    gmv = observation.gmv_predicted.copy()
    gmv[campaign] = 4.0 * SPEC.target_roi[campaign] * spend[campaign]
    realized = observation.gmv_realized.copy()
    realized[campaign] = gmv[campaign]
    return replace(observation, spend=spend, gmv_predicted=gmv, gmv_realized=realized)


SPENT_OUT_FAILURES: dict[str, str] = {
    "online_lp": (
        "documented: it re-solves the LP on the menus with the plan's budget share and never "
        "looks at spend"
    ),
    "pid_roi": "documented: PID on ROI alone, 'no notion of pacing', budgets left to the ledger",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=_baseline_limit(SPENT_OUT_FAILURES[n]))
        if n in SPENT_OUT_FAILURES
        else n
        for n in NAMES
    ],
)
def test_a_campaign_that_has_spent_its_budget_does_not_bid_up(name: str) -> None:
    """Half-way through the second day, each campaign in turn reports its budget spent while
    its ROI is four times the target."""
    ticks = days_of_ticks(menus=_needs_menus(name))
    cut = TICKS + TICKS // 2
    for campaign in range(N):
        policy = _fresh(name)
        play(policy, ticks[:cut])
        before = policy.multipliers()[campaign]
        for tick in ticks[cut : cut + 2]:
            policy.update(_spent_out(tick.observation, campaign))
            after = policy.multipliers()[campaign]
            assert after <= before * (1 + 1e-12), (campaign, before, after)
            before = after


# --- end to end ------------------------------------------------------------------------------


def _small_market() -> ScenarioConfig:
    """The tiny market over two days of 10,000 page views, hourly ticks, two model refreshes."""
    tiny = load_scenario("tiny")
    return tiny.model_copy(
        update={
            "traffic": tiny.traffic.model_copy(
                update={"days": 2, "requests_per_day": 10_000, "tick_minutes": 60.0}
            ),
            "engine": tiny.engine.model_copy(
                update={"first_refresh_hours": 6.0, "refresh_hours": 12.0}
            ),
        }
    )


@functools.cache
def _run(name: str, attempt: int) -> SimulationResult:
    del attempt  # only keys the cache: a second, independent run
    return run_policy(_small_market(), seed=1, policy=name)


def _daily_charges(result: SimulationResult) -> NDArray[np.float64]:
    rows = result.ledger.rows()
    days = result.config.traffic.days
    out = np.zeros((len(result.view.campaigns), days))
    np.add.at(out, (rows.campaign.astype(np.int64), rows.day.astype(np.int64)), rows.amount)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_the_ledger_never_charges_past_a_daily_budget(name: str) -> None:
    result = _run(name, 0)
    rows = result.ledger.rows()
    budget = result.view.campaigns.budget
    assert set(np.unique(rows.day).tolist()) == {0, 1}
    daily = _daily_charges(result)
    assert np.all(daily <= budget[:, None] * (1 + 1e-12))
    # Not vacuous: some campaigns do run their budget out on some day.
    assert np.any(daily >= budget[:, None] * (1 - 1e-9))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_run_is_deterministic(name: str) -> None:
    one, two = _run(name, 0), _run(name, 1)
    assert one is not two
    np.testing.assert_array_equal(_daily_charges(one), _daily_charges(two))
    np.testing.assert_array_equal(one.oracle.value, two.oracle.value)


def _steered(result: SimulationResult) -> NDArray[np.bool_]:
    steered: NDArray[np.bool_] = result.view.campaigns.mode == CampaignMode.FULL_SITE
    return steered


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_no_campaign_gets_more_than_the_best_slot_of_every_auction_it_met(name: str) -> None:
    """What is guaranteed whatever the policy does: every impression a steered campaign wins
    is one of its logged menus' slots, booked at the same true value, so each day it achieves
    at most the sum over its menus of the most valuable slot (the optimum without budget and
    ROI constraints)."""
    result = _run(name, 0)
    oracle = result.oracle
    menus = oracle.menus()
    best = np.max(np.where(np.isfinite(menus.value), menus.value, 0.0), axis=1, initial=0.0)
    n, days = oracle.value.shape
    bound = np.bincount(
        menus.campaign * days + menus.day, weights=best, minlength=n * days
    ).reshape(n, days)
    steered = _steered(result)
    assert np.any(oracle.value[steered] > 0)
    assert np.all(oracle.value[steered] <= bound[steered] * (1 + 1e-9) + 1e-12)


def _lp_feasible(result: SimulationResult) -> NDArray[np.bool_]:
    """Campaigns whose achieved outcome met the budget and the ROI target on every day, in
    expected terms: what they won is then a feasible point of the hindsight LP."""
    table, oracle = result.view.campaigns, result.oracle
    organic = np.where((table.roi_basis == RoiBasis.FULL_SITE)[:, None], oracle.organic, 0.0)
    within_budget = oracle.spend <= table.budget[:, None]
    on_target = oracle.value + organic >= table.target_roi[:, None] * oracle.spend
    feasible: NDArray[np.bool_] = np.all(within_budget & on_target, axis=1)
    return feasible


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_campaign_that_kept_within_the_constraints_achieves_at_most_the_optimum(
    name: str,
) -> None:
    """``achieved <= optimum`` is NOT guaranteed in general: the optimum holds expected spend
    to the budget and expected ROI to the target, while the ledger caps realized charges only
    (a campaign that was lucky with clicks spends more than its budget in expectation) and a
    policy may break the ROI target. It is guaranteed for campaigns whose outcome was feasible
    for the LP on every day."""
    result = _run(name, 0)
    steered = _steered(result)
    found = outcomes(result, steered=steered)
    feasible = _lp_feasible(result)[found.campaign]
    assert feasible.any()
    excess = found.achieved - (found.optimum * (1 + 1e-6) + 1e-9)
    assert np.all(excess[feasible] <= 0), found.campaign[feasible & (excess > 0)]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_campaign_day_within_the_constraints_achieves_at_most_the_highs_optimum(
    name: str,
) -> None:
    """The same guarantee day by day, against the exact LP (HiGHS) over the logged menus."""
    result = _run(name, 0)
    table, oracle = result.view.campaigns, result.oracle
    menus = oracle.menus()
    organic = np.where((table.roi_basis == RoiBasis.FULL_SITE)[:, None], oracle.organic, 0.0)
    within_budget = oracle.spend <= table.budget[:, None]
    on_target = oracle.value + organic >= table.target_roi[:, None] * oracle.spend
    feasible = within_budget & on_target & _steered(result)[:, None] & (oracle.value > 0)
    assert feasible.sum() >= 10
    for campaign, day in zip(*np.nonzero(feasible), strict=True):
        mine = (menus.campaign == campaign) & (menus.day == day)
        value, cost = menus.value[mine], menus.cost[mine]
        optimum = solve_hindsight(
            value=value,
            cost=cost,
            available=np.isfinite(value) & np.isfinite(cost),
            budget=float(table.budget[campaign]),
            target_roi=float(table.target_roi[campaign]),
            base_gmv=float(organic[campaign, day]),
        ).value
        assert oracle.value[campaign, day] <= optimum * (1 + 1e-6) + 1e-9, (campaign, day)
