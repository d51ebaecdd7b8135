"""Shared fixtures: one tiny simulated day, run once per session and reused; a small two-day
scenario file for the benchmark's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quanzhan.sim.config import load_scenario
from quanzhan.sim.run import Simulation, SimulationResult
from quanzhan.sim.summary import build_summary


@pytest.fixture(scope="session")
def tiny_result() -> SimulationResult:
    return Simulation(load_scenario("tiny"), seed=11).run()


@pytest.fixture(scope="session")
def tiny_summary(tiny_result: SimulationResult) -> dict[str, Any]:
    return build_summary(tiny_result, wall_seconds=tiny_result.wall_seconds)


@pytest.fixture
def two_day_scenario(tmp_path: Path) -> Path:
    """A scenario file small enough for a whole benchmark in seconds: two days, 40 campaigns."""
    path = tmp_path / "two_days.yaml"
    path.write_text(
        "name: two_days\ncatalog: {n_items: 2000, n_categories: 20, n_merchants: 300}\n"
        "users: {n_users: 5000}\ntraffic: {requests_per_day: 8000, days: 2, tick_minutes: 60}\n"
        "campaigns: {n_campaigns: 40}\n"
        "engine: {candidates: 16, first_refresh_hours: 6, refresh_hours: 12}\n"
    )
    return path
