"""What `bench bidding` runs: manual-CPC campaigns do not depend on the policy stepped beside
them, and policies run one after another or several at once give the same figures."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding.menu_lp import MenuProblem, solve_menus
from quanzhan.bidding.response import solve_response
from quanzhan.domain import CampaignMode
from quanzhan.errors import ConfigError
from quanzhan.sim import bench
from quanzhan.sim.bench import bench_bidding
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.oracle import TrueMenus


def test_manual_cpc_outcomes_do_not_depend_on_the_idle_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_scenario("tiny")
    found = []
    for idle in ("pid_roi", "dual"):
        monkeypatch.setattr(bench, "_IDLE_POLICY", idle)
        result = bench.run_policy(config, seed=5, policy=bench.MANUAL_CPC)
        assert result.policy == idle
        steered = result.view.campaigns.mode == CampaignMode.FULL_SITE
        found.append(bench.outcomes(result, steered=steered))
    assert len(found[0].campaign) > 0
    for f in fields(found[0]):
        np.testing.assert_array_equal(getattr(found[0], f.name), getattr(found[1], f.name))


@pytest.fixture
def small(two_day_scenario: Path) -> ScenarioConfig:
    return load_scenario(str(two_day_scenario))


def test_policies_in_worker_processes_give_the_figures_of_one_after_another(
    small: ScenarioConfig,
) -> None:
    policies = ("dual", "manual_cpc")
    one, found_one = bench_bidding(small, seed=4, policies=policies, jobs=1)
    seen: list[tuple[str, int, int]] = []
    two, found_two = bench_bidding(
        small,
        seed=4,
        policies=policies,
        jobs=2,
        progress=lambda policy, done, total: seen.append((policy, done, total)),
    )
    assert one == two
    assert list(two["policies"]) == list(policies)  # in the order asked, whatever finished first
    for policy in policies:
        np.testing.assert_array_equal(found_one[policy].achieved, found_two[policy].achieved)
        # Each worker's progress reached the caller, up to its last tick.
        ticks = [(done, total) for name, done, total in seen if name == policy]
        assert ticks and ticks[-1][0] == ticks[-1][1]


def test_no_jobs_is_refused(small: ScenarioConfig) -> None:
    with pytest.raises(ConfigError, match="jobs"):
        bench_bidding(small, seed=4, policies=("dual",), jobs=0)


def test_default_jobs_is_held_by_cores_memory_and_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 2**30
    page = 4096

    def machine(cores: int, memory: int) -> None:
        monkeypatch.setattr(bench.os, "sched_getaffinity", lambda pid: set(range(cores)))
        sizes = {"SC_PAGE_SIZE": page, "SC_PHYS_PAGES": memory // page}
        monkeypatch.setattr(bench.os, "sysconf", lambda name: sizes[name])

    machine(cores=2, memory=23 * gib)
    assert bench.default_jobs(6) == 2
    machine(cores=16, memory=23 * gib)
    assert bench.default_jobs(6) == 2  # memory holds two runs
    machine(cores=16, memory=128 * gib)
    assert bench.default_jobs(6) == 6  # no more than there are policies
    machine(cores=8, memory=4 * gib)
    assert bench.default_jobs(6) == 1  # always at least one


def test_each_day_is_measured_against_its_own_optimum(small: ScenarioConfig) -> None:
    summary, found = bench_bidding(small, seed=4, policies=("dual",), jobs=1)
    figures, outcome = summary["policies"]["dual"], found["dual"]
    days = figures["by_day"]
    assert len(days) == summary["days"] == 2
    # The days add up to the run: its GMV and, day by day, its hindsight optimum.
    assert sum(d["gmv"] for d in days) == pytest.approx(figures["gmv"], rel=1e-6)
    np.testing.assert_allclose(outcome.optimum_daily.sum(axis=1), outcome.optimum, rtol=1e-12)
    np.testing.assert_allclose(outcome.achieved_daily.sum(axis=1), outcome.achieved, rtol=1e-12)
    for day, d in enumerate(days):
        assert d["optimum_gmv"] == pytest.approx(outcome.optimum_daily[:, day].sum(), rel=1e-6)
        assert 0.0 <= d["roi_met_share"] <= 1.0
    # The split by what binds covers every campaign-day a uniform multiplier could serve, and
    # the learned ceiling's days add up to its run.
    split = figures["by_binding"]
    served = int(np.sum(outcome.learned_daily > 0))
    assert split["budget"]["campaign_days"] + split["roi"]["campaign_days"] == served > 0
    np.testing.assert_allclose(outcome.learned_daily.sum(axis=1), outcome.learned_optimum)
    assert np.all(outcome.learned_spend_daily <= outcome.budget_daily * (1 + 1e-9))


def test_within_target_efficiency_credits_nothing_past_the_target_or_the_optimum(
    small: ScenarioConfig,
) -> None:
    k = 5
    # Efficiencies 0.2, 0.5, 1.5, 0.9, 0.4; the second and third missed their targets.
    outcome = bench.CampaignOutcomes(
        campaign=np.arange(k),
        achieved=np.array([0.2, 0.5, 1.5, 0.9, 0.4]),
        optimum=np.ones(k),
        bid_optimum=np.ones(k),
        learned_optimum=np.ones(k),
        roi_expected=np.array([2.0, 1.0, 1.0, 2.0, np.inf]),
        target_roi=np.full(k, 1.5),
        spend=np.ones(k),
        budget=np.ones(k),
        overspent=np.zeros(k, dtype=bool),
        achieved_daily=np.ones((k, 1)),
        optimum_daily=np.ones((k, 1)),
        roi_daily=np.ones((k, 1)),
        **_no_ceiling(k),
    )
    result = bench.run_policy(small, seed=4, policy="pid_roi")  # only its charges are read
    figures = bench.policy_figures(outcome, result)
    assert figures["efficiency_median"] == pytest.approx(0.5)
    assert figures["roi_met_share"] == pytest.approx(0.6)
    # Within target: 0.2, 0, 0, 0.9, 0.4 (the 1.5 would have been capped at 1, but it missed).
    assert figures["efficiency_within_target_median"] == pytest.approx(0.2)


def _no_ceiling(k: int) -> dict[str, NDArray[np.float64]]:
    """Learned-ceiling figures of ``k`` campaigns over one day that could buy nothing."""
    return {
        "learned_daily": np.zeros((k, 1)),
        "learned_spend_daily": np.zeros((k, 1)),
        "spend_daily": np.zeros((k, 1)),
        "budget_daily": np.ones((k, 1)),
    }


def test_campaign_days_split_by_what_binds_the_learned_ceiling(small: ScenarioConfig) -> None:
    """Four campaign-days: two whose learned ceiling spends the day's budget, one the target
    holds and one no multiplier could serve (left out)."""
    outcome = bench.CampaignOutcomes(
        campaign=np.arange(2), achieved=np.ones(2), optimum=np.ones(2), bid_optimum=np.ones(2),
        learned_optimum=np.ones(2), roi_expected=np.ones(2), target_roi=np.array([2.0, 3.0]),
        spend=np.ones(2), budget=np.full(2, 20.0), overspent=np.zeros(2, dtype=bool),
        optimum_daily=np.ones((2, 2)),
        achieved_daily=np.array([[8.0, 6.0], [1.0, 0.0]]),
        roi_daily=np.array([[2.5, 1.0], [2.0, np.inf]]),
        learned_daily=np.array([[10.0, 10.0], [4.0, 0.0]]),
        learned_spend_daily=np.array([[10.0, 9.95], [1.0, 0.0]]),
        spend_daily=np.array([[10.0, 12.0], [3.0, 0.0]]),
        budget_daily=np.full((2, 2), 10.0),
    )  # fmt: skip
    result = bench.run_policy(small, seed=4, policy="pid_roi")  # only its charges are read
    split = bench.policy_figures(outcome, result)["by_binding"]
    budget, roi = split["budget"], split["roi"]
    assert budget["campaign_days"] == 2 and roi["campaign_days"] == 1
    assert budget["of_learned_ceiling"] == pytest.approx(14.0 / 20.0)
    assert budget["of_learned_ceiling_median"] == pytest.approx(0.7)
    assert budget["roi_met_share"] == pytest.approx(0.5)  # 2.5 against 2 met; 1.0 did not
    assert budget["spend_of_ceiling_median"] == pytest.approx((1.0 + 12.0 / 9.95) / 2, abs=1e-5)
    assert roi["of_learned_ceiling"] == pytest.approx(0.25)
    assert roi["roi_met_share"] == pytest.approx(0.0)  # 2.0 against 3
    assert roi["spend_of_ceiling_median"] == pytest.approx(3.0)


def _true_menus(
    rng: np.random.Generator, rows: int, *, error: float
) -> tuple[TrueMenus, MenuProblem]:
    """Two campaigns over two days; the engine's value per click is off by a lognormal
    ``error`` per auction."""
    clicks = np.sort(rng.uniform(0.1, 1.0, (rows, 3)), axis=1)[:, ::-1]
    click_value = rng.lognormal(0.0, 0.5, rows)
    price = np.sort(rng.uniform(0.05, 2.0, (rows, 3)), axis=1)[:, ::-1] * click_value[:, None]
    campaign, day = rng.integers(0, 2, rows), rng.integers(0, 2, rows)
    menus = TrueMenus(
        campaign=campaign,
        day=day,
        value=clicks * click_value[:, None],
        cost=clicks * price,
        click_value=click_value,
        bid_value=click_value * rng.lognormal(0.0, error, rows),
    )
    spend = np.bincount(campaign * 2 + day, weights=menus.cost[:, 0], minlength=4)
    problem = MenuProblem(
        group=campaign * 2 + day,
        value=menus.value,
        cost=menus.cost,
        budget=spend * rng.uniform(0.1, 1.2, 4),
        target_roi=rng.uniform(0.3, 1.5, 4),
        base_gmv=np.zeros(4),
    )
    return menus, problem


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_learned_ceiling_is_the_bid_ceiling_on_exact_predictions_and_never_past_the_lp(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    exact, problem = _true_menus(rng, 40, error=0.0)
    np.testing.assert_allclose(
        bench.learned_ceiling(exact, problem), solve_response(problem).value, rtol=1e-9
    )
    noisy, problem = _true_menus(np.random.default_rng(seed), 40, error=0.8)
    learned = bench.learned_ceiling(noisy, problem)
    optimum = solve_menus(problem).value
    # Whatever the bids, what they take is a feasible plan of the LP.
    assert np.all(learned <= optimum * (1 + 1e-9) + 1e-12)


def test_a_model_that_overrates_a_poor_auction_lowers_the_learned_ceiling() -> None:
    """Two auctions of one slot, one campaign-day, budget for one: the truth buys the good
    one; a model that rates the poor one higher buys the poor one at any multiplier that
    buys one."""
    value, cost = np.array([[4.0], [1.0]]), np.array([[1.0], [1.0]])
    problem = MenuProblem(
        group=np.zeros(2, np.int64),
        value=value,
        cost=cost,
        budget=np.array([1.0]),
        target_roi=np.array([0.5]),
        base_gmv=np.zeros(1),
    )

    def menus(bid_value: list[float]) -> TrueMenus:
        return TrueMenus(
            campaign=np.zeros(2, np.int64),
            day=np.zeros(2, np.int64),
            value=value,
            cost=cost,
            click_value=np.array([4.0, 1.0]),
            bid_value=np.array(bid_value),
        )

    assert bench.learned_ceiling(menus([4.0, 1.0]), problem)[0] == pytest.approx(4.0)
    assert bench.learned_ceiling(menus([1.0, 4.0]), problem)[0] == pytest.approx(1.0)
