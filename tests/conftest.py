"""Shared fixtures: one tiny simulated day, run once per session and reused."""

from __future__ import annotations

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
