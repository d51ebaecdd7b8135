"""The platform's promotion calendar as the control loop hands it over: to each policy that
plans on one (``expect_promotions``), with days counted from the policy's own, and to the
traffic forecast, which learns an ordinary day's shape from past days with their promotions'
extra page views taken out (``bidding.calendar``, ``store.promotions``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.calendar import Promotion, traffic_factor

# Points per hour at which a window's factor is read when an hour's count is discounted: a
# window that starts or ends within an hour weighs on that hour by the share it covers.
_POINTS_PER_HOUR = 60


def policy_calendar(
    rows: list[dict[str, Any]], *, today: str, policy_day: int
) -> tuple[Promotion, ...]:
    """The windows as a policy counts days: ``today`` is its day ``policy_day``; windows on
    days before its first are left out."""
    anchor = date.fromisoformat(today)
    out = []
    for row in rows:
        day = policy_day + (date.fromisoformat(row["day"]) - anchor).days
        if day >= 0:
            out.append(
                Promotion(
                    day=day,
                    start=row["start_hour"] / 24.0,
                    end=row["end_hour"] / 24.0,
                    traffic_factor=row["traffic_factor"],
                )
            )
    return tuple(out)


def ordinary_hours(
    hourly: NDArray[np.float64], rows: list[dict[str, Any]], *, day: str
) -> NDArray[np.float64]:
    """A day's page views per hour ``(24,)`` as an ordinary day would have had them: each hour
    over the mean factor the day's windows (of ``rows``) put on it."""
    mine = policy_calendar([r for r in rows if r["day"] == day], today=day, policy_day=0)
    if not mine:
        return hourly
    points = (np.arange(24 * _POINTS_PER_HOUR) + 0.5) / (24 * _POINTS_PER_HOUR)
    factor = traffic_factor(mine, 0, points).reshape(24, _POINTS_PER_HOUR).mean(axis=1)
    out: NDArray[np.float64] = hourly / factor
    return out
