"""A traffic forecast the engine learns from the page views it serves: the share of a day's
traffic in each hour, used to plan spend along the day instead of in a straight line. Page
views inside a promotion window of the platform's calendar (``bidding.calendar``) count over
its traffic factor: an ordinary day's shape is learned, not the promotion's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.calendar import Promotion, traffic_factor
from quanzhan.domain import DAY_SECONDS

_HOURS = 24
# Weight of the flat prior, in days of observations.
_PRIOR_DAYS = 0.5


class TrafficForecast:
    """Hourly traffic shares from complete observed days, shrunk towards a flat prior."""

    def __init__(self, calendar: Sequence[Promotion] = ()) -> None:
        self._calendar = tuple(calendar)
        self._today = np.zeros(_HOURS)
        self._past = np.zeros(_HOURS)
        self._days = 0
        self._cumulative = np.linspace(0.0, 1.0, _HOURS + 1)

    def observe(self, time: NDArray[np.float64]) -> None:
        """Count page views at these times (seconds since the first day began)."""
        hour = np.clip(((time % DAY_SECONDS) // 3600).astype(np.int64), 0, _HOURS - 1)
        if not self._calendar:
            self._today += np.bincount(hour, minlength=_HOURS)
            return
        day = time // DAY_SECONDS
        weight = np.ones(len(time))
        for d in np.unique(day):
            mine = day == d
            fraction = (time[mine] - d * DAY_SECONDS) / DAY_SECONDS
            weight[mine] = 1.0 / traffic_factor(self._calendar, int(d), fraction)
        self._today += np.bincount(hour, weights=weight, minlength=_HOURS)

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
