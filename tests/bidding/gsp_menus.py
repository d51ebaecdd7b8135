"""Random slot menus shaped like a GSP auction's, for the bid-response tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def gsp_menus(
    rng: np.random.Generator, rows: int, slots: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """GSP-like menus: a higher slot brings more clicks and costs more per click; now and then
    a slot is missing, or priced out of order (a reserve on a low slot)."""
    per_click_value = rng.lognormal(0.0, 0.5, rows)[:, None]
    clicks = np.sort(rng.uniform(0.1, 1.0, (rows, slots)), axis=1)[:, ::-1]
    price = np.sort(rng.uniform(0.05, 2.0, (rows, slots)), axis=1)[:, ::-1] * per_click_value
    disorder = rng.random(rows) < 0.2
    price[disorder] = price[disorder][:, ::-1]
    value, cost = clicks * per_click_value, clicks * price
    absent = rng.random((rows, slots)) < 0.2
    value[absent], cost[absent] = np.nan, np.nan
    return value, cost
