"""Per-surface calibration of served predictions, read off held-out rows refresh after refresh.

A model fitted on the ads it showed is calibrated on those rows, yet overpredicts the ads it
picks next: the auction favours whatever it overrates (the winner's curse), and retrieval brings
in items the model knows little of. So each refresh fits on what was logged before the previous
refresh and scores what came since with the new model, which had not seen it; per surface, the
logit shift that makes those predictions sum to what happened calibrates the model.

One refresh interval may hold too few outcomes to measure that: a market of a few hundred orders
a day holds a few dozen between two refreshes, and a thin surface none. So every interval's
evidence is kept (outcomes and predictions per surface), and the shift reads the most recent
intervals that together hold ``enough`` outcomes: a busy market calibrates on its latest
interval alone, a quiet one on the last several, and none is left with a shift measured once on
a handful of orders and never again.
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

    def __init__(self, *, enough: float) -> None:
        if not enough > 0:
            raise ValueError("enough must be positive")
        self.enough = float(enough)
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
        ``enough`` outcomes (all kept, where they hold fewer), each surface's ratio with
        ``_PSEUDO`` pseudo-outcomes at the all-surface ratio on each side, within
        ``_MAX_SHIFT``; zero before any interval."""
        if not self._happened:
            return np.zeros(N_SURFACES)
        happened = np.sum(self._happened, axis=0)
        expected = np.sum(self._expected, axis=0)
        overall = (happened.sum() + _PSEUDO) / (expected.sum() + _PSEUDO)
        step = np.log((happened + _PSEUDO * overall) / (expected + _PSEUDO))
        out: NDArray[np.float64] = np.clip(step, -_MAX_SHIFT, _MAX_SHIFT)
        return out

    def _forget(self) -> None:
        """Drop the intervals older than those the newest ones need to hold ``enough``: new
        intervals only add, so they are never read again."""
        held = np.cumsum([h.sum() for h in reversed(self._happened)])
        needed = int(np.searchsorted(held, self.enough)) + 1  # newest intervals to keep
        if needed < len(self._happened):
            del self._happened[:-needed]
            del self._expected[:-needed]
