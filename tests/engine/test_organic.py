"""``OrganicClickRates``: the platform's own results' click rates by surface and position."""

from __future__ import annotations

import numpy as np

from quanzhan.domain import N_SURFACES
from quanzhan.engine.organic import POSITIONS, OrganicClickRates


def test_low_positions_share_the_last_and_rates_are_per_result() -> None:
    rates = OrganicClickRates()
    rates.add(
        surface=np.array([1, 1, 1, 4], np.int8),
        position=np.array([POSITIONS - 1, POSITIONS + 5, 0, 0]),
        clicked=np.array([True, False, True, False]),
    )
    assert rates.shown.shape == (N_SURFACES, POSITIONS)
    assert rates.shown[1, POSITIONS - 1] == 2 and rates.clicked[1, POSITIONS - 1] == 1
    table = rates.rates()
    assert table[1, POSITIONS - 1] == 0.5 and table[1, 0] == 1.0 and table[4, 0] == 0.0
    assert table[0].sum() == 0.0  # nothing shown: zero, not a division by zero
