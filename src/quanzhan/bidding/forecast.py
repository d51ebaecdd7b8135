"""A traffic forecast the engine learns from the page views it serves: the share of a day's
traffic in each hour, used to plan spend along the day instead of in a straight line."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import DAY_SECONDS

_HOURS = 24
# Weight of the flat prior, in days of observations.
_PRIOR_DAYS = 0.5


class TrafficForecast:
    """Hourly traffic shares from complete observed days, shrunk towards a flat prior."""

    def __init__(self) -> None:
        self._today = np.zeros(_HOURS)
        self._past = np.zeros(_HOURS)
        self._days = 0
        self._cumulative = np.linspace(0.0, 1.0, _HOURS + 1)

    def observe(self, time: NDArray[np.float64]) -> None:
        """Count page views at these times (seconds since the first day began)."""
        hour = ((time % DAY_SECONDS) // 3600).astype(np.int64)
        self._today += np.bincount(np.clip(hour, 0, _HOURS - 1), minlength=_HOURS)

    def add_day(self, hourly: NDArray[np.float64]) -> None:
        """Fold in a past day of page views per hour, ``(24,)``, e.g. from the platform's logs."""
        if hourly.shape != (_HOURS,) or not np.all(np.isfinite(hourly) & (hourly >= 0)):
            raise ValueError("a day of traffic is 24 finite, non-negative hourly counts")
        if hourly.sum() > 0:
            self._past += hourly / hourly.sum()
            self._days += 1
        self._refresh()

    def end_day(self) -> None:
        """Fold today's counts into the forecast."""
        self.add_day(self._today.copy())
        self._today[:] = 0.0

    def _refresh(self) -> None:
        share = (self._past + _PRIOR_DAYS / _HOURS) / (self._days + _PRIOR_DAYS)
        self._cumulative = np.concatenate([[0.0], np.cumsum(share)])

    def share_elapsed(self, day_fraction: float) -> float:
        """Forecast share of the day's traffic before ``day_fraction`` (0 to 1) of the day."""
        position = min(max(day_fraction, 0.0), 1.0) * _HOURS
        return float(np.interp(position, np.arange(_HOURS + 1), self._cumulative))
