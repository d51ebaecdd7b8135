"""Vectorised multi-slot generalised second-price (GSP) auction over dense candidate matrices.

Shapes: ``n`` requests, ``c`` candidate columns, ``S`` slots (``max_slots``).

Inputs, all keyword-only and never mutated:

- ``bid`` ``(n, c)`` float: bid per click; ``pctr`` ``(n, c)`` float: click probability at the
  first position; ``item`` ``(n, c)`` int: the item each candidate would show; ``valid``
  ``(n, c)`` bool: ``False`` for padding.
- ``n_slots`` ``(n,)`` int ``>= 0``; ``reserve`` ``(n,)`` float ``>= 0``: reserve price per click;
  ``relevance_floor`` ``(n,)`` float: minimum ``pctr``.
- ``max_slots``: ``S``, at least ``max(n_slots)``; defaults to ``max(n_slots)`` (0 when ``n == 0``).

Rules, per request:

1. A candidate is eligible when it is valid, its bid is finite, ``> 0`` and ``>= reserve``, and
   its pctr is finite, ``> 0`` and ``>= relevance_floor``.
2. No item twice on a page: of the eligible candidates sharing an item only the one with the
   highest eCPM (``bid * pctr``) stays eligible; ties go to the lower column.
3. Eligible candidates are ranked by eCPM descending, ties to the lower column.
4. The first ``min(n_slots, #eligible)`` of the ranking fill slots ``0, 1, ...``; other slots
   hold ``-1``.
5. The winner of slot ``j`` pays per click
   ``min(bid, max(reserve, ecpm[rank j + 1] / pctr))``, or ``reserve`` when nobody is ranked
   ``j + 1``; rank ``j + 1`` counts whether or not it won a slot. Prices lie in
   ``[reserve, bid]``; the ``min`` with the bid only corrects floating-point rounding.
6. The landscape is the top ``S + 1`` of the ranking whatever ``n_slots`` is.

Invalid shapes, dtypes or values raise ``ValueError``. The work is a loop over ranks ``0..S``
of whole-matrix ``argmax`` passes; nothing loops over requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["AuctionResult", "run_auction"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """Outcome of one batch of auctions.

    - ``winner`` ``(n, S)``: candidate column in slot ``j``, ``-1`` for an empty slot.
    - ``price`` ``(n, S)``: price per click charged if clicked; ``0.0`` for an empty slot.
    - ``ecpm`` ``(n, S)``: eCPM (``bid * pctr``) of the slot's winner; ``0.0`` for an empty slot.
    - ``landscape_ecpm`` ``(n, S + 1)``: the top ``S + 1`` eCPMs of the eligible, de-duplicated
      ranking, descending, ``0.0`` padded.
    - ``landscape_col`` ``(n, S + 1)``: their candidate columns, ``-1`` padded.
    """

    winner: IntArray
    price: FloatArray
    ecpm: FloatArray
    landscape_ecpm: FloatArray
    landscape_col: IntArray


@dataclass(frozen=True, slots=True)
class _Batch:
    """Validated inputs as arrays of fixed dtypes."""

    bid: FloatArray
    pctr: FloatArray
    item: NDArray[np.int64]
    valid: NDArray[np.bool_]
    n_slots: NDArray[np.int64]
    reserve: FloatArray
    relevance_floor: FloatArray


def run_auction(
    *,
    bid: NDArray[np.floating[Any]],
    pctr: NDArray[np.floating[Any]],
    item: NDArray[np.integer[Any]],
    valid: NDArray[np.bool_],
    n_slots: NDArray[np.integer[Any]],
    reserve: NDArray[np.floating[Any]],
    relevance_floor: NDArray[np.floating[Any]],
    max_slots: int | None = None,
) -> AuctionResult:
    """Run one GSP auction per request; see the module docstring for the rules.

    Raises ``ValueError`` when shapes disagree, ``item``/``n_slots`` are not integers, ``valid``
    is not boolean, ``n_slots`` or ``reserve`` is negative (or NaN), or ``max_slots`` is below
    ``max(n_slots)``.
    """
    batch = _validate(
        bid=bid,
        pctr=pctr,
        item=item,
        valid=valid,
        n_slots=n_slots,
        reserve=reserve,
        relevance_floor=relevance_floor,
    )
    n_max = _resolve_max_slots(n_slots=batch.n_slots, max_slots=max_slots)
    work = _eligible_ecpm(batch)
    land_ecpm, land_col = _landscape(work=work, item=batch.item, depth=n_max + 1)
    return _assign(batch=batch, land_ecpm=land_ecpm, land_col=land_col, n_max=n_max)


def _validate(
    *,
    bid: NDArray[np.floating[Any]],
    pctr: NDArray[np.floating[Any]],
    item: NDArray[np.integer[Any]],
    valid: NDArray[np.bool_],
    n_slots: NDArray[np.integer[Any]],
    reserve: NDArray[np.floating[Any]],
    relevance_floor: NDArray[np.floating[Any]],
) -> _Batch:
    """Check shapes, dtypes and ranges; return the inputs as fixed-dtype arrays, never written."""
    bid_a = np.asarray(bid, dtype=np.float64)
    if bid_a.ndim != 2:
        raise ValueError(f"bid must be 2-D (n_requests, n_candidates), got shape {bid_a.shape}")
    matrices = {"pctr": pctr, "item": item, "valid": valid}
    for name, value in matrices.items():
        _check_shape(name=name, shape=np.shape(value), expected=bid_a.shape, what="bid")
    n = bid_a.shape[0]
    vectors = {"n_slots": n_slots, "reserve": reserve, "relevance_floor": relevance_floor}
    for name, value in vectors.items():
        _check_shape(name=name, shape=np.shape(value), expected=(n,), what="n_requests")
    _check_kind(name="item", value=item, kinds="iu", what="an integer")
    _check_kind(name="n_slots", value=n_slots, kinds="iu", what="an integer")
    _check_kind(name="valid", value=valid, kinds="b", what="a boolean")
    batch = _Batch(
        bid=bid_a,
        pctr=np.asarray(pctr, dtype=np.float64),
        item=np.asarray(item, dtype=np.int64),
        valid=np.asarray(valid, dtype=np.bool_),
        n_slots=np.asarray(n_slots, dtype=np.int64),
        reserve=np.asarray(reserve, dtype=np.float64),
        relevance_floor=np.asarray(relevance_floor, dtype=np.float64),
    )
    _check_ranges(batch)
    return batch


def _check_shape(
    *, name: str, shape: tuple[int, ...], expected: tuple[int, ...], what: str
) -> None:
    """Raise ``ValueError`` unless ``shape == expected``."""
    if shape != expected:
        raise ValueError(f"{name} has shape {shape}, expected {expected} (the shape of {what})")


def _check_kind(*, name: str, value: NDArray[Any], kinds: str, what: str) -> None:
    """Raise ``ValueError`` unless the dtype kind of ``value`` is one of ``kinds``."""
    dtype = np.asarray(value).dtype
    if dtype.kind not in kinds:
        raise ValueError(f"{name} must be {what} array, got dtype {dtype}")


def _check_ranges(batch: _Batch) -> None:
    """Raise ``ValueError`` on negative slot counts or negative/NaN reserves."""
    if np.any(batch.n_slots < 0):
        raise ValueError("n_slots must be >= 0")
    if not np.all(batch.reserve >= 0.0):
        raise ValueError("reserve must be >= 0 and not NaN")


def _resolve_max_slots(*, n_slots: NDArray[np.int64], max_slots: int | None) -> int:
    """Return ``S``: ``max_slots`` if given (checked ``>= max(n_slots)``), else ``max(n_slots)``."""
    needed = int(n_slots.max()) if n_slots.size else 0
    if max_slots is None:
        return needed
    if max_slots < needed:
        raise ValueError(f"max_slots must be >= max(n_slots) = {needed}, got {max_slots}")
    return int(max_slots)


def _eligible_ecpm(batch: _Batch) -> FloatArray:
    """eCPM of every eligible candidate (rule 1), ``-inf`` for the ineligible ones."""
    reserve = batch.reserve[:, None]
    floor = batch.relevance_floor[:, None]
    with np.errstate(invalid="ignore"):
        eligible = (
            batch.valid
            & np.isfinite(batch.bid)
            & (batch.bid > 0.0)
            & (batch.bid >= reserve)
            & np.isfinite(batch.pctr)
            & (batch.pctr > 0.0)
            & (batch.pctr >= floor)
        )
    work = np.full(batch.bid.shape, -np.inf)
    with np.errstate(over="ignore"):
        np.multiply(batch.bid, batch.pctr, out=work, where=eligible)
    return work


def _landscape(
    *, work: FloatArray, item: NDArray[np.int64], depth: int
) -> tuple[FloatArray, IntArray]:
    """Top ``depth`` of the de-duplicated ranking (rules 2 and 3); consumes ``work``.

    Each pass takes every row's first maximum (``argmax`` breaks ties to the lower column), then
    removes every candidate of that row showing the same item, which is rule 2: the first pick of
    an item is its best copy.
    """
    n, c = work.shape
    land_ecpm = np.zeros((n, depth))
    land_col = np.full((n, depth), -1, dtype=np.int32)
    rows = np.arange(n)
    for rank in range(depth if c else 0):
        col = np.argmax(work, axis=1)
        best = work[rows, col]
        found = best > -np.inf
        if not found.any():
            break
        land_ecpm[:, rank] = np.where(found, best, 0.0)
        land_col[:, rank] = np.where(found, col, -1)
        if rank + 1 < depth:
            np.putmask(work, item == item[rows, col][:, None], -np.inf)
    return land_ecpm, land_col


def _assign(
    *, batch: _Batch, land_ecpm: FloatArray, land_col: IntArray, n_max: int
) -> AuctionResult:
    """Fill slots from the landscape (rule 4) and price them (rule 5)."""
    slot = np.arange(n_max)
    filled = (land_col[:, :n_max] >= 0) & (slot[None, :] < batch.n_slots[:, None])
    winner = np.where(filled, land_col[:, :n_max], -1).astype(np.int32)
    ecpm = np.where(filled, land_ecpm[:, :n_max], 0.0)
    own_bid = _gather(matrix=batch.bid, col=winner, filled=filled)
    own_pctr = _gather(matrix=batch.pctr, col=winner, filled=filled)
    ratio = np.zeros(winner.shape)
    np.divide(land_ecpm[:, 1:], own_pctr, out=ratio, where=filled)
    price = np.minimum(own_bid, np.maximum(batch.reserve[:, None], ratio))
    price = np.where(filled, price, 0.0)
    return AuctionResult(
        winner=winner,
        price=price,
        ecpm=ecpm,
        landscape_ecpm=land_ecpm,
        landscape_col=land_col,
    )


def _gather(*, matrix: FloatArray, col: IntArray, filled: NDArray[np.bool_]) -> FloatArray:
    """``matrix[i, col[i, j]]`` where ``filled``, ``0.0`` elsewhere."""
    if matrix.shape[1] == 0:
        return np.zeros(col.shape)
    taken = np.take_along_axis(matrix, np.maximum(col, 0).astype(np.intp), axis=1)
    return np.where(filled, taken, 0.0)
