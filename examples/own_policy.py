"""A bidding policy of your own, run through the simulator against the shipped ones.

The policy below bids a fixed share above break-even, ``k = margin / target``, and stops
bidding for the rest of the day once the plan says the budget should be spent. It implements the
four methods of ``quanzhan.bidding.policy.Policy``; nothing else is needed.

    python examples/own_policy.py            # one tiny day, prints spend and GMV per policy
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.policy import CampaignSpec, Observation
from quanzhan.bidding.registry import DEFAULT_POLICY, make_policy
from quanzhan.sim.config import load_scenario
from quanzhan.sim.run import Simulation


class FixedMargin:
    """Bid ``margin / target`` per unit of predicted value until the day's plan is spent."""

    name = "fixed_margin"
    needs_menus = False

    def __init__(self, *, margin: float = 1.0) -> None:
        self.margin = margin
        self._base = np.zeros(0)
        self._k = np.zeros(0)
        self._budget = np.zeros(0)

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        self._base = self.margin / campaigns.target_roi
        self._k = self._base.copy()
        self._budget = campaigns.budget

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        ahead = observation.spend >= self._budget * observation.planned_share
        self._k = np.where(ahead, 0.0, self._base)

    def start_day(self) -> None:
        self._k = self._base.copy()


def main() -> dict[str, float]:
    config = load_scenario("tiny")
    results = {}
    for policy in (FixedMargin(margin=1.2), make_policy(DEFAULT_POLICY)):
        result = Simulation(config, seed=1, policy=policy).run()
        spend = float(result.ledger.rows().amount.sum())
        gmv = float(result.stats.campaign_totals("gmv_ad").sum())
        results[policy.name] = gmv
        print(f"{policy.name:>14}: spend {spend:10,.2f}  ad GMV {gmv:12,.2f}")
    return results


if __name__ == "__main__":
    main()
