"""The bidding benchmark run policy by policy or several at once: the same figures either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quanzhan.errors import ConfigError
from quanzhan.sim.bench import bench_bidding
from quanzhan.sim.config import ScenarioConfig, load_scenario


def _small(tmp_path: Path) -> ScenarioConfig:
    path = tmp_path / "two_days.yaml"
    path.write_text(
        "name: two_days\ncatalog: {n_items: 2000, n_categories: 20, n_merchants: 300}\n"
        "users: {n_users: 5000}\ntraffic: {requests_per_day: 8000, days: 2, tick_minutes: 60}\n"
        "campaigns: {n_campaigns: 40}\n"
        "engine: {candidates: 16, first_refresh_hours: 6, refresh_hours: 12}\n"
    )
    return load_scenario(str(path))


def test_policies_in_worker_processes_give_the_figures_of_one_after_another(
    tmp_path: Path,
) -> None:
    policies = ("dual", "manual_cpc")
    one, found_one = bench_bidding(_small(tmp_path), seed=4, policies=policies, jobs=1)
    seen: list[tuple[str, int, int]] = []
    two, found_two = bench_bidding(
        _small(tmp_path),
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


def test_no_jobs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jobs"):
        bench_bidding(_small(tmp_path), seed=4, policies=("dual",), jobs=0)
