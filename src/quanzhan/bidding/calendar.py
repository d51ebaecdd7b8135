"""The platform's promotion calendar: the hours it has announced busier than an ordinary day.

A marketplace plans its promotion days weeks ahead and knows, from the ones before, about how
much more traffic they bring. A policy that plans a day's budget on yesterday's auctions would
otherwise meet a promotion's evening with its budget spent on the morning; a traffic forecast
that learned the promotion's hours as ordinary ones would expect them again the day after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Promotion:
    """On day ``day`` (0: the first day the policy steers), from ``start`` to ``end`` (fractions
    of the day, 0 at midnight), page views are expected at ``traffic_factor`` times an ordinary
    day's at those hours."""

    day: int
    start: float
    end: float
    traffic_factor: float

    def __post_init__(self) -> None:
        if self.day < 0:
            raise ValueError(f"a promotion's day must be non-negative, not {self.day}")
        if not (0.0 <= self.start < self.end <= 1.0):
            raise ValueError(
                f"a promotion runs within its day, start before end: not {self.start}-{self.end}"
            )
        if not (math.isfinite(self.traffic_factor) and self.traffic_factor > 0):
            raise ValueError(
                f"a promotion's traffic factor must be positive, not {self.traffic_factor}"
            )


def traffic_factor(
    calendar: Sequence[Promotion], day: int, fraction: NDArray[np.float64]
) -> NDArray[np.float64]:
    """How many times an ordinary day's traffic the calendar expects on ``day`` at each of
    ``fraction`` (of the day; ``nan`` where not known: 1, as anywhere outside a promotion).
    Overlapping promotions multiply."""
    out = np.ones(np.shape(fraction))
    for promotion in calendar:
        if promotion.day == day:
            inside = (fraction >= promotion.start) & (fraction < promotion.end)
            out = np.where(inside, out * promotion.traffic_factor, out)
    return out
