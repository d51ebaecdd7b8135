"""How good the engine's predictions were, against the market's hidden truth on the same rows.

For pCTR the rows are ad impressions (prediction and truth both at the slot shown); for pCVR the
rows are ad clicks. ``auc`` ranks the engine's predictions against what happened; ``auc_truth``
ranks the true probabilities on the same rows, the ceiling; ``calibration`` is the sum of
predictions over the sum of true probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from quanzhan.domain import SURFACE_NAMES


class PredictionRecord:
    """Accumulates (surface, prediction, truth, outcome, time) rows."""

    def __init__(self) -> None:
        self._parts: list[tuple[NDArray[Any], ...]] = []

    def add(
        self,
        *,
        surface: NDArray[np.int8],
        predicted: NDArray[np.float64],
        truth: NDArray[np.float64],
        outcome: NDArray[np.bool_],
        time: NDArray[np.float64],
    ) -> None:
        """Rows of one batch; ``time`` is when each was served (seconds into the run)."""
        if not (len(surface) == len(predicted) == len(truth) == len(outcome) == len(time)):
            raise ValueError("every column needs one entry per row")
        self._parts.append((surface, predicted, truth, outcome, time))

    def rows(self) -> dict[str, NDArray[Any]]:
        """Every recorded row: ``surface``, ``predicted``, ``truth``, ``outcome``, ``time``."""
        names = ("surface", "predicted", "truth", "outcome", "time")
        empty = (np.int8, np.float64, np.float64, np.bool_, np.float64)
        if not self._parts:
            return {n: np.zeros(0, dtype=d) for n, d in zip(names, empty, strict=True)}
        return {
            n: np.concatenate(column)
            for n, column in zip(names, zip(*self._parts, strict=True), strict=True)
        }

    def report(self) -> dict[str, Any]:
        """Metrics overall and ``by_surface``."""
        rows = self.rows()
        surface, predicted, truth, outcome = (
            rows[n] for n in ("surface", "predicted", "truth", "outcome")
        )
        overall = _metrics(predicted, truth, outcome)
        overall["by_surface"] = {
            name: _metrics(predicted[surface == s], truth[surface == s], outcome[surface == s])
            for s, name in enumerate(SURFACE_NAMES)
        }
        return overall

    def calibration_over_time(
        self, *, hours: float, periods: int | None = None
    ) -> dict[str, list[float | None]]:
        """Per surface, the calibration of the rows served in each period of ``hours`` from
        the run's start (``None`` where a period holds none of the surface's rows); with
        ``periods``, rows past the last period (clicks just after the last page view) count in
        it."""
        if not hours > 0:
            raise ValueError("hours must be positive")
        if periods is not None and periods < 1:
            raise ValueError("periods must be at least 1")
        rows = self.rows()
        period = (rows["time"] // (hours * 3600)).astype(np.int64)
        if periods is not None:
            period = np.minimum(period, periods - 1)
        n = int(period.max()) + 1 if len(period) else 0
        out: dict[str, list[float | None]] = {}
        for s, name in enumerate(SURFACE_NAMES):
            mine = rows["surface"] == s
            predicted = np.bincount(period[mine], weights=rows["predicted"][mine], minlength=n)
            truth = np.bincount(period[mine], weights=rows["truth"][mine], minlength=n)
            out[name] = [
                _round(float(p / t)) if t > 0 else None
                for p, t in zip(predicted, truth, strict=True)
            ]
        return out


def auc(score: NDArray[np.float64], outcome: NDArray[np.bool_]) -> float | None:
    """Area under the ROC curve (ties count half); ``None`` without both outcomes."""
    positives = int(outcome.sum())
    negatives = len(outcome) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[outcome].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _metrics(
    predicted: NDArray[np.float64], truth: NDArray[np.float64], outcome: NDArray[np.bool_]
) -> dict[str, Any]:
    rows = len(predicted)
    clipped = np.clip(predicted, 1e-7, 1 - 1e-7)
    logloss = -np.mean(np.where(outcome, np.log(clipped), np.log(1 - clipped))) if rows else None
    calibration = float(predicted.sum() / truth.sum()) if rows and truth.sum() > 0 else None
    return {
        "auc": _round(auc(predicted, outcome)),
        "auc_truth": _round(auc(truth, outcome)),
        "calibration": _round(calibration),
        "logloss": _round(float(logloss) if logloss is not None else None),
        "rows": rows,
        "positives": int(outcome.sum()),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
