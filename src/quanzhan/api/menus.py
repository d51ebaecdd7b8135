"""Each serving process's sample of the slot menus its auctions offered the campaigns.

A policy that plans over the landscape (``bidding.landscape``) reads, at every control tick,
what each campaign could have bought in the auctions since the last one. A busy campaign takes
part in tens of thousands of auctions a tick; the policy keeps a dozen of them. So each process
keeps every ``stride``-th of a campaign's menus within a window of the control tick's length,
each kept row standing for the ``stride`` auctions from it to the next one kept, with
``stride`` set from the campaign's count in the window before to keep about ``per_window``
rows, and doubled while a window runs past twice that (a campaign's first busy minutes, or a
surge). The rows wait here until the process stores them (``store.menus``); while the database
cannot take them, the oldest beyond ``max_pending`` rows are let go: they are a sample, not
money.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from quanzhan.store.menus import MenuRows

_PER_WINDOW = 24
_MAX_PENDING = 500_000


class MenuCollector:
    """Samples menus per campaign (by database id) for the control loop."""

    def __init__(
        self,
        *,
        window_seconds: float,
        per_window: int = _PER_WINDOW,
        max_pending: int = _MAX_PENDING,
    ) -> None:
        if not window_seconds > 0 or per_window < 1 or max_pending < 1:
            raise ValueError("a menu sample needs a positive window, rows per window and cap")
        self.window_seconds = window_seconds
        self.per_window = per_window
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._ids = np.zeros(0, np.int64)  # campaign row -> database id, as last seen
        self._window = -1
        self._seen = np.zeros(0, np.int64)  # this window's menus per campaign row
        self._kept = np.zeros(0, np.int64)
        self._next = np.zeros(0, np.int64)  # the position in the window of the next row kept
        self._stride = np.ones(0, np.int64)
        self._pending: list[MenuRows] = []
        self._n_pending = 0

    def add(
        self,
        *,
        campaign_ids: NDArray[np.int64],
        campaign: NDArray[np.int64],
        terms: Callable[[NDArray[np.int64]], tuple[NDArray[np.float64], NDArray[np.float64]]],
        time: float,
    ) -> None:
        """One batch's menus, all decided at ``time``: ``campaign`` ``(m,)`` are rows of
        ``campaign_ids`` (the snapshot's row -> database id), and ``terms(index)`` gives the
        ``value`` and ``cost`` ``(k, s)`` of the menus at ``index``, asked for the kept ones
        alone (pricing every menu to keep a few would cost the decision path)."""
        m = len(campaign)
        with self._lock:
            self._align(campaign_ids)
            self._roll(time)
            if m == 0:
                return
            n = len(self._ids)
            order = np.argsort(campaign, kind="stable")
            counts = np.bincount(campaign, minlength=n)
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rank = np.empty(m, np.int64)
            rank[order] = np.arange(m) - first[campaign[order]]
            # Each campaign keeps the row at ``next`` and every ``stride``-th after it; a kept
            # row stands for the rows up to the next one kept, so the weights cover every row.
            position = self._seen[campaign] + rank
            start, stride = self._next[campaign], self._stride[campaign]
            keep = np.flatnonzero((position >= start) & ((position - start) % stride == 0))
            value, cost = terms(keep)
            if value.shape != cost.shape or value.ndim != 2 or len(value) != len(keep):
                raise ValueError("menu value and cost need the same (rows, slots) shape")
            kept = np.bincount(campaign[keep], minlength=n)
            self._seen += counts
            self._next += kept * self._stride
            self._kept += kept
            crowded = self._kept >= 2 * self.per_window
            self._stride[crowded] *= 2
            self._kept[crowded] = self.per_window
            if len(keep):
                self._append(
                    MenuRows(
                        campaign_id=self._ids[campaign[keep]],
                        time=np.full(len(keep), time),
                        weight=stride[keep].astype(np.float64),
                        value=np.asarray(value, np.float64),
                        cost=np.asarray(cost, np.float64),
                    )
                )

    def take(self) -> MenuRows:
        """Every row kept since the last ``take``, oldest first."""
        with self._lock:
            pending, self._pending, self._n_pending = self._pending, [], 0
        return MenuRows.concat(pending)  # outside the lock: decisions need not wait on it

    def give_back(self, rows: MenuRows) -> None:
        """Rows ``take`` handed out that could not be stored: kept for the next try."""
        with self._lock:
            self._pending.insert(0, rows)
            self._n_pending += len(rows)
            self._trim()

    def __len__(self) -> int:
        return self._n_pending

    def _append(self, rows: MenuRows) -> None:
        self._pending.append(rows)
        self._n_pending += len(rows)
        self._trim()

    def _trim(self) -> None:
        while self._n_pending > self.max_pending and self._pending:
            excess = self._n_pending - self.max_pending
            oldest = self._pending[0]
            if len(oldest) <= excess:
                self._pending.pop(0)
                self._n_pending -= len(oldest)
            else:
                self._pending[0] = oldest.take(np.arange(excess, len(oldest)))
                self._n_pending -= excess

    def _align(self, campaign_ids: NDArray[np.int64]) -> None:
        """Carry each campaign's counts over to a new snapshot's rows, by database id."""
        if np.array_equal(campaign_ids, self._ids):
            return
        old = {int(c): i for i, c in enumerate(self._ids.tolist())}
        where = np.array([old.get(int(c), -1) for c in campaign_ids.tolist()], np.int64)
        known = where >= 0
        n = len(campaign_ids)
        counts = (self._seen, self._kept, self._next)
        seen, kept, next_kept = (np.zeros(n, np.int64) for _ in counts)
        stride = np.ones(n, np.int64)
        for new, old_counts in zip(
            (seen, kept, next_kept, stride), (*counts, self._stride), strict=True
        ):
            new[known] = old_counts[where[known]]
        self._ids = np.asarray(campaign_ids, np.int64).copy()
        self._seen, self._kept, self._next, self._stride = seen, kept, next_kept, stride

    def _roll(self, time: float) -> None:
        """At a new window, set each campaign's stride from the window before."""
        window = int(time // self.window_seconds)
        if window == self._window:
            return
        if window == self._window + 1:
            self._stride = np.maximum(1, -(-self._seen // self.per_window))
        else:  # the first window, or a quiet gap: start afresh
            self._stride = np.ones(len(self._ids), np.int64)
        self._window = window
        self._seen = np.zeros(len(self._ids), np.int64)
        self._kept = np.zeros(len(self._ids), np.int64)
        self._next = np.zeros(len(self._ids), np.int64)
