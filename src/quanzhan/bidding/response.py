"""How a campaign's purchases answer its bid multiplier in a generalised second-price auction.

A campaign bids ``k x value per click``. In one auction, slot ``j`` would bring ``V[a, j]`` and
cost ``C[a, j]`` (``bidding.menu_lp`` calls this a menu); the campaign takes slot ``j`` once
``k >= C[a, j] / V[a, j]``, the price per click over the value per click, and under GSP it takes
the *top-most* slot it can afford, not the one the LP's concave hull would choose. So as ``k``
rises, each auction moves up its slots in steps: at ``k = C[a, j] / V[a, j]`` it goes from its
current slot to ``j``, adding ``(dC, dV)``. Those steps are the auction's *bid response*; summed
over a campaign's auctions they give spend and value as functions of ``k``.

The hindsight optimum (``bidding.menu_lp``) may take a lower slot where the step up is dear;
no bid does that under GSP, so the LP is an upper bound a uniform multiplier can only approach
(on ``steady`` a campaign's best uniform ``k`` in hindsight reaches a median 0.94 of it). A
policy plans with the response instead: ``solve_response`` finds each campaign's largest ``k``
whose response keeps spend within the budget and ROI at target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding import shortlist
from quanzhan.bidding.menu_lp import MenuProblem, grouped_cumsum, grouped_order, solve_all_menus


@dataclass(frozen=True, slots=True)
class Response:
    """Per campaign ``(n,)``: the largest affordable multiplier ``low`` (0 where no step is
    affordable, and where the only affordable steps cost nothing: ``affordable`` tells the two
    apart) and the next step's ``high`` (``inf`` where every step is affordable, the first step
    where none is): any ``k`` in ``[low, high)`` buys the same (past 0, for free steps); and the
    ``value`` and ``spend`` bought there."""

    low: NDArray[np.float64]
    high: NDArray[np.float64]
    value: NDArray[np.float64]
    spend: NDArray[np.float64]
    affordable: NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Steps:
    """Flat ``(p,)`` steps of the menus' bid responses: menu ``row``, the multiplier ``at``
    which it happens, and the cost and value it adds."""

    row: NDArray[np.int64]
    at: NDArray[np.float64]
    d_cost: NDArray[np.float64]
    d_value: NDArray[np.float64]


def _thresholds(
    value: NDArray[np.float64], cost: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which slots can be taken, and the multiplier each is taken at (``inf`` where none)."""
    usable = np.isfinite(value) & np.isfinite(cost) & (value > 0) & (cost >= 0)
    threshold = np.full(value.shape, np.inf)
    threshold[usable] = cost[usable] / value[usable]
    return usable, threshold


def response_steps(
    value: NDArray[np.float64],
    cost: NDArray[np.float64],
    threshold: NDArray[np.float64] | None = None,
) -> Steps:
    """The steps of each ``(m, s)`` menu row (slot 0 on top; ``nan`` where absent).

    ``threshold`` ``(m, s)``: the multiplier each slot is taken at, where the bid is not
    ``k x value per click`` itself (the engine bids on its predicted value, and the truth says
    what the slots it takes bring); by default ``cost / value``."""
    m, s = value.shape
    usable, own = _thresholds(value, cost)
    if threshold is None:
        threshold = own
    else:
        usable &= np.isfinite(threshold) & (threshold >= 0)
        threshold = np.where(usable, threshold, np.inf)
    # A slot is ever taken only if every slot above it costs more per unit of value.
    above = np.full(m, np.inf)
    reachable = np.zeros((m, s), dtype=bool)
    for j in range(s):
        reachable[:, j] = usable[:, j] & (threshold[:, j] < above)
        above = np.minimum(above, threshold[:, j])
    rows, at, d_cost, d_value = [], [], [], []
    held_cost, held_value = np.zeros(m), np.zeros(m)
    for j in range(s - 1, -1, -1):  # cheapest steps first: the lowest slots
        r = np.flatnonzero(reachable[:, j])
        rows.append(r)
        at.append(threshold[r, j])
        d_cost.append(cost[r, j] - held_cost[r])
        d_value.append(value[r, j] - held_value[r])
        held_cost[r], held_value[r] = cost[r, j], value[r, j]
    return Steps(
        row=np.concatenate(rows).astype(np.int64),
        at=np.concatenate(at),
        d_cost=np.concatenate(d_cost),
        d_value=np.concatenate(d_value),
    )


def taken_slot(
    multiplier: NDArray[np.float64], value: NDArray[np.float64], cost: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Cost and value of the slot each row takes at its ``(m,)`` multiplier (0 where none)."""
    usable = np.isfinite(value) & np.isfinite(cost) & (value > 0)
    affordable = usable & (multiplier[:, None] * np.where(usable, value, 0.0) >= cost)
    slot = np.argmax(affordable, axis=1)
    rows = np.arange(len(slot))
    won = affordable[rows, slot]
    return np.where(won, cost[rows, slot], 0.0), np.where(won, value[rows, slot], 0.0)


def solve_response(problem: MenuProblem) -> Response:
    """Each campaign's largest multiplier whose response spends at most ``budget`` and keeps
    ``value + base_gmv >= target_roi x spend`` (``base_gmv`` may be negative: a deficit to make
    good)."""
    if len(problem.group) < shortlist.FROM_ROWS:
        return respond_all(problem)
    return solve_response_within(problem, shortlist.guess_bound(problem, solve_all_menus))


def solve_response_within(problem: MenuProblem, bound: NDArray[np.float64]) -> Response:
    """``solve_response`` by way of the rows with a step at or under ``bound`` (per campaign);
    exact whatever the bound.

    Up to the bound the shortlist's steps, in order, are the whole problem's. A campaign's
    answer stands where the step after its chosen one is within the bound and no state past
    the bound can be feasible (``_nothing_past``); elsewhere it is solved again on all its
    rows."""
    usable, threshold = _thresholds(problem.value, problem.cost)
    near = threshold.min(axis=1, initial=np.inf) <= bound[problem.group]
    found = respond_all(problem.take(near))
    left_out = np.bincount(problem.group[~near], minlength=len(problem.budget)) > 0
    settled = ~left_out | ((found.high <= bound) & _nothing_past(problem, usable, threshold, bound))
    return shortlist.complete(found, settled, problem, respond_all)


def _nothing_past(
    problem: MenuProblem,
    usable: NDArray[np.bool_],
    threshold: NDArray[np.float64],
    bound: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Per campaign, whether every state of its auctions past ``bound`` breaks the budget or
    the ROI target.

    Past the bound an auction holds the slot it held at the bound or one above it (or, holding
    none, none or any). Summing each auction's most ROI slack and least cost over those gives
    what any later state could at best reach; a margin far above rounding keeps it safe."""
    group, value, cost = problem.group, problem.value, problem.cost
    s, n = value.shape[1], len(problem.budget)
    taken = usable & (threshold <= bound[group][:, None])
    holds = taken.any(axis=1)
    held = np.where(holds, np.argmax(taken, axis=1), s)
    later = usable & (np.arange(s)[None, :] <= held[:, None])
    target = problem.target_roi[group][:, None]
    slack = np.where(later, value - target * cost, -np.inf).max(axis=1, initial=-np.inf)
    least = np.where(later, cost, np.inf).min(axis=1, initial=np.inf)
    size = np.where(later, value + target * cost, 0.0).max(axis=1, initial=0.0)
    slack = np.where(holds, slack, np.maximum(slack, 0.0))  # holding none may stay so
    least = np.where(holds, least, 0.0)
    most_slack = problem.base_gmv + np.bincount(group, weights=slack, minlength=n)
    least_spend = np.bincount(group, weights=least, minlength=n)
    scale = np.abs(problem.base_gmv) + np.bincount(group, weights=size, minlength=n)
    over_budget = least_spend > problem.budget * (1 + 1e-9)
    short_of_roi = most_slack < -1e-9 * scale
    out: NDArray[np.bool_] = over_budget | short_of_roi
    return out


def respond_all(problem: MenuProblem) -> Response:
    """``solve_response`` over every row."""
    curve = ResponseCurve.of(problem.group, problem.value, problem.cost, len(problem.budget))
    return curve.answer(
        budget=problem.budget, target_roi=problem.target_roi, base_gmv=problem.base_gmv
    )


@dataclass(frozen=True, slots=True)
class ResponseCurve:
    """Every campaign's spend and value as functions of its multiplier: the steps of its menus
    in order of the multiplier they happen at, with running sums. Built once, it answers for
    any budgets, targets and base GMV (``answer``); a policy that asks twice of the same
    landscape sorts it once."""

    n: int
    owner: NDArray[np.int64]  # (p,) campaign of each step, grouped, in order of ``at``
    at: NDArray[np.float64]
    spend: NDArray[np.float64]  # running sums within each campaign
    bought: NDArray[np.float64]
    start: NDArray[np.int64]  # (n,) first step of each campaign
    count: NDArray[np.int64]

    @classmethod
    def of(
        cls,
        group: NDArray[np.int64],
        value: NDArray[np.float64],
        cost: NDArray[np.float64],
        n: int,
        threshold: NDArray[np.float64] | None = None,
    ) -> ResponseCurve:
        """The curves of ``n`` campaigns over menu rows ``(m, s)`` owned by ``group``, each
        slot taken at ``threshold`` where given (``response_steps``)."""
        steps = response_steps(value, cost, threshold)
        owner = group[steps.row]
        order = grouped_order(steps.at, owner, n)
        return cls.ordered(
            owner[order], steps.at[order], steps.d_cost[order], steps.d_value[order], n
        )

    @classmethod
    def ordered(
        cls,
        owner: NDArray[np.int64],
        at: NDArray[np.float64],
        d_cost: NDArray[np.float64],
        d_value: NDArray[np.float64],
        n: int,
    ) -> ResponseCurve:
        """The curves of ``n`` campaigns from their steps already grouped by ``owner`` and in
        order of ``at`` within each (``bidding.step_book`` keeps them so)."""
        return cls(
            n=n,
            owner=owner,
            at=at,
            spend=grouped_cumsum(d_cost, owner),
            bought=grouped_cumsum(d_value, owner),
            start=np.searchsorted(owner, np.arange(n)),
            count=np.bincount(owner, minlength=n),
        )

    def answer(
        self,
        *,
        budget: NDArray[np.float64],
        target_roi: NDArray[np.float64],
        base_gmv: NDArray[np.float64],
    ) -> Response:
        """Each campaign's largest multiplier within ``budget`` that keeps ``value + base_gmv
        >= target_roi x spend``."""
        n, owner, at, spend, bought = self.n, self.owner, self.at, self.spend, self.bought
        if not (len(budget) == len(target_roi) == len(base_gmv) == n):
            raise ValueError("budget, target_roi and base_gmv need one entry per campaign")
        scale = np.abs(base_gmv[owner]) + target_roi[owner] * spend + bought
        feasible = (spend <= budget[owner] * (1 + 1e-12)) & (
            bought + base_gmv[owner] - target_roi[owner] * spend >= -1e-12 * scale
        )
        # A multiplier at a step buys every step tied with it: judge only a tie group's last.
        feasible &= np.r_[(owner[1:] != owner[:-1]) | (at[1:] != at[:-1]), True]
        last = np.full(n, -1)
        np.maximum.at(last, owner[feasible], np.flatnonzero(feasible))
        has = last >= 0
        low, high = np.zeros(n), np.full(n, np.inf)
        value_at, spend_at = np.zeros(n), np.zeros(n)
        low[has], value_at[has], spend_at[has] = at[last[has]], bought[last[has]], spend[last[has]]
        # The next step above the chosen one (the next in order: ties were judged as one), or
        # the first step where none is affordable.
        after = np.where(has, last + 1, self.start)
        follows = (self.count > 0) & (after < self.start + self.count)
        high[follows] = at[after[follows]]
        return Response(low=low, high=high, value=value_at, spend=spend_at, affordable=has)
