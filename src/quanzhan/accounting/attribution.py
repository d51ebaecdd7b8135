"""Last-click attribution of orders to ad clicks.

An order ``(user, item, time)`` belongs to the last ad click by the same user on the same item
with ``time - window <= click_time <= time``; among clicks at the same time, the larger click id
wins (and if one click id was recorded twice at that time, the later record). Orders with no
such click are organic.

Clicks are kept in a few runs, each sorted by ``(user, item, time, click_id)``, with sizes
that shrink geometrically from run to run (a log-structured store). New clicks wait in chunks until
the next :meth:`Attribution.attribute`, which sorts them into a new run and merges runs of
similar size. A lookup finds each order's user with ``np.searchsorted`` and then runs a
vectorised binary search over ``(item, time)`` within that user's clicks. Keys are compared
column by column, never combined, so any non-negative int64 user and item ids are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanzhan.domain import N_SURFACES

_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = np.iinfo(np.int64).max
_RANK_SORT_MAX = 1 << 20  # _sort_order packs three ranks below 2**60 up to this many rows


@dataclass(frozen=True, slots=True)
class AttributedOrders:
    """Attribution of ``k`` orders, in their input order; every array has shape ``(k,)``.

    Organic orders have ``campaign == -1``, ``click_id == -1``, ``surface == -1`` and
    ``click_time`` NaN.
    """

    campaign: NDArray[np.int32]
    click_id: NDArray[np.int64]
    surface: NDArray[np.int8]
    click_time: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.campaign)

    @property
    def is_organic(self) -> NDArray[np.bool_]:
        """``(k,)`` mask of orders attributed to no click."""
        return self.campaign < 0


@dataclass(frozen=True, slots=True)
class _Clicks:
    """Ad clicks as columns; every array has shape ``(n,)``."""

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    time: NDArray[np.float64]
    click_id: NDArray[np.int64]
    campaign: NDArray[np.int32]
    surface: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> _Clicks:
        """The clicks at ``index`` (integer positions or a mask)."""
        return _Clicks(**{name: getattr(self, name)[index] for name in _COLUMNS})


_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(_Clicks))


@dataclass(frozen=True, slots=True)
class _Orders:
    """Orders to attribute; every array has shape ``(k,)``."""

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    time: NDArray[np.float64]


@dataclass(slots=True)
class _Best:
    """The best click found so far per order: run and position (``-1``: none), time and id."""

    run: NDArray[np.intp]
    pos: NDArray[np.intp]
    time: NDArray[np.float64]
    click_id: NDArray[np.int64]

    @classmethod
    def none(cls, k: int) -> _Best:
        return cls(
            run=np.full(k, -1, dtype=np.intp),
            pos=np.full(k, -1, dtype=np.intp),
            time=np.full(k, -np.inf),
            click_id=np.full(k, -1, dtype=np.int64),
        )


class Attribution:
    """Store ad clicks and attribute orders to them, last click within a window.

    Args:
        window_seconds: how far back, in seconds, a click may precede an order; ``> 0``.

    Raises:
        ValueError: ``window_seconds`` is not a finite number ``> 0``.

    Clicks may be recorded in any order across calls, and orders may arrive in any order.
    Clicks are never dropped implicitly: call :meth:`prune` to bound memory.
    """

    def __init__(self, *, window_seconds: float) -> None:
        window = float(window_seconds)
        if not (np.isfinite(window) and window > 0):
            raise ValueError(f"window_seconds must be finite and > 0, got {window_seconds!r}")
        self._window = window
        self._runs: list[_Clicks] = []  # non-empty, each sorted; older records in earlier runs
        self._pending: list[_Clicks] = []  # non-empty, in record order

    @property
    def window_seconds(self) -> float:
        """The attribution window in seconds."""
        return self._window

    @property
    def n_clicks(self) -> int:
        """Number of clicks held (sorted and pending)."""
        return sum(len(clicks) for clicks in self._runs + self._pending)

    def record_clicks(
        self,
        *,
        click_id: ArrayLike,
        user: ArrayLike,
        item: ArrayLike,
        campaign: ArrayLike,
        surface: ArrayLike,
        time: ArrayLike,
    ) -> None:
        """Remember a batch of ad clicks, charged or not; every argument has shape ``(m,)``.

        Args:
            click_id: click ids ``>= 0``.
            user: user ids ``>= 0``.
            item: item ids ``>= 0``.
            campaign: campaign ids in ``[0, 2**31)``.
            surface: surface indices in ``[0, N_SURFACES)`` (see :class:`quanzhan.domain.Surface`).
            time: finite click times.

        Raises:
            ValueError: lengths differ or a column is out of range; nothing is recorded then.
        """
        clicks = _Clicks(
            user=_id_column("user", user, upper=_INT64_MAX),
            item=_id_column("item", item, upper=_INT64_MAX),
            time=_time_column("time", time),
            click_id=_id_column("click_id", click_id, upper=_INT64_MAX),
            campaign=_id_column("campaign", campaign, upper=_INT32_MAX).astype(np.int32),
            surface=_id_column("surface", surface, upper=N_SURFACES - 1).astype(np.int8),
        )
        _check_lengths({name: getattr(clicks, name) for name in _COLUMNS})
        if len(clicks):
            self._pending.append(clicks)

    def attribute(self, *, user: ArrayLike, item: ArrayLike, time: ArrayLike) -> AttributedOrders:
        """Attribute a batch of orders; every argument has shape ``(k,)``.

        Args:
            user: user ids ``>= 0``.
            item: item ids ``>= 0``.
            time: finite order times.

        Returns:
            The last qualifying click per order (see the module docstring), in input order.

        Raises:
            ValueError: lengths differ or a column is out of range.
        """
        orders = _Orders(
            user=_id_column("user", user, upper=_INT64_MAX),
            item=_id_column("item", item, upper=_INT64_MAX),
            time=_time_column("time", time),
        )
        _check_lengths({"user": orders.user, "item": orders.item, "time": orders.time})
        self._sort_pending()
        by_user = np.argsort(orders.user)  # searchsorted is several times faster on sorted keys
        ordered = _Orders(
            user=orders.user[by_user], item=orders.item[by_user], time=orders.time[by_user]
        )
        best = _Best.none(len(by_user))
        for index, run in enumerate(self._runs):  # older runs first: ties go to later records
            self._improve(best, index, run, ordered)
        return _gather(self._runs, best, by_user)

    def prune(self, *, before_time: float) -> None:
        """Drop every click with ``time < before_time``; later orders cannot match them.

        Raises:
            ValueError: ``before_time`` is NaN.
        """
        if np.isnan(before_time):
            raise ValueError("before_time must not be NaN")
        self._runs = _pruned(self._runs, before_time)
        self._pending = _pruned(self._pending, before_time)

    def _improve(self, best: _Best, index: int, run: _Clicks, orders: _Orders) -> None:
        """Update ``best`` with run ``index``'s last qualifying click per order, if better."""
        pos = _upper_bound(run, user=orders.user, item=orders.item, time=orders.time) - 1
        safe = np.maximum(pos, 0)
        time, click_id = run.time[safe], run.click_id[safe]
        better = (
            (pos >= 0)
            & (run.user[safe] == orders.user)
            & (run.item[safe] == orders.item)
            & (time >= orders.time - self._window)
            & ((time > best.time) | ((time == best.time) & (click_id >= best.click_id)))
        )
        best.run[better] = index
        best.pos[better] = pos[better]
        best.time[better] = time[better]
        best.click_id[better] = click_id[better]

    def _sort_pending(self) -> None:
        """Turn pending clicks into one sorted run, then merge runs of similar size.

        Runs stay in record order (each merge joins the two newest), and each run is more than
        twice the size of the next, so there are ``O(log n)`` runs and each click is copied
        ``O(log n)`` times in all.
        """
        if not self._pending:
            return
        new = _concat(self._pending)
        self._pending = []
        self._runs.append(new.take(_sort_order(new)))
        while len(self._runs) >= 2 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer = self._runs.pop()
            self._runs.append(_merge(self._runs.pop(), newer))


def _pruned(chunks: list[_Clicks], before_time: float) -> list[_Clicks]:
    """``chunks`` without clicks earlier than ``before_time``; empty chunks are dropped."""
    kept = [clicks.take(clicks.time >= before_time) for clicks in chunks]
    return [clicks for clicks in kept if len(clicks)]


def _gather(runs: list[_Clicks], best: _Best, where: NDArray[np.intp]) -> AttributedOrders:
    """The clicks ``best`` points at, as :class:`AttributedOrders` (``-1``/NaN where none).

    ``best[j]`` belongs to order ``where[j]`` of the result.
    """
    k = len(best.run)
    result = AttributedOrders(
        campaign=np.full(k, -1, dtype=np.int32),
        click_id=np.full(k, -1, dtype=np.int64),
        surface=np.full(k, -1, dtype=np.int8),
        click_time=np.full(k, np.nan, dtype=np.float64),
    )
    for index, run in enumerate(runs):
        hit = best.run == index
        pos, out = best.pos[hit], where[hit]
        result.campaign[out] = run.campaign[pos]
        result.click_id[out] = run.click_id[pos]
        result.surface[out] = run.surface[pos]
        result.click_time[out] = run.time[pos]
    return result


def _sort_order(clicks: _Clicks) -> NDArray[np.intp]:
    """Indices sorting ``clicks`` by ``(user, item, time, click_id)``, ties in record order.

    Equivalent to ``np.lexsort((click_id, time, item, user))`` (which is stable), but about
    twice as fast: the four keys become dense ranks packed into one unique int64 key, which
    the fast unstable sort can then order.
    """
    m = len(clicks)
    if m > _RANK_SORT_MAX:
        return np.lexsort((clicks.click_id, clicks.time, clicks.item, clicks.user))
    pair = _pair_rank(_rank(clicks.user), _rank(clicks.item))
    when = _pair_rank(_rank(clicks.time), _rank(clicks.click_id))
    return np.argsort((pair * m + when) * m + np.arange(m))


def _rank(values: NDArray[np.int64] | NDArray[np.float64]) -> NDArray[np.int64]:
    """Dense rank of each value among ``values`` (equal values share a rank), ``(m,)``."""
    inverse = np.unique(values, return_inverse=True)[1]
    return inverse.astype(np.int64, copy=False)


def _pair_rank(first: NDArray[np.int64], second: NDArray[np.int64]) -> NDArray[np.int64]:
    """Dense rank of ``(first, second)`` pairs, lexicographic, for ranks below ``len``."""
    return _rank(first * len(first) + second)


def _upper_bound(
    run: _Clicks,
    *,
    user: NDArray[np.int64],
    item: NDArray[np.int64],
    time: NDArray[np.float64],
    click_id: NDArray[np.int64] | None = None,
) -> NDArray[np.intp]:
    """For each query, how many clicks of the sorted ``run`` have a key ``<=`` the query's.

    The key is ``(user, item, time)``, or ``(user, item, time, click_id)`` when ``click_id`` is
    given. ``np.searchsorted`` finds each query's user range; a vectorised binary search on
    ``(item, time[, click_id])`` inside it takes ``log2`` of the longest range in numpy passes.
    """
    lo = np.searchsorted(run.user, user, side="left")
    hi = np.searchsorted(run.user, user, side="right")
    longest = int((hi - lo).max()) if len(lo) else 0
    last = len(run) - 1
    for _ in range(longest.bit_length()):
        mid = (lo + hi) // 2
        le = _key_le(run, np.minimum(mid, last), item=item, time=time, click_id=click_id)
        open_ = lo < hi
        lo = np.where(open_ & le, mid + 1, lo)
        hi = np.where(open_ & ~le, mid, hi)
    return lo


def _key_le(
    run: _Clicks,
    at: NDArray[np.intp],
    *,
    item: NDArray[np.int64],
    time: NDArray[np.float64],
    click_id: NDArray[np.int64] | None,
) -> NDArray[np.bool_]:
    """Whether click ``at[j]``'s ``(item, time[, click_id])`` is ``<=`` query ``j``'s."""
    c_time = run.time[at]
    if click_id is None:
        le = c_time <= time
    else:
        le = (c_time < time) | ((c_time == time) & (run.click_id[at] <= click_id))
    c_item = run.item[at]
    result: NDArray[np.bool_] = (c_item < item) | ((c_item == item) & le)
    return result


def _merge(older: _Clicks, newer: _Clicks) -> _Clicks:
    """Merge two sorted runs into one; on equal keys the newer records come last. ``O(n)``."""
    before = _upper_bound(
        older, user=newer.user, item=newer.item, time=newer.time, click_id=newer.click_id
    )
    newer_pos = before + np.arange(len(newer))
    shift = np.cumsum(np.bincount(before, minlength=len(older) + 1))[: len(older)]
    older_pos = np.arange(len(older)) + shift
    columns: dict[str, NDArray[Any]] = {}
    for name in _COLUMNS:
        a, b = getattr(older, name), getattr(newer, name)
        out = np.empty(len(a) + len(b), dtype=a.dtype)
        out[older_pos] = a
        out[newer_pos] = b
        columns[name] = out
    return _Clicks(**columns)


def _concat(chunks: list[_Clicks]) -> _Clicks:
    """All chunks as one unsorted store."""
    return _Clicks(
        **{name: np.concatenate([getattr(c, name) for c in chunks]) for name in _COLUMNS}
    )


def _check_lengths(columns: dict[str, NDArray[Any]]) -> None:
    """Raise ValueError unless every column has the same length."""
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"columns must have equal lengths, got {listed}")


def _id_column(name: str, values: ArrayLike, *, upper: int) -> NDArray[np.int64]:
    """``values`` as one-dimensional int64 in ``[0, upper]``; an empty sequence is allowed."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > upper:
        raise ValueError(f"{name} must lie in [0, {upper}]")
    return array.astype(np.int64)  # a copy: the store must not alias the caller's arrays


def _time_column(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as one-dimensional float64 of finite numbers."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    times = array.astype(np.float64)  # a copy, as for ids
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must be finite")
    return times
