"""The platform's past: days played before the run, whose log and models carry over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quanzhan.bidding.delay import DelayModel
from quanzhan.bidding.dual import DualPacing
from quanzhan.bidding.policy import MenuView
from quanzhan.bidding.value_prior import NO_ERROR
from quanzhan.domain import CampaignMode
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.market import Market
from quanzhan.sim.past import past_config, play_past
from quanzhan.sim.run import Simulation


def _scenario(tmp_path: Path, warmup_days: int = 1) -> ScenarioConfig:
    path = tmp_path / "with_past.yaml"
    path.write_text(
        "name: with_past\ncatalog: {n_items: 2000, n_categories: 20, n_merchants: 300}\n"
        "users: {n_users: 5000}\n"
        f"traffic: {{requests_per_day: 8000, days: 2, tick_minutes: 60, warmup_days: {warmup_days},"
        " surges: [{day: 0, start_hour: 10, end_hour: 12, traffic_factor: 3.0}]}\n"
        "campaigns: {n_campaigns: 40, new_item_share: 0.25,"
        " entrants: [{count: 3, day: 0, hour: 6, budget: 500, target_roi: 1.5}]}\n"
        "engine: {candidates: 16, first_refresh_hours: 6, refresh_hours: 12}\n"
    )
    return load_scenario(str(path))


def test_no_warmup_days_no_past(tmp_path: Path) -> None:
    assert play_past(_scenario(tmp_path, warmup_days=0), seed=1) is None


def test_the_past_ends_where_the_run_begins(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    past = play_past(config, seed=1)
    assert past is not None
    shown = past.impressions
    assert len(shown) > 0
    assert shown.time.min() >= -86_400.0 and shown.time.max() < 0.0
    clicked = shown.click_id >= 0
    assert np.all(shown.click_time[clicked] < 0.0) and np.all(np.isnan(shown.click_time[~clicked]))
    # Ids of the past stay clear of the run's, which count from zero.
    assert np.all(shown.request_id < 0) and np.all(shown.click_id[clicked] >= 1 << 40)
    assert np.isin(past.ordered_clicks, shown.click_id[clicked]).all()
    # Orders still to come after the start belong to past clicks and come in time order.
    assert np.all(past.late_time > 0.0) and np.all(np.diff(past.late_time) >= 0.0)
    assert np.isin(past.late_click, shown.click_id[clicked]).all()
    # Each late order names the campaign and time of its click as the log has them.
    by_id = np.argsort(shown.click_id[clicked])
    row = by_id[np.searchsorted(shown.click_id[clicked], past.late_click, sorter=by_id)]
    np.testing.assert_array_equal(past.late_campaign, shown.campaign[clicked][row])
    np.testing.assert_array_equal(past.late_click_time, shown.click_time[clicked][row])
    # What the platform learned across campaigns, on the run's clock too.
    evidence = past.evidence
    assert evidence.end <= 0.0 and np.all(evidence.order_time <= 0.0)
    assert np.all(evidence.click_time <= evidence.order_time)
    n = len(Market(config).reset(seed=1).campaigns)
    assert evidence.realized.shape == evidence.due.shape == (n,)
    assert evidence.realized.sum() > 0 and evidence.due.sum() > 0


def test_the_past_shows_only_the_campaigns_running_then(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    past = play_past(config, seed=2)
    assert past is not None
    market = Market(config)
    view = market.reset(seed=2)
    n_regular = config.campaigns.n_campaigns
    new = round(config.campaigns.new_item_share * n_regular)
    shown = np.unique(past.impressions.campaign)
    assert shown.min() >= new  # no campaign of an item new to the platform
    assert shown.max() < n_regular  # no entrant
    assert len(view.campaigns) == n_regular + 3


def test_the_past_is_the_same_market_with_other_page_views(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    run, before = Market(config), Market(past_config(config))
    view, past_view = run.reset(seed=3), before.reset(seed=3, past=True)
    np.testing.assert_array_equal(view.items.price, past_view.items.price)
    np.testing.assert_array_equal(view.campaigns.item, past_view.campaigns.item)
    np.testing.assert_array_equal(view.history_item, past_view.history_item)
    first, first_before = run.next_requests(), before.next_requests()
    assert first is not None and first_before is not None
    assert not np.array_equal(first.user, first_before.user)
    # No surge in the past: its days are ordinary.
    assert past_config(config).traffic.surges == ()
    assert past_config(config).traffic.days == config.traffic.warmup_days


def test_a_run_with_a_past_starts_trained_and_hears_its_late_orders(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    past = play_past(config, seed=4)
    assert past is not None
    simulation = Simulation(config, seed=4, recall=False, past=past)
    assert simulation.engine.predictor.refreshes == 1  # trained on the past before any page
    assert len(simulation.engine.log) == len(past.impressions)
    # The platform's value prior and order delays carry over with its models.
    assert simulation.observer.value_prior != NO_ERROR
    assert simulation.observer.delay.median_seconds != DelayModel().median_seconds
    simulation.run()
    ordered = simulation.engine.log.ordered_clicks()
    assert np.isin(past.late_click, ordered).all()
    assert np.isin(past.ordered_clicks, ordered).all()
    # The observer heard the late orders too, for their delays.
    assert np.isin(past.late_time, simulation.observer.evidence().order_time).all()


def test_a_past_played_apart_gives_the_run_it_would_play_itself(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    given = Simulation(config, seed=5, recall=False, past=play_past(config, seed=5)).run()
    own = Simulation(config, seed=5, recall=False).run()
    np.testing.assert_array_equal(given.oracle.value, own.oracle.value)
    assert given.ledger.rows().amount.sum() == own.ledger.rows().amount.sum()


def test_the_past_leaves_its_last_days_landscape_for_a_policy_that_asks(tmp_path: Path) -> None:
    config = _scenario(tmp_path, warmup_days=2)
    before = Simulation(past_config(config), seed=6, recall=False, before_start=True)
    weight: dict[int, float] = {}

    def sample_weight(done: int, total: int) -> None:
        if before.landscape is not None:
            weight[done] = float(before.landscape.view().weight.sum())

    before.play(sample_weight)
    half = max(weight) // 2
    # The sample starts again at midnight: after the second day's first tick it weighs that
    # tick, not a day and a tick; by the evening about a day again.
    assert weight[half + 1] < 0.1 * weight[half]
    assert 0.6 * weight[half] < weight[2 * half] < 2.0 * weight[half]
    past = play_past(config, seed=6)
    assert past is not None and past.landscape is not None
    landscape = past.landscape
    assert landscape.weight is not None and np.all(landscape.weight >= 1.0)
    assert landscape.value.shape == landscape.cost.shape
    assert len(landscape.value) == len(landscape.campaign) > 0
    view = Market(config).reset(seed=6)
    steered = np.flatnonzero(view.campaigns.mode == CampaignMode.FULL_SITE)
    assert np.isin(landscape.campaign, steered).all()

    heard: list[MenuView] = []

    class Recalling(DualPacing):
        def recall_day(self, menus: MenuView) -> None:
            heard.append(menus)

    Simulation(config, seed=6, recall=False, past=past, policy=Recalling())
    assert len(heard) == 1 and heard[0] is landscape


@pytest.mark.parametrize("name", ["steady", "surge", "shock", "cold", "delay"])
def test_benchmark_scenarios_start_from_a_day_of_past(name: str) -> None:
    assert load_scenario(name).traffic.warmup_days == 1
