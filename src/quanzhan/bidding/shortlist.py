"""Solving a large menu problem on the rows that can matter, with the same answer.

In the hindsight evaluation most of a campaign's auctions are ones it would win only at a
multiplier far above its best: on ``steady`` (seed 1, ``dual``) 8% of the LP's increments lie at
or under the campaign's optimal multiplier, and both solvers sort every one. So a large problem
is solved in three passes:

1. a guess of each campaign's multiplier, from the LP over every ``_STRIDE``-th row standing
   for the rows between (``guess_bound``), times ``_HEADROOM``;
2. the solver over the rows whose cheapest slot is within that bound (``cheapest_ratio``), with
   a test per campaign of whether what was left out could change its answer;
3. the solver again over every row of the campaigns it could (``complete``).

A wrong guess costs time, never accuracy: each solver's test is exact (see
``menu_lp.solve_menus_within`` and ``response.solve_response_within``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from quanzhan.bidding.menu_lp import MenuProblem, MenuSolution

FROM_ROWS = 200_000  # below this many menu rows, solving them all is cheaper than guessing
_STRIDE = 16
_HEADROOM = 2.0

Solution = TypeVar("Solution")


def cheapest_ratio(
    value: NDArray[np.float64], cost: NDArray[np.float64], usable: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """``(m,)`` the least cost per unit of value over each row's ``usable`` slots (``inf``
    where none is)."""
    ratio = np.full(value.shape, np.inf)
    np.divide(cost, value, out=ratio, where=usable)
    out: NDArray[np.float64] = ratio.min(axis=1, initial=np.inf)
    return out


def guess_bound(
    problem: MenuProblem, solve_lp: Callable[[MenuProblem], MenuSolution]
) -> NDArray[np.float64]:
    """Per campaign, a multiplier its answer likely lies under: ``_HEADROOM`` times the LP's
    over a strided sample of its rows, each standing for ``_STRIDE``; ``inf`` where the sample
    cannot say (no rows sampled, or every increment taken)."""
    sample = np.zeros(len(problem.group), dtype=bool)
    sample[::_STRIDE] = True
    part = problem.take(sample)
    scaled = replace(part, value=part.value * _STRIDE, cost=part.cost * _STRIDE)
    multiplier = solve_lp(scaled).multiplier
    seen = np.bincount(part.group, minlength=len(problem.budget)) > 0
    out: NDArray[np.float64] = np.where(seen, multiplier * _HEADROOM, np.inf)
    return out


def complete(
    found: Solution,
    settled: NDArray[np.bool_],
    problem: MenuProblem,
    solve_all: Callable[[MenuProblem], Solution],
) -> Solution:
    """``found`` where ``settled``, and the other campaigns solved again on all their rows."""
    if settled.all():
        return found
    again = solve_all(problem.take(~settled[problem.group]))
    merged: dict[str, Any] = {
        f.name: np.where(settled, getattr(found, f.name), getattr(again, f.name))
        for f in fields(found)  # type: ignore[arg-type]
    }
    return type(found)(**merged)
