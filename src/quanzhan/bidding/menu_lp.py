"""The per-campaign LP over slot menus, solved exactly for every campaign at once.

Each row is one auction a campaign took part in, with a menu of slots: slot ``j`` would bring
``value[a, j]`` and cost ``cost[a, j]`` (``nan`` where the slot is not on the page). For each
campaign the LP is

    maximise  sum V x   subject to  sum C x <= B,  sum V x + G0 >= R sum C x,
              sum_j x[a, j] <= 1,  x >= 0.

With a bid multiplier ``k`` an auction is worth ``k V - C``; as ``k`` grows each auction climbs
its menu's upper concave hull, one increment ``(dC, dV)`` at a time, at ``k = dC / dV``. Sorted
by that ratio, the increments' marginal ROI ``dV / dC`` falls, so both constraints cut the
sorted list at one point: the LP optimum takes every increment before the first cut and the cut
one fractionally (the fractional multiple-choice knapsack of Sinha and Zoltners, with a second
ratio constraint that keeps the prefix structure). The ratio there is the optimal uniform bid
multiplier. Everything is a sort and grouped sums: no solver, no loop over campaigns.

A large problem (the hindsight evaluation's millions of auctions) is solved on a shortlist
(``bidding.shortlist``): the rows that can matter below a guessed multiplier, then again on
every row for the campaigns where that shortlist could not settle the answer. The result is the
same, bit for bit, as solving every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding import shortlist

# Rows per group, on average, from which ``grouped_order`` sorts group by group.
_GROUP_BY_GROUP = 256


@dataclass(frozen=True, slots=True)
class MenuProblem:
    """One problem per campaign over its menus, for the LP here and for the GSP response
    (``bidding.response``). Menu rows ``(m,)``: ``group`` names each row's campaign in
    ``0..n-1``; ``value`` and ``cost`` are ``(m, slots)``. Per campaign ``(n,)``: ``budget``,
    ``target_roi`` and ``base_gmv``, value in hand before any row is bought (organic GMV; a
    deficit to make good where negative). ``ValueError`` where the shapes disagree."""

    group: NDArray[np.int64]
    value: NDArray[np.float64]
    cost: NDArray[np.float64]
    budget: NDArray[np.float64]
    target_roi: NDArray[np.float64]
    base_gmv: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.budget)
        if not (len(self.target_roi) == len(self.base_gmv) == n):
            raise ValueError("budget, target_roi and base_gmv need one entry per campaign")
        if self.value.shape != self.cost.shape:
            raise ValueError("value and cost need the same (rows, slots) shape")
        group = self.group
        if len(group) != len(self.value) or (len(group) and (group.min() < 0 or group.max() >= n)):
            raise ValueError("group must give a campaign in 0..n-1 for every menu row")

    def take(self, rows: NDArray[np.bool_]) -> MenuProblem:
        """The same campaigns over the menu rows where ``rows`` is true, in their order."""
        return MenuProblem(
            group=self.group[rows], value=self.value[rows], cost=self.cost[rows],
            budget=self.budget, target_roi=self.target_roi, base_gmv=self.base_gmv,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MenuSolution:
    """Per campaign ``(n,)``: the LP's optimal value and spend, and the bid multiplier that
    reaches it (``inf`` when every increment is taken, 0 when none can be)."""

    value: NDArray[np.float64]
    spend: NDArray[np.float64]
    multiplier: NDArray[np.float64]


def hull_increments(
    value: NDArray[np.float64], cost: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(m, s)`` cost and value increments along each menu's upper concave hull from (0, 0).

    Unavailable slots (``nan``) and slots dominated by a cheaper, better one never appear;
    unused increment places hold 0.
    """
    m, s = value.shape
    usable = np.isfinite(value) & np.isfinite(cost) & (value > 0)
    d_cost = np.zeros((m, s))
    d_value = np.zeros((m, s))
    at_cost = np.zeros(m)
    at_value = np.zeros(m)
    rows = np.arange(m)
    for step in range(s):
        gain = np.where(usable, value - at_value[:, None], 0.0)
        extra = cost - at_cost[:, None]
        climbs = gain > 0
        # The next hull point has the best value per extra cost; a free gain comes first.
        slope = np.full((m, s), -np.inf)
        slope[climbs] = np.where(
            extra[climbs] > 0, gain[climbs] / np.maximum(extra[climbs], 1e-300), np.inf
        )
        best = np.argmax(slope, axis=1)
        ok = climbs[rows, best]
        d_cost[ok, step] = np.maximum(extra[rows, best][ok], 0.0)
        d_value[ok, step] = gain[rows, best][ok]
        at_cost = np.where(ok, np.maximum(cost[rows, best], at_cost), at_cost)
        at_value = np.where(ok, value[rows, best], at_value)
    return d_cost, d_value


def solve_menus(problem: MenuProblem) -> MenuSolution:
    """Solve every campaign's LP."""
    if len(problem.group) < shortlist.FROM_ROWS:
        return solve_all_menus(problem)
    return solve_menus_within(problem, shortlist.guess_bound(problem, solve_all_menus))


def solve_menus_within(problem: MenuProblem, bound: NDArray[np.float64]) -> MenuSolution:
    """``solve_menus`` by way of the rows whose cheapest slot costs at most ``bound`` (per
    campaign) per unit of value; exact whatever the bound.

    Every increment at a ratio up to the bound belongs to such a row (a row's increments climb
    from its cheapest ratio), so up to the bound the shortlist's sorted increments are the whole
    problem's. Where the shortlist's cut falls there, the answer stands; elsewhere the campaign
    is solved again on all its rows."""
    near = shortlisted_rows(problem, bound)
    found = solve_all_menus(problem.take(near))
    n = len(problem.budget)
    left_out = np.bincount(problem.group[~near], minlength=n) > 0
    listed = np.bincount(problem.group[near], minlength=n) > 0
    settled = ~left_out | (listed & (found.multiplier <= bound))
    return shortlist.complete(found, settled, problem, solve_all_menus)


def shortlisted_rows(problem: MenuProblem, bound: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The menu rows with a slot costing at most ``bound`` (per campaign) per unit of value."""
    usable = np.isfinite(problem.value) & np.isfinite(problem.cost) & (problem.value > 0)
    out: NDArray[np.bool_] = (
        shortlist.cheapest_ratio(problem.value, problem.cost, usable) <= bound[problem.group]
    )
    return out


def solve_all_menus(problem: MenuProblem) -> MenuSolution:
    """Solve every campaign's LP over every row."""
    group, value, cost = problem.group, problem.value, problem.cost
    d_cost, d_value = hull_increments(value, cost)
    owner = np.repeat(group, value.shape[1])
    d_cost, d_value = d_cost.ravel(), d_value.ravel()
    keep = d_value > 0
    owner, d_cost, d_value = owner[keep], d_cost[keep], d_value[keep]
    ratio = d_cost / d_value
    order = grouped_order(ratio, owner, len(problem.budget))
    owner, d_cost, d_value, ratio = owner[order], d_cost[order], d_value[order], ratio[order]
    return _cut(owner, d_cost, d_value, ratio, problem.budget, problem.target_roi, problem.base_gmv)


def _cut(
    owner: NDArray[np.int64],
    d_cost: NDArray[np.float64],
    d_value: NDArray[np.float64],
    ratio: NDArray[np.float64],
    budget: NDArray[np.float64],
    target: NDArray[np.float64],
    base: NDArray[np.float64],
) -> MenuSolution:
    """Take each campaign's sorted increments up to the first constraint, that one in part."""
    n = len(budget)
    cum_cost = grouped_cumsum(d_cost, owner)
    cum_value = grouped_cumsum(d_value, owner)
    prev_cost, prev_value = cum_cost - d_cost, cum_value - d_value  # 0 exactly at a first
    # The share of each increment that both constraints allow (1 = all of it).
    by_budget = np.clip((budget[owner] - prev_cost) / np.maximum(d_cost, 1e-300), 0.0, 1.0)
    by_budget[d_cost <= 0] = np.where(
        prev_cost[d_cost <= 0] <= budget[owner][d_cost <= 0], 1.0, 0.0
    )
    slack = prev_value + base[owner] - target[owner] * prev_cost
    drain = target[owner] * d_cost - d_value  # how much ROI slack the increment uses
    by_roi = np.where(
        drain > 0, np.clip(np.maximum(slack, 0.0) / np.maximum(drain, 1e-300), 0.0, 1.0), 1.0
    )
    tolerance = 1e-9 * (prev_value + base[owner] + target[owner] * prev_cost) + 1e-12
    by_roi[slack < -tolerance] = 0.0
    share = np.minimum(by_budget, by_roi)
    cut = share < 1.0
    first_cut = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_cut, owner[cut], np.flatnonzero(cut))
    index = np.arange(len(owner))
    taken = np.where(index < first_cut[owner], 1.0, np.where(index == first_cut[owner], share, 0.0))
    value = np.bincount(owner, weights=taken * d_value, minlength=n).astype(np.float64)
    spend = np.bincount(owner, weights=taken * d_cost, minlength=n).astype(np.float64)
    multiplier = np.full(n, np.inf)
    has_cut = first_cut < len(owner)
    multiplier[has_cut] = ratio[first_cut[has_cut]]
    multiplier[np.bincount(owner, minlength=n) == 0] = 0.0
    return MenuSolution(value=value, spend=spend, multiplier=multiplier)


def grouped_order(key: NDArray[np.float64], owner: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    """The order that groups rows by ``owner`` (in ``0..n-1``) and sorts each group by ``key``,
    ties kept in row order: ``np.lexsort((key, owner))``, quicker where owners fit 16 bits
    (numpy sorts those by radix): groups of a few thousand rows are grouped first and each
    sorted on its own, in cache (a policy's landscape, a tick: 1.8 times quicker than one sort
    of every key), smaller ones by one sort of every key, then by owner."""
    if n > np.iinfo(np.uint16).max + 1:
        return np.lexsort((key, owner))
    if len(key) < _GROUP_BY_GROUP * max(n, 1):
        by_key = np.argsort(key, kind="stable")
        order: NDArray[np.int64] = by_key[
            np.argsort(owner[by_key].astype(np.uint16), kind="stable")
        ]
        return order
    by_owner = np.argsort(owner.astype(np.uint16), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])
    grouped_key = key[by_owner]
    out = by_owner.copy()
    for first, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if end - first > 1:
            out[first:end] = by_owner[first:end][np.argsort(grouped_key[first:end], kind="stable")]
    return out


def grouped_cumsum(values: NDArray[np.float64], owner: NDArray[np.int64]) -> NDArray[np.float64]:
    """Running sums of ``values`` within each run of equal ``owner`` (grouped together).

    Each group is summed on its own: a running sum over all groups less the groups before would
    let one campaign's rounding move another's figures."""
    out = np.empty(len(values), dtype=np.float64)
    bounds = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True])
    for first, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        np.cumsum(values[first:end], out=out[first:end])
    return out
