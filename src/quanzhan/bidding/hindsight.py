"""The hindsight optimum: the most value a campaign could have got on the traffic it met.

Over a period a campaign met ``m`` auctions. In auction ``a`` it could have taken slot ``j`` (a
menu of positions, ``s`` in all) at expected cost ``C[a, j]`` for expected value (GMV)
``V[a, j]``, the competitors' bids held fixed. With daily budget ``B``, target ROI ``R`` and
``G0`` the GMV that counts without ads (the item's organic GMV on the full-site basis, else 0),
the hindsight optimum is the linear programme

    maximise    sum_{a,j} V[a,j] x[a,j]
    subject to  sum_{a,j} C[a,j] x[a,j] <= B                               (budget, dual lambda)
                sum_{a,j} (R C[a,j] - V[a,j]) x[a,j] <= G0                 (ROI, dual mu)
                sum_j x[a,j] <= 1 for every auction a,   x >= 0,
                x[a,j] = 0 where slot j of auction a was unavailable.

``x = 0`` is always feasible and every ``x`` lies in ``[0, 1]``, so the optimum always exists.

A policy is judged by its efficiency: the value it achieved on the same auctions (ad GMV,
without ``G0``) over the hindsight value. The duals are the prices the ideal bidder would have
used: in each auction it takes the slot of most ``(1 + mu) V - (lambda + mu R) C``, if positive,
that is, it values a slot at ``V (1 + mu) / (lambda + mu R)``; a dual-based policy learns
them online.

This HiGHS formulation is the reference: the benchmark solves the same LP for every campaign at
once with ``bidding.menu_lp`` (a sort, no solver), and a property test holds the two together.

``solve_hindsight`` solves the LP exactly with HiGHS (``scipy.optimize.linprog``), over the
available pairs only, with a sparse constraint matrix: 5,000 auctions of 3 slots take about
50 ms. With no budget and no ROI target the LP separates by auction and is answered in closed
form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.optimize import linprog

from quanzhan.errors import QuanzhanError

__all__ = ["HindsightSolution", "HindsightSolverError", "solve_hindsight"]

# Interior point with crossover to an optimal vertex. The dual simplex that method="highs" picks
# needs about one pivot per auction: ten times slower at 5,000 auctions (0.5 s against 0.05 s).
# HiGHS's presolve finds little to remove here and costs about a fifth of the time.
_METHOD = "highs-ipm"
_OPTIONS = {"presolve": False}


class HindsightSolverError(QuanzhanError, RuntimeError):
    """HiGHS reported no optimum for a hindsight LP, which always has one: a solver fault."""


@dataclass(frozen=True, slots=True)
class HindsightSolution:
    """The optimum of one hindsight LP.

    ``value`` and ``spend`` are ``sum V x`` and ``sum C x`` at ``allocation``, the optimal
    ``(m, s)`` ``x`` (0 where a slot was unavailable). ``budget_dual`` is the value one more unit
    of budget would add and ``roi_dual`` the value one more unit of base GMV ``G0`` would add:
    the Lagrange multipliers of the two rows in the maximisation, both ``>= 0``, 0 for a row
    that was dropped because it cannot bind (infinite budget, target ROI 0).
    """

    value: float
    spend: float
    allocation: NDArray[np.float64]
    budget_dual: float
    roi_dual: float


@dataclass(frozen=True, slots=True)
class _Pairs:
    """The available ``(auction, slot)`` pairs, flattened in row-major order."""

    shape: tuple[int, int]
    flat: NDArray[np.intp]  # (n,) index into the flattened (m, s) grid
    auction: NDArray[np.intp]  # (n,) 0..k-1, the rank of the pair's auction among those with pairs
    value: NDArray[np.float64]  # (n,)
    cost: NDArray[np.float64]  # (n,)

    def allocation(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Spread the ``(n,)`` solution back onto the ``(m, s)`` grid."""
        grid = np.zeros(self.shape[0] * self.shape[1], dtype=np.float64)
        grid[self.flat] = x
        return grid.reshape(self.shape)


def solve_hindsight(
    *,
    value: NDArray[np.float64],
    cost: NDArray[np.float64],
    available: NDArray[np.bool_],
    budget: float,
    target_roi: float,
    base_gmv: float = 0.0,
) -> HindsightSolution:
    """Solve the hindsight LP of the module docstring for one campaign.

    ``value`` and ``cost`` are ``(m, s)``, finite and ``>= 0`` where ``available`` (an
    ``(m, s)`` bool array) is true; elsewhere they are ignored and may hold anything, NaN
    included. ``m`` may be 0. ``budget`` is positive, ``np.inf`` for no budget;
    ``target_roi`` and ``base_gmv`` are finite and ``>= 0``.

    Raises ``ValueError`` for invalid input and ``HindsightSolverError`` if HiGHS fails.
    """
    _check_scalars(budget=budget, target_roi=target_roi, base_gmv=base_gmv)
    pairs = _available_pairs(value=value, cost=cost, available=available)
    if pairs.flat.size == 0:
        return _solution(pairs=pairs, x=np.zeros(0), budget_dual=0.0, roi_dual=0.0)
    if math.isinf(budget) and target_roi == 0:
        return _solution(pairs=pairs, x=_best_per_auction(pairs), budget_dual=0.0, roi_dual=0.0)
    return _solve_lp(pairs=pairs, budget=budget, target_roi=target_roi, base_gmv=base_gmv)


def _check_scalars(*, budget: float, target_roi: float, base_gmv: float) -> None:
    """Raise ``ValueError`` unless the budget, target and base GMV are in their domains."""
    if not float(budget) > 0:  # also refuses NaN
        raise ValueError(f"budget must be positive (np.inf for none), got {budget!r}")
    if not (math.isfinite(target_roi) and target_roi >= 0):
        raise ValueError(f"target_roi must be finite and >= 0, got {target_roi!r}")
    if not (math.isfinite(base_gmv) and base_gmv >= 0):
        raise ValueError(f"base_gmv must be finite and >= 0, got {base_gmv!r}")


def _available_pairs(
    *, value: NDArray[np.float64], cost: NDArray[np.float64], available: NDArray[np.bool_]
) -> _Pairs:
    """Validate the ``(m, s)`` arrays and keep the available pairs."""
    mask = np.asarray(available)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(f"available must be a 2-D bool array, got {mask.dtype} {mask.shape}")
    value = np.asarray(value, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    for name, array in (("value", value), ("cost", cost)):
        if array.shape != mask.shape:
            raise ValueError(f"{name} has shape {array.shape}, available has {mask.shape}")
        kept = array[mask]
        if not np.all(np.isfinite(kept) & (kept >= 0)):
            raise ValueError(f"{name} must be finite and >= 0 where available")
    flat = np.flatnonzero(mask)
    _, auction = np.unique(flat // mask.shape[1], return_inverse=True)
    shape = (mask.shape[0], mask.shape[1])
    return _Pairs(shape=shape, flat=flat, auction=auction, value=value[mask], cost=cost[mask])


def _best_per_auction(pairs: _Pairs) -> NDArray[np.float64]:
    """Unconstrained optimum: each auction's most valuable slot, the cheapest of ties, if > 0."""
    order = np.lexsort((pairs.cost, -pairs.value, pairs.auction))
    ranked = pairs.auction[order]
    first = order[np.r_[True, ranked[1:] != ranked[:-1]]]
    x = np.zeros(pairs.flat.size, dtype=np.float64)
    x[first[pairs.value[first] > 0]] = 1.0
    return x


def _solve_lp(
    *, pairs: _Pairs, budget: float, target_roi: float, base_gmv: float
) -> HindsightSolution:
    """Solve the LP with HiGHS; a row that cannot bind is left out and gets a zero dual."""
    rows = _coupling_rows(pairs=pairs, budget=budget, target_roi=target_roi, base_gmv=base_gmv)
    n_auctions = int(pairs.auction[-1]) + 1
    result = linprog(
        -pairs.value,
        A_ub=_constraint_matrix(pairs=pairs, coupling=[row for _, row, _ in rows]),
        b_ub=np.array([rhs for _, _, rhs in rows] + [1.0] * n_auctions, dtype=np.float64),
        bounds=(0, None),
        method=_METHOD,
        options=_OPTIONS,
    )
    if result.status != 0 or result.x is None:
        raise HindsightSolverError(
            f"HiGHS found no optimum (status {result.status}): {result.message}"
        )
    # HiGHS reports d(min objective) / d(b_ub) <= 0; the maximisation's multipliers negate it.
    marginals = result.ineqlin.marginals[: len(rows)]
    duals = {name: max(0.0, -float(m)) for (name, _, _), m in zip(rows, marginals, strict=True)}
    x = np.maximum(np.asarray(result.x, dtype=np.float64), 0.0)
    return _solution(
        pairs=pairs,
        x=x,
        budget_dual=duals.get("budget", 0.0),
        roi_dual=duals.get("roi", 0.0),
    )


def _coupling_rows(
    *, pairs: _Pairs, budget: float, target_roi: float, base_gmv: float
) -> list[tuple[str, NDArray[np.float64], float]]:
    """``(name, row, rhs)`` of the budget and ROI rows that can bind."""
    rows: list[tuple[str, NDArray[np.float64], float]] = []
    if math.isfinite(budget):
        rows.append(("budget", pairs.cost, float(budget)))
    if target_roi > 0:  # at target 0 the row reads -sum V x <= G0: always slack
        rows.append(("roi", target_roi * pairs.cost - pairs.value, float(base_gmv)))
    return rows


def _constraint_matrix(*, pairs: _Pairs, coupling: list[NDArray[np.float64]]) -> sparse.csr_array:
    """Stack the dense coupling rows over the one-row-per-auction incidence matrix."""
    n = pairs.flat.size
    columns = np.arange(n)
    rows = np.concatenate(
        [np.full(n, i) for i in range(len(coupling))] + [pairs.auction + len(coupling)]
    )
    data = np.concatenate([*coupling, np.ones(n)])
    shape = (len(coupling) + int(pairs.auction[-1]) + 1, n)
    matrix = sparse.csr_array((data, (rows, np.tile(columns, len(coupling) + 1))), shape=shape)
    matrix.eliminate_zeros()
    return matrix


def _solution(
    *, pairs: _Pairs, x: NDArray[np.float64], budget_dual: float, roi_dual: float
) -> HindsightSolution:
    """Package ``x`` (over the available pairs) with the value and spend it attains."""
    return HindsightSolution(
        value=float(pairs.value @ x),
        spend=float(pairs.cost @ x),
        allocation=pairs.allocation(x),
        budget_dual=budget_dual,
        roi_dual=roi_dual,
    )
