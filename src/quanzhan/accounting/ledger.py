"""The ledger: every charged click, per-campaign daily spend, and budget enforcement.

Budgets are enforced here and nowhere else. :meth:`Ledger.charge` takes a batch of clicks and
decides, click by click in time order, what each is charged: its price, or what is left of its
campaign's daily budget if that is less, or nothing once the budget is spent. The decision is
vectorised (a stable sort by campaign and time, a grouped cumulative sum, one comparison) but
equals this sequential rule:

    for each click in time order (ties: input order):
        if the click id was decided before (earlier call or earlier in this batch): charge 0
        elif spend[campaign] < budget[campaign]:
            charge min(price, budget - spend); spend[campaign] += that
        else: charge 0 and count the click as refused

So a campaign's spend never passes its budget: the click that reaches it pays only what is
left (the platform forgoes the rest), and later clicks that day are free to the merchant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

_INT64_MAX = np.iinfo(np.int64).max
_T = TypeVar("_T", bound=np.generic)


@dataclass(frozen=True, slots=True)
class LedgerRows:
    """One row per charged click, in charge order; every array has shape ``(n_rows,)``.

    A click is charged when it is accepted against its budget, so a zero-priced click that was
    accepted has a row with amount 0; refused and duplicate clicks have none. ``day`` is the
    ledger day (see :meth:`Ledger.start_day`) on which the click was charged. The arrays are
    read-only.
    """

    click_id: NDArray[np.int64]
    campaign: NDArray[np.int32]
    amount: NDArray[np.float64]
    time: NDArray[np.float64]
    day: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.click_id)


@dataclass(frozen=True, slots=True)
class _Batch:
    """A validated charge batch; every array has shape ``(m,)``."""

    click_id: NDArray[np.int64]
    campaign: NDArray[np.int32]
    price: NDArray[np.float64]
    time: NDArray[np.float64]


class Ledger:
    """Daily budgets, spend and the record of charged clicks for ``n_campaigns`` campaigns.

    Args:
        budget: daily budget per campaign, shape ``(n_campaigns,)``; every value ``> 0``
            (``inf`` means unlimited).

    Raises:
        ValueError: ``budget`` is not one-dimensional or holds a value that is not ``> 0``.

    Click ids are remembered for the ledger's lifetime (across days), so replaying a click never
    charges it twice. Batches are applied in call order; time orders clicks only within a batch.
    """

    def __init__(self, *, budget: ArrayLike) -> None:
        values = _float_column("budget", budget)
        _check_budgets(values)
        n = len(values)
        self._budget = values.copy()
        self._spend = np.zeros(n, dtype=np.float64)
        self._refused = np.zeros(n, dtype=np.int64)
        self._day = 0
        self._seen = _IdSet()
        self._row_chunks: list[LedgerRows] = []

    @property
    def n_campaigns(self) -> int:
        """Number of campaigns the ledger accounts for."""
        return len(self._budget)

    @property
    def budget(self) -> NDArray[np.float64]:
        """Daily budget per campaign, shape ``(n_campaigns,)`` (a copy)."""
        return self._budget.copy()

    @property
    def spend(self) -> NDArray[np.float64]:
        """Spend of the current day per campaign, shape ``(n_campaigns,)`` (a copy)."""
        return self._spend.copy()

    @property
    def day(self) -> int:
        """The current day, 0 at construction and one more after each :meth:`start_day`."""
        return self._day

    @property
    def refused_clicks(self) -> NDArray[np.int64]:
        """Clicks refused on the current day because the budget was spent, per campaign."""
        return self._refused.copy()

    def remaining(self) -> NDArray[np.float64]:
        """Budget left today per campaign: ``budget - spend`` floored at 0, ``(n_campaigns,)``."""
        return np.maximum(self._budget - self._spend, 0.0)

    def set_budget(self, *, campaign: int, budget: float) -> None:
        """Change one campaign's daily budget; today's spend is kept.

        Raises:
            ValueError: ``campaign`` is out of range or ``budget`` is not ``> 0``.
        """
        if isinstance(campaign, bool) or not isinstance(campaign, int | np.integer):
            raise ValueError(f"campaign must be an integer, got {campaign!r}")
        if not 0 <= campaign < self.n_campaigns:
            raise ValueError(f"campaign {campaign} out of range [0, {self.n_campaigns})")
        if not float(budget) > 0:
            raise ValueError(f"budget must be > 0, got {budget!r}")
        self._budget[campaign] = float(budget)

    def start_day(self) -> None:
        """Begin a new day: spend and refused counts go to 0; rows and click ids are kept."""
        self._day += 1
        self._spend[:] = 0.0
        self._refused[:] = 0

    def rows(self) -> LedgerRows:
        """Every charged click so far, all days, in charge order (read-only arrays)."""
        if len(self._row_chunks) != 1:
            self._row_chunks = [_concat_rows(self._row_chunks)]
        return self._row_chunks[0]

    def charge(
        self,
        *,
        click_id: ArrayLike,
        campaign: ArrayLike,
        price: ArrayLike,
        time: ArrayLike,
    ) -> NDArray[np.float64]:
        """Charge a batch of clicks against the budgets; return the amount charged per click.

        Args:
            click_id: ``(m,)`` integer click ids; a click id is charged at most once, ever.
            campaign: ``(m,)`` integer campaign ids in ``[0, n_campaigns)``.
            price: ``(m,)`` finite prices ``>= 0``.
            time: ``(m,)`` finite click times; they order the clicks within the batch.

        Returns:
            ``(m,)`` float64, in input order: the price for a charged click, else 0 (a duplicate
            of an already decided click id, or a click refused because its campaign's spend had
            reached its budget).

        Raises:
            ValueError: lengths differ, a column has the wrong kind or shape, a campaign is out
                of range, or a price is negative or not finite. The ledger is then unchanged.
        """
        batch = self._validated(click_id=click_id, campaign=campaign, price=price, time=time)
        amount = np.zeros(len(batch.click_id), dtype=np.float64)
        if len(amount) == 0:
            return amount
        by_time = _stable_argsort(batch.time)
        fresh = by_time[self._fresh(batch.click_id[by_time])]  # in time order
        accepted, room = _accepted(
            campaign=batch.campaign[fresh],
            price=batch.price[fresh],
            spend=self._spend,
            budget=self._budget,
        )
        charged = fresh[accepted]
        amount[charged] = np.minimum(batch.price[charged], room[accepted])
        _trim_rounding(amount, charged, batch.campaign, self._spend, self._budget)
        self._record(batch=batch, charged=charged, amount=amount[charged], refused=fresh[~accepted])
        self._seen.add(batch.click_id[fresh])
        return amount

    def _validated(
        self, *, click_id: ArrayLike, campaign: ArrayLike, price: ArrayLike, time: ArrayLike
    ) -> _Batch:
        """Check a charge batch and return it as typed columns; nothing is mutated."""
        ids = _int_column("click_id", click_id)
        camps = _int_column("campaign", campaign)
        prices = _float_column("price", price)
        times = _float_column("time", time)
        lengths = {len(ids), len(camps), len(prices), len(times)}
        if len(lengths) != 1:
            raise ValueError(
                "click_id, campaign, price and time must have equal lengths, got "
                f"{len(ids)}, {len(camps)}, {len(prices)} and {len(times)}"
            )
        if len(camps) and (camps.min() < 0 or camps.max() >= self.n_campaigns):
            raise ValueError(f"campaign ids must lie in [0, {self.n_campaigns})")
        if not np.all(np.isfinite(prices)) or np.any(prices < 0):
            raise ValueError("prices must be finite and >= 0")
        if not np.all(np.isfinite(times)):
            raise ValueError("click times must be finite")
        return _Batch(click_id=ids, campaign=camps.astype(np.int32), price=prices, time=times)

    def _fresh(self, click_id: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Mask of the clicks to decide: the first of each id, and only ids not seen before.

        ``click_id`` is non-empty; "first" means lowest position, so pass ids in time order.
        """
        order = np.argsort(click_id)
        ids = click_id[order]
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        first = np.minimum.reduceat(order, starts)
        mask = np.zeros(len(click_id), dtype=np.bool_)
        mask[first[~self._seen.contains(ids[starts])]] = True
        return mask

    def _record(
        self,
        *,
        batch: _Batch,
        charged: NDArray[np.intp],
        amount: NDArray[np.float64],
        refused: NDArray[np.intp],
    ) -> None:
        """Add charged clicks (given in time order) to spend and rows; count refused ones."""
        n = self.n_campaigns
        spent = np.bincount(batch.campaign[charged], weights=amount, minlength=n)
        self._spend += spent
        self._refused += np.bincount(batch.campaign[refused], minlength=n)
        self._row_chunks.append(
            LedgerRows(
                click_id=_frozen(batch.click_id[charged]),
                campaign=_frozen(batch.campaign[charged]),
                amount=_frozen(amount),
                time=_frozen(batch.time[charged]),
                day=_frozen(np.full(len(charged), self._day, dtype=np.int32)),
            )
        )


def _trim_rounding(
    amount: NDArray[np.float64],
    charged: NDArray[np.intp],
    campaign: NDArray[np.int32],
    spend: NDArray[np.float64],
    budget: NDArray[np.float64],
) -> None:
    """Take any float rounding past a budget off that campaign's last charge, in place.

    The room before each click comes from one running sum over the batch, exact but for the
    last bits; the trim makes ``spend <= budget`` hold exactly, not just to 1e-10.
    """
    if len(charged) == 0:
        return
    camp = campaign[charged]
    total = spend + np.bincount(camp, weights=amount[charged], minlength=len(spend))
    excess = total - budget
    over = np.flatnonzero(excess > 0)
    if len(over) == 0:
        return
    last = np.full(len(spend), -1, dtype=np.int64)
    np.maximum.at(last, camp, np.arange(len(charged)))  # charged is in time order
    rows = charged[last[over]]
    amount[rows] = np.maximum(amount[rows] - excess[over], 0.0)


def _accepted(
    *,
    campaign: NDArray[np.int32],
    price: NDArray[np.float64],
    spend: NDArray[np.float64],
    budget: NDArray[np.float64],
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which of a batch of unique clicks, given in time order, are charged, ``(m,)``, and the
    budget left before each, ``(m,)``.

    A click is charged iff its campaign's spend before it (start spend plus the prices of the
    campaign's earlier clicks in the batch) is strictly below the budget. Only the click that
    crosses the budget can be charged less than its price, and it is the last one charged, so
    the running sum of full prices gives every earlier click's spend exactly.
    """
    # Stable by campaign, keeping time order: the key (campaign, position) is unique.
    order = np.argsort(campaign.astype(np.int64) * len(campaign) + np.arange(len(campaign)))
    camp = campaign[order]
    prices = price[order]
    before = np.concatenate(([0.0], np.cumsum(prices)[:-1]))
    new_group = np.concatenate(([True], camp[1:] != camp[:-1]))
    group_start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]
    spend_before = spend[camp] + (before - before[group_start])
    accepted = np.empty(len(order), dtype=np.bool_)
    accepted[order] = spend_before < budget[camp]
    room = np.empty(len(order), dtype=np.float64)
    room[order] = budget[camp] - spend_before
    return accepted, room


def _stable_argsort(values: NDArray[np.float64]) -> NDArray[np.intp]:
    """``np.argsort(values, kind="stable")``, faster when ``values`` are sorted or distinct."""
    if np.all(values[1:] >= values[:-1]):
        return np.arange(len(values))
    order = np.argsort(values)  # the fast unstable sort is stable when no two values tie
    ordered = values[order]
    if np.all(ordered[1:] > ordered[:-1]):
        return order
    return np.argsort(values, kind="stable")


class _IdSet:
    """A growing set of int64 ids: sorted, disjoint levels merged when sizes become similar.

    Adding ``k`` ids costs ``O(k log k)`` plus amortised merging (each id is merged
    ``O(log n)`` times); a lookup of ``k`` ids costs ``O(k log n)`` per level, with
    ``O(log n)`` levels.
    """

    def __init__(self) -> None:
        self._levels: list[NDArray[np.int64]] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def contains(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """``(k,)`` mask of which ``ids`` are in the set."""
        found = np.zeros(len(ids), dtype=np.bool_)
        for level in self._levels:
            pos = np.minimum(np.searchsorted(level, ids), len(level) - 1)
            found |= level[pos] == ids
        return found

    def add(self, ids: NDArray[np.int64]) -> None:
        """Add ``ids``, which must be unique and absent from the set."""
        if len(ids) == 0:
            return
        self._levels.append(np.sort(ids))
        while len(self._levels) >= 2 and len(self._levels[-2]) <= 2 * len(self._levels[-1]):
            last = self._levels.pop()
            merged = np.concatenate((self._levels.pop(), last))
            self._levels.append(np.sort(merged, kind="stable"))


def _check_budgets(budget: NDArray[np.float64]) -> None:
    """Raise ValueError unless every budget is ``> 0`` (NaN is not)."""
    if not np.all(budget > 0):
        raise ValueError("every budget must be > 0")


def _int_column(name: str, values: ArrayLike) -> NDArray[np.int64]:
    """``values`` as a one-dimensional int64 array; an empty sequence of any type is allowed."""
    array = np.asarray(values)
    _check_1d(name, array)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.max() > _INT64_MAX:
        raise ValueError(f"{name} holds values beyond the int64 range")
    return array.astype(np.int64, copy=False)


def _float_column(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as a one-dimensional float64 array of real numbers."""
    array = np.asarray(values)
    _check_1d(name, array)
    if array.size and array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _check_1d(name: str, array: NDArray[np.generic]) -> None:
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")


def _concat_rows(chunks: list[LedgerRows]) -> LedgerRows:
    """All chunks as one :class:`LedgerRows` with read-only arrays."""
    return LedgerRows(
        click_id=_concat([c.click_id for c in chunks], np.int64),
        campaign=_concat([c.campaign for c in chunks], np.int32),
        amount=_concat([c.amount for c in chunks], np.float64),
        time=_concat([c.time for c in chunks], np.float64),
        day=_concat([c.day for c in chunks], np.int32),
    )


def _concat(parts: list[NDArray[_T]], dtype: type[_T]) -> NDArray[_T]:
    """Concatenate ``parts`` (possibly none) into one read-only array of ``dtype``."""
    column = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return _frozen(column)


def _frozen(array: NDArray[_T]) -> NDArray[_T]:
    """Mark ``array`` read-only and return it."""
    array.flags.writeable = False
    return array
