"""Per-surface calibration of served predictions, read off held-out rows refresh after refresh.

A model fitted on the ads it showed is calibrated on those rows, yet overpredicts the ads it
picks next: the auction favours whatever it overrates (the winner's curse), and retrieval brings
in items the model knows little of. So each refresh fits on what was logged before the previous
refresh and scores what came since with the new model, which had not seen it; per surface, the
logit shift that makes those predictions sum to what happened calibrates the model.

One refresh interval may hold too few outcomes to measure that: a market of a few hundred orders
a day holds a few dozen between two refreshes, and a thin surface none. So every interval's
evidence is kept (outcomes and predictions per surface). The all-surface ratio reads the most
recent intervals that together hold ``enough`` outcomes: a busy market calibrates on its latest
interval alone, a quiet one on the last several, and none is left with a shift measured once on
a handful of orders and never again. Each surface reads back as far as it takes to hold
``per_surface`` outcomes of its own (at most ``max_intervals``): a surface of a few orders an
hour would otherwise be read on a dozen orders and lean on the others' ratio, however far off
its own stays all day; a busy one still reads its latest interval.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES

# Pseudo-outcomes at the all-surface ratio on each side of a surface's ratio: a thin surface
# takes the others' miss.
_PSEUDO = 20.0
# The most a calibration shift may move a logit.
_MAX_SHIFT = 2.0


class HeldOutCalibration:
    """Held-out outcomes and predictions per surface, interval by interval, newest last."""

    def __init__(
        self, *, enough: float, per_surface: float | None = None, max_intervals: int = 12
    ) -> None:
        """``per_surface`` defaults to ``enough``."""
        per_surface = enough if per_surface is None else per_surface
        if not (enough > 0 and per_surface > 0):
            raise ValueError("enough and per_surface must be positive")
        if max_intervals < 1:
            raise ValueError("max_intervals must be at least 1")
        self.enough = float(enough)
        self.per_surface = float(per_surface)
        self.max_intervals = int(max_intervals)
        self._happened: list[NDArray[np.float64]] = []
        self._expected: list[NDArray[np.float64]] = []

    def __len__(self) -> int:
        """Intervals kept."""
        return len(self._happened)

    def add(
        self,
        *,
        surface: NDArray[np.int8],
        predicted: NDArray[np.float64],
        outcome: NDArray[np.bool_],
    ) -> None:
        """One interval's held-out rows: their surface, the prediction of a model that had not
        seen them (before any shift) and what happened."""
        if not (len(surface) == len(predicted) == len(outcome)):
            raise ValueError("surface, predicted and outcome need one entry per row")
        if len(predicted) and not np.all(np.isfinite(predicted) & (predicted >= 0)):
            raise ValueError("predictions must be finite and non-negative")
        weights = outcome.astype(np.float64)
        self._happened.append(
            np.bincount(surface, weights=weights, minlength=N_SURFACES).astype(np.float64)
        )
        self._expected.append(
            np.bincount(surface, weights=predicted, minlength=N_SURFACES).astype(np.float64)
        )
        self._forget()

    def shift(self) -> NDArray[np.float64]:
        """Per surface, log(outcomes / predictions) over the most recent intervals that hold
        ``per_surface`` outcomes of that surface (all kept, where they hold fewer), with
        ``_PSEUDO`` pseudo-outcomes on each side at the all-surface ratio of the most recent
        intervals that hold ``enough``, within ``_MAX_SHIFT``; zero before any interval."""
        if not self._happened:
            return np.zeros(N_SURFACES)
        happened = np.array(self._happened[::-1])  # (intervals, surfaces), newest first
        expected = np.array(self._expected[::-1])
        total = _newest_holding(happened.sum(axis=1), self.enough)
        overall = (happened[:total].sum() + _PSEUDO) / (expected[:total].sum() + _PSEUDO)
        read = np.arange(len(happened))[:, None] < self._reads(happened)[None, :]
        mine_happened = (happened * read).sum(axis=0)
        mine_expected = (expected * read).sum(axis=0)
        step = np.log((mine_happened + _PSEUDO * overall) / (mine_expected + _PSEUDO))
        out: NDArray[np.float64] = np.clip(step, -_MAX_SHIFT, _MAX_SHIFT)
        return out

    def _reads(self, happened: NDArray[np.float64]) -> NDArray[np.int64]:
        """How many of the newest intervals each surface reads (``happened`` newest first)."""
        return np.array(
            [_newest_holding(happened[:, s], self.per_surface) for s in range(N_SURFACES)],
            dtype=np.int64,
        )

    def _forget(self) -> None:
        """Drop the intervals older than any reading needs (and past ``max_intervals``): new
        intervals only add, so they are never read again. A surface that none of the kept
        intervals has a row of needs none."""
        happened = np.array(self._happened[::-1])
        seen = np.array(self._expected).sum(axis=0) > 0
        needed = _newest_holding(happened.sum(axis=1), self.enough)
        if seen.any():
            needed = max(needed, int(self._reads(happened)[seen].max()))
        needed = min(needed, self.max_intervals)
        if needed < len(self._happened):
            del self._happened[:-needed]
            del self._expected[:-needed]


def _newest_holding(happened: NDArray[np.float64], enough: float) -> int:
    """How many of the newest intervals (``happened`` per interval, newest first) it takes to
    hold ``enough`` outcomes; all of them where they hold fewer."""
    held = np.cumsum(happened)
    return min(int(np.searchsorted(held, enough)) + 1, len(happened))
