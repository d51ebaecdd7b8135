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
    """Accumulates (surface, prediction, truth, outcome) rows."""

    def __init__(self) -> None:
        self._parts: list[
            tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]
        ] = []

    def add(
        self,
        *,
        surface: NDArray[np.int8],
        predicted: NDArray[np.float64],
        truth: NDArray[np.float64],
        outcome: NDArray[np.bool_],
    ) -> None:
        self._parts.append((surface, predicted, truth, outcome))

    def report(self) -> dict[str, Any]:
        """Metrics overall and ``by_surface``."""
        if self._parts:
            surface, predicted, truth, outcome = (
                np.concatenate(c) for c in zip(*self._parts, strict=True)
            )
        else:
            surface, predicted, truth, outcome = (
                np.zeros(0, np.int8),
                np.zeros(0),
                np.zeros(0),
                np.zeros(0, bool),
            )
        overall = _metrics(predicted, truth, outcome)
        overall["by_surface"] = {
            name: _metrics(predicted[surface == s], truth[surface == s], outcome[surface == s])
            for s, name in enumerate(SURFACE_NAMES)
        }
        return overall


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
