"""End to end on the tiny market: the day loop's accounting invariants and its determinism."""

from __future__ import annotations

from typing import Any

import numpy as np

from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.run import Simulation, SimulationResult
from quanzhan.sim.summary import build_summary


def test_campaign_spend_adds_up_to_ad_revenue(tiny_summary: dict[str, Any]) -> None:
    spend = sum(c["spend"] for c in tiny_summary["campaigns"])
    assert tiny_summary["cmr"] > 0
    assert np.isclose(spend, tiny_summary["cmr"])


def test_gmv_total_is_ad_plus_organic(tiny_summary: dict[str, Any]) -> None:
    s = tiny_summary
    assert s["gmv_ad"] > 0 and s["gmv_organic"] > 0
    assert np.isclose(s["gmv_total"], s["gmv_ad"] + s["gmv_organic"])
    assert np.isclose(sum(s["by_hour"]["gmv_ad"]), s["gmv_ad"])


def test_no_campaign_passes_its_budget_by_more_than_one_click(
    tiny_result: SimulationResult,
) -> None:
    rows = tiny_result.ledger.rows()
    budget = tiny_result.view.campaigns.budget
    spend = np.bincount(rows.campaign, weights=rows.amount, minlength=len(budget))
    biggest = np.zeros(len(budget))
    np.maximum.at(biggest, rows.campaign, rows.amount)
    assert np.all(spend <= budget + biggest + 1e-9)
    assert np.any(spend >= budget)  # the tiny market does run some budgets out


def test_ledger_and_stats_agree_on_spend(tiny_result: SimulationResult) -> None:
    rows = tiny_result.ledger.rows()
    per_campaign = np.bincount(rows.campaign, weights=rows.amount, minlength=len(rows.campaign))
    assert np.allclose(
        tiny_result.stats.campaign_totals("spend"), per_campaign[: tiny_result.stats.n_campaigns]
    )


def test_summary_holds_the_documented_fields(tiny_summary: dict[str, Any]) -> None:
    for key in (
        "scenario", "seed", "policy", "requests", "impressions", "clicks", "orders", "gmv_total",
        "gmv_ad", "gmv_organic", "cmr", "wall_seconds", "prediction", "campaigns",
    ):  # fmt: skip
        assert key in tiny_summary
    assert tiny_summary["policy"] == load_scenario("tiny").engine.policy
    for model in ("pctr", "pcvr"):
        quality = tiny_summary["prediction"][model]
        assert {"auc", "auc_truth", "calibration", "by_surface"} <= set(quality)
        assert set(quality["by_surface"]) == {
            "search", "home_feed", "cart_feed", "post_purchase", "detail", "offsite",
        }  # fmt: skip
    campaign = tiny_summary["campaigns"][0]
    assert {
        "id",
        "item",
        "mode",
        "budget",
        "target_roi",
        "spend",
        "gmv_ad",
        "gmv_total",
        "roi",
    } <= set(campaign)


def test_learned_click_model_beats_chance(tiny_summary: dict[str, Any]) -> None:
    pctr = tiny_summary["prediction"]["pctr"]
    assert pctr["auc"] > 0.6
    assert pctr["auc"] <= pctr["auc_truth"] + 0.02
    assert 0.7 < pctr["calibration"] < 1.4


def test_same_seed_same_summary_to_the_last_digit(tiny_summary: dict[str, Any]) -> None:
    again = Simulation(load_scenario("tiny"), seed=11).run()
    repeat = build_summary(again, wall_seconds=0.0)
    first = dict(tiny_summary, wall_seconds=0.0)
    assert repeat == first


def test_another_seed_gives_another_day(tiny_summary: dict[str, Any]) -> None:
    other = Simulation(load_scenario("tiny"), seed=12).run()
    assert build_summary(other, wall_seconds=0.0)["cmr"] != tiny_summary["cmr"]


def test_every_auction_landscape_is_logged() -> None:
    simulation = Simulation(load_scenario("tiny"), seed=2)
    result = simulation.run()
    landscape = simulation.engine.log.landscape()
    assert len(landscape) == result.stats.platform["requests"].sum()
    assert np.all(np.diff(landscape.ecpm, axis=1) <= 0)  # best first
    assert np.array_equal(landscape.campaign >= 0, landscape.ecpm > 0)
    shown = simulation.engine.log.impressions()
    # Each shown ad appears in its auction's landscape at its slot.
    row = np.searchsorted(landscape.request_id, shown.request_id)
    assert np.array_equal(landscape.campaign[row, shown.slot], shown.campaign)


def test_two_days_reset_daily_budgets() -> None:
    config = load_scenario("tiny")
    two_days = config.model_copy(update={"traffic": config.traffic.model_copy(update={"days": 2})})
    result = Simulation(two_days, seed=3).run()
    rows = result.ledger.rows()
    budget = result.view.campaigns.budget
    assert set(np.unique(rows.day)) == {0, 1}
    for day in (0, 1):
        today = rows.day == day
        spend = np.bincount(rows.campaign[today], weights=rows.amount[today], minlength=len(budget))
        biggest = np.zeros(len(budget))
        np.maximum.at(biggest, rows.campaign[today], rows.amount[today])
        assert np.all(spend <= budget + biggest + 1e-9)
    summary = build_summary(result, wall_seconds=0.0)
    assert len(summary["by_hour"]["hour"]) == 49


def _two_landscape_days() -> ScenarioConfig:
    config = load_scenario("tiny")
    return config.model_copy(
        update={
            "traffic": config.traffic.model_copy(update={"days": 2}),
            "engine": config.engine.model_copy(update={"policy": "landscape"}),
        }
    )


def _asked_for_spent_menus(simulation: Simulation) -> list[bool]:
    """Run ``simulation``, noting at each decision whether it asked for spent campaigns' menus."""
    asked: list[bool] = []
    decide = simulation.engine.decide

    def noting(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("spent_menus", True))
        return decide(*args, **kwargs)

    simulation.engine.decide = noting  # type: ignore[method-assign]
    simulation.run()
    return asked


def test_spent_campaigns_menus_are_left_out_only_where_nobody_reads_them() -> None:
    """The policy plans tomorrow on today's menus, the oracle prices every day's: only a
    run's last day, without the oracle, leaves a spent campaign's menus out."""
    config = _two_landscape_days()
    asked = _asked_for_spent_menus(Simulation(config, seed=3))
    per_day = len(asked) // 2
    assert len(asked) == 2 * per_day > 0
    assert all(asked[:per_day]) and not any(asked[per_day:])
    assert all(_asked_for_spent_menus(Simulation(config, seed=3, menus=True)))


def test_spent_campaigns_menus_on_the_last_day_change_nothing() -> None:
    """The same run with every menu read on its last day too: the same charges, to the cent."""
    config = _two_landscape_days()
    lean = Simulation(config, seed=3).run()
    full = Simulation(config, seed=3)
    full._spent_menus_read = lambda tick: True  # type: ignore[method-assign]
    whole = full.run()
    assert whole.stats.campaign_totals("spend").sum() > 0
    np.testing.assert_array_equal(lean.ledger.rows().amount, whole.ledger.rows().amount)
    np.testing.assert_array_equal(lean.ledger.rows().campaign, whole.ledger.rows().campaign)


def test_models_train_on_a_window_smaller_than_the_log() -> None:
    """More clicks than the training window once crashed the purchase model's refresh. Twice
    the tiny market's traffic: the purchase model leaves its prior at 100 orders."""
    config = load_scenario("tiny")
    small = config.model_copy(
        update={
            "engine": config.engine.model_copy(update={"max_training_rows": 1000}),
            "traffic": config.traffic.model_copy(update={"requests_per_day": 60_000}),
        }
    )
    simulation = Simulation(small, seed=5)
    result = simulation.run()
    assert result.refreshes > 0
    assert simulation.engine.predictor.purchase.bias.tolist() != [np.log(0.01 / 0.99)] * 6


def test_the_order_delays_are_learned_within_the_attribution_window() -> None:
    config = load_scenario("tiny")
    hours = config.engine.attribution_window_hours
    assert Simulation(config, seed=5).observer.delay.window_seconds == hours * 3600


def test_page_views_do_not_depend_on_what_was_shown() -> None:
    """Every policy of a benchmark must meet the same shoppers at the same moments."""
    from quanzhan.sim.market import Market

    traces = []
    for show in (False, True):
        market = Market(load_scenario("tiny"))
        view = market.reset(seed=9)
        users = []
        for _ in range(3):
            batch = market.next_requests()
            assert batch is not None
            item = np.full((len(batch), 1), -1, np.int32)
            if show:
                item[:, 0] = view.campaigns.item[0]
            market.serve(campaign=np.zeros_like(item), item=item)
            users.append(batch.user.copy())
        traces.append(np.concatenate(users))
    assert np.array_equal(traces[0], traces[1])
