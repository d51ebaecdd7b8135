"""What `bench bidding` runs: manual-CPC campaigns do not depend on the policy stepped beside
them, so the benchmark may step the cheapest one."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from quanzhan.domain import CampaignMode
from quanzhan.sim import bench
from quanzhan.sim.config import load_scenario


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
