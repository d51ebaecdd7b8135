"""The scenario's announced surges reach the bidding as the platform's promotion calendar."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from quanzhan.bidding.calendar import Promotion
from quanzhan.bidding.dual import DualPacing
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.run import Simulation
from quanzhan.sim.traffic import promotion_calendar


def _scenario(tmp_path: Path, surges: str) -> ScenarioConfig:
    path = tmp_path / "promotions.yaml"
    path.write_text(
        "name: promotions\ncatalog: {n_items: 1000, n_categories: 10, n_merchants: 100}\n"
        "users: {n_users: 2000}\n"
        f"traffic: {{requests_per_day: 2000, days: 2, tick_minutes: 60, surges: {surges}}}\n"
        "campaigns: {n_campaigns: 20}\nengine: {candidates: 8}\n"
    )
    return load_scenario(str(path))


class _Listening(DualPacing):
    def __init__(self) -> None:
        super().__init__()
        self.heard: list[tuple[Promotion, ...]] = []

    def expect_promotions(self, calendar: Sequence[Promotion]) -> None:
        self.heard.append(tuple(calendar))


def test_the_announced_surges_are_handed_to_the_policy_and_the_forecast(tmp_path: Path) -> None:
    config = _scenario(
        tmp_path,
        "[{day: 1, start_hour: 10, end_hour: 14, traffic_factor: 3.0},"
        " {day: 1, start_hour: 19, end_hour: 23, traffic_factor: 2.0, announced: false}]",
    )
    policy = _Listening()
    simulation = Simulation(config, seed=2, recall=False, policy=policy)
    expected = (Promotion(day=1, start=10 / 24, end=14 / 24, traffic_factor=3.0),)
    assert promotion_calendar(config.traffic) == expected
    assert policy.heard == [expected]
    assert simulation.forecast._calendar == expected


def test_a_scenario_without_announced_surges_hands_over_no_calendar(tmp_path: Path) -> None:
    for surges in ("[]", "[{day: 0, start_hour: 1, end_hour: 2, announced: false}]"):
        policy = _Listening()
        Simulation(_scenario(tmp_path, surges), seed=2, recall=False, policy=policy)
        assert policy.heard == []


def test_the_promotion_scenario_announces_its_windows() -> None:
    calendar = promotion_calendar(load_scenario("surge").traffic)
    assert [(p.day, p.start * 24, p.end * 24) for p in calendar] == [(1, 10, 14), (1, 19, 23)]
