"""The engine's event log: orders by click, with when each was placed."""

from __future__ import annotations

import numpy as np
import pytest

from quanzhan.engine.log import EventLog


def test_each_ordered_click_once_with_its_first_known_order_time() -> None:
    log = EventLog()
    log.add_attributed_orders(np.array([7, 3, -1]), np.array([50.0, 20.0, 5.0]))
    log.add_attributed_orders(np.array([3, 9, 7]), np.array([10.0, np.nan, 60.0]))
    log.add_attributed_orders(np.array([9]), np.array([80.0]))
    click_id, time = log.orders()
    assert click_id.tolist() == [3, 7, 9]  # -1: an order no click was credited with
    assert time.tolist() == [10.0, 50.0, 80.0]  # a known time before an unknown one
    assert log.ordered_clicks().tolist() == [3, 7, 9]
    log.add_attributed_orders(np.array([4]), np.array([np.nan]))
    click_id, time = log.orders()
    assert click_id.tolist() == [3, 4, 7, 9] and np.isnan(time[1])


def test_orders_need_a_time_each() -> None:
    log = EventLog()
    with pytest.raises(ValueError, match="one entry per order"):
        log.add_attributed_orders(np.array([1, 2]), np.array([1.0]))
    assert len(log.orders()[0]) == 0  # nothing half-added
