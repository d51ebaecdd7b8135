"""A growing menu sample's bid-response steps, kept in order as its rows arrive.

A policy that plans over the day's landscape at every tick (``bidding.landscape``) needs each
campaign's steps (``bidding.response``) in order of the multiplier they happen at. Sorting the
whole day's steps again at every tick costs ``O(N log N)`` a tick over a sample that grows all
day. The book instead sorts each tick's new steps alone and merges them in. What a plan changes
at each tick, each row's weight and each campaign's calibrations, scales a campaign's steps by
one factor per row and one per campaign, which moves no step past another of the same campaign:
``OrderedSteps.scaled`` applies them without sorting anything again.

Order is by campaign, then multiplier, kept exact by sorting on the complex number
``campaign + 1j * multiplier`` (numpy orders complex numbers by real part, then imaginary), and
merged by a stable sort, which finds the two runs and merges them in linear time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.response import response_steps


@dataclass(frozen=True, slots=True)
class OrderedSteps:
    """Steps ``(p,)`` grouped by ``owner`` and in order of ``at`` within each, ties in the order
    they arrived: the menu ``row`` each comes from, the multiplier ``at`` which it happens, and
    the cost and value it adds."""

    owner: NDArray[np.int64]
    at: NDArray[np.float64]
    d_cost: NDArray[np.float64]
    d_value: NDArray[np.float64]
    row: NDArray[np.int64]

    @staticmethod
    def empty() -> OrderedSteps:
        none = np.zeros(0)
        return OrderedSteps(np.zeros(0, np.int64), none, none, none, np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.owner)

    def take(self, index: NDArray[np.int64] | NDArray[np.bool_]) -> OrderedSteps:
        return OrderedSteps(
            self.owner[index], self.at[index], self.d_cost[index], self.d_value[index],
            self.row[index],
        )  # fmt: skip

    def scaled(
        self,
        *,
        row_weight: NDArray[np.float64],
        value_factor: NDArray[np.float64],
        cost_factor: NDArray[np.float64],
    ) -> OrderedSteps:
        """The steps of the same rows with each row's value times ``row_weight[row] x
        value_factor[campaign]`` and its cost times ``row_weight[row] x cost_factor[campaign]``,
        still in order. A row whose value or cost comes to nothing (or to no number) has no
        steps: its slots are not worth taking, or cost nothing for nothing."""
        weight = row_weight[self.row]
        value = weight * value_factor[self.owner]
        cost = weight * cost_factor[self.owner]
        keep = (value > 0) & (cost > 0) & np.isfinite(value) & np.isfinite(cost)
        ratio = np.divide(
            cost_factor, value_factor, out=np.zeros(len(value_factor)), where=value_factor > 0
        )
        owner = self.owner[keep]
        return OrderedSteps(
            owner=owner,
            at=self.at[keep] * ratio[owner],
            d_cost=self.d_cost[keep] * cost[keep],
            d_value=self.d_value[keep] * value[keep],
            row=self.row[keep],
        )


def merge(first: OrderedSteps, second: OrderedSteps) -> OrderedSteps:
    """Both sets of steps in one order; where a step of each is tied, ``first``'s comes first."""
    if not len(second):
        return first
    if not len(first):
        return second
    joined = OrderedSteps(
        owner=np.concatenate([first.owner, second.owner]),
        at=np.concatenate([first.at, second.at]),
        d_cost=np.concatenate([first.d_cost, second.d_cost]),
        d_value=np.concatenate([first.d_value, second.d_value]),
        row=np.concatenate([first.row, second.row]),
    )
    return joined.take(_order(joined))


def _order(steps: OrderedSteps) -> NDArray[np.int64]:
    """The stable order of ``steps`` by campaign, then multiplier: by the multiplier alone where
    they are all one campaign's (the service steers each campaign with a policy of its own),
    which sorts in half the time."""
    owner = steps.owner
    if len(owner) and (owner == owner[0]).all():
        return np.argsort(steps.at, kind="stable")
    key: NDArray[np.complex128] = owner + 1j * steps.at
    return np.argsort(key, kind="stable")


class StepBook:
    """The steps of every menu row added so far, in order; rows are numbered as they arrive."""

    def __init__(self) -> None:
        self.rows = 0
        self.steps = OrderedSteps.empty()

    def add(
        self,
        campaign: NDArray[np.int64],
        value: NDArray[np.float64],
        cost: NDArray[np.float64],
    ) -> None:
        """Add ``(m, s)`` menu rows (``bidding.response``'s ``response_steps``) owned by
        ``campaign``, numbered from ``rows`` on."""
        found = response_steps(value, cost)
        owner = np.asarray(campaign, np.int64)[found.row]
        new = OrderedSteps(owner, found.at, found.d_cost, found.d_value, found.row + self.rows)
        self.steps = merge(self.steps, new.take(_order(new)))
        self.rows += len(campaign)
