from __future__ import annotations

from pathlib import Path

import pytest

from quanzhan.bidding.registry import DEFAULT_POLICY
from quanzhan.engine.config import EngineConfig
from quanzhan.errors import ScenarioError
from quanzhan.sim.config import load_scenario, scenario_names


def test_shipped_scenarios_load_and_meet_their_sizes() -> None:
    assert {"tiny", "default", "large"} <= set(scenario_names())
    default = load_scenario("default")
    assert default.traffic.requests_per_day >= 1_000_000
    assert default.catalog.n_items == 50_000
    assert default.campaigns.n_campaigns == 1_000
    large = load_scenario("large")
    assert large.traffic.requests_per_day >= 10_000_000
    assert large.catalog.n_items >= 1_000_000
    assert large.campaigns.n_campaigns >= 20_000


def test_the_default_policy_steers_unless_a_scenario_names_another() -> None:
    """``simulate`` runs the registry's default policy; the benchmark's scenarios name ``dual``,
    which steers the platform's past day there, and so does ``large``."""
    assert EngineConfig().policy == DEFAULT_POLICY
    assert load_scenario("default").engine.policy == DEFAULT_POLICY
    for name in ("steady", "surge", "shock", "cold", "delay", "large"):
        assert load_scenario(name).engine.policy == "dual", name


def test_unknown_name_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario .nope.*tiny"):
        load_scenario("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("catalog: [unclosed", "not valid YAML"),
        ("- a list\n- not a mapping\n", "must be a mapping"),
        ("name: x\n", "catalog"),
        (
            "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1}\n"
            "users: {n_users: 5}\ntraffic: {requests_per_day: -3}\ncampaigns: {n_campaigns: 1}\n",
            "traffic.requests_per_day",
        ),
        (
            "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1, colour: red}\n"
            "users: {n_users: 5}\ntraffic: {requests_per_day: 3}\ncampaigns: {n_campaigns: 1}\n",
            "catalog.colour",
        ),
        (
            "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1}\n"
            "users: {n_users: 5}\ntraffic: {requests_per_day: 3}\ncampaigns: {n_campaigns: 11}\n",
            "cannot exceed n_items",
        ),
        (
            "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1}\n"
            "users: {n_users: 5}\ntraffic: {requests_per_day: 3, diurnal: [1, 2]}\n"
            "campaigns: {n_campaigns: 1}\n",
            "24",
        ),
    ],
)
def test_malformed_files_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as raised:
        load_scenario(str(path))
    assert "\n" not in str(raised.value)


def test_a_valid_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\ncatalog: {n_items: 100, n_categories: 4, n_merchants: 5}\n"
        "users: {n_users: 50}\ntraffic: {requests_per_day: 500}\ncampaigns: {n_campaigns: 8}\n"
    )
    config = load_scenario(str(path))
    assert config.name == "mine"
    assert config.campaigns.n_campaigns == 8


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ("{requests_per_day: 3, tick_minutes: 7.5}", "whole number of minutes"),
        ("{requests_per_day: 3, tick_minutes: 7}", "whole number of minutes"),
        ("{requests_per_day: 3, surface_mix: {search: .nan}}", "traffic.surface_mix"),
        ("{requests_per_day: 3, surges: [{day: 5, start_hour: 1, end_hour: 2}]}", "after the last"),
    ],
)
def test_traffic_mistakes_are_caught_before_any_work(
    tmp_path: Path, traffic: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1}\n"
        f"users: {{n_users: 5}}\ntraffic: {traffic}\ncampaigns: {{n_campaigns: 1}}\n"
    )
    with pytest.raises(ScenarioError, match=message):
        load_scenario(str(path))


def test_infinite_money_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\ncatalog: {n_items: 10, n_categories: 2, n_merchants: 1}\n"
        "users: {n_users: 5}\ntraffic: {requests_per_day: 3}\n"
        "campaigns: {n_campaigns: 1, budget_range: [1, .inf]}\n"
    )
    with pytest.raises(ScenarioError, match="budget_range"):
        load_scenario(str(path))
