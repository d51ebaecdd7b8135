"""A serving process's sample of slot menus: every campaign's auctions are represented, each
kept row standing for the auctions it was chosen from, and a busy campaign keeps about as many
rows per window as a quiet one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanzhan.api.menus import MenuCollector

IDS = np.array([101, 205, 307], dtype=np.int64)


def _menus(campaign: list[int]) -> dict[str, Any]:
    value = np.tile([3.0, 2.0, np.nan], (len(campaign), 1))
    return {
        "campaign": np.array(campaign, dtype=np.int64),
        "terms": lambda keep: (value[keep], value[keep] / 4.0),
    }


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=2), min_size=0, max_size=120),
        min_size=1,
        max_size=30,
    ),
    per_window=st.integers(min_value=1, max_value=8),
)
def test_kept_rows_stand_for_every_auction_of_their_campaign(
    batches: list[list[int]], per_window: int
) -> None:
    collector = MenuCollector(window_seconds=900.0, per_window=per_window)
    for k, campaign in enumerate(batches):
        collector.add(campaign_ids=IDS, time=1000.0 + k, **_menus(campaign))
    rows = collector.take()
    seen = np.bincount(np.array([c for batch in batches for c in batch], np.int64), minlength=3)
    for row, campaign_id in enumerate(IDS):
        mine = rows.campaign_id == campaign_id
        # Each kept row stands for the rows from it to the next kept one: the weights add up
        # to the auctions seen, and at most one stride more (the last kept row's).
        assert rows.weight[mine].sum() >= seen[row]
        assert rows.weight[mine].sum() - seen[row] < max(rows.weight[mine], default=1.0)
        assert (seen[row] > 0) == bool(mine.any())
    assert np.all(rows.weight >= 1.0)


def test_a_busy_campaign_keeps_about_as_many_rows_per_window_as_asked() -> None:
    collector = MenuCollector(window_seconds=60.0, per_window=10)
    busy, quiet = [0] * 50, [1] * 3
    for window in range(3):
        for k in range(40):  # 2,000 menus of the busy campaign and 120 of the quiet one
            collector.add(campaign_ids=IDS, time=window * 60.0 + k, **_menus(busy + quiet))
        rows = collector.take()
        n_busy = int((rows.campaign_id == 101).sum())
        n_quiet = int((rows.campaign_id == 205).sum())
        if window == 0:  # no window before to size the stride: it doubles as rows pile up
            assert n_busy < 200
        else:  # sized on the window before
            assert 10 <= n_busy <= 20
        assert rows.weight[rows.campaign_id == 101].sum() == pytest.approx(2000, rel=0.05)
        assert n_quiet >= 10
        assert rows.weight[rows.campaign_id == 205].sum() == pytest.approx(120, rel=0.1)


def test_counts_follow_a_campaign_to_its_row_in_a_new_snapshot() -> None:
    collector = MenuCollector(window_seconds=60.0, per_window=5)
    for k in range(20):
        collector.add(campaign_ids=IDS, time=float(k), **_menus([2] * 20))
    collector.take()
    # A new snapshot: campaign 307 is now row 0, and a new campaign 400 joined.
    moved = np.array([307, 400], dtype=np.int64)
    for k in range(20):
        collector.add(campaign_ids=moved, time=60.0 + k, **_menus([0] * 20 + [1]))
    rows = collector.take()
    old = rows.campaign_id == 307
    # 307's stride came with it from the window before (400 menus, 5 a window: 80).
    assert old.sum() == 5 and np.all(rows.weight[old] == 80.0)
    assert np.all(rows.weight[rows.campaign_id == 400] >= 1.0)
    assert (rows.campaign_id == 400).sum() >= 5


def test_rows_given_back_come_first_and_the_oldest_go_past_the_cap() -> None:
    collector = MenuCollector(window_seconds=60.0, per_window=100, max_pending=6)
    collector.add(campaign_ids=IDS, time=1.0, **_menus([0, 1, 2, 0]))
    taken = collector.take()
    assert len(taken) == 4 and len(collector) == 0
    collector.add(campaign_ids=IDS, time=2.0, **_menus([1, 1, 1]))
    collector.give_back(taken)  # the database refused them: they go first again
    rows = collector.take()
    assert len(rows) == 6
    # The cap let go of the oldest row of those given back.
    np.testing.assert_array_equal(rows.campaign_id, [205, 307, 101, 205, 205, 205])
    np.testing.assert_array_equal(rows.time, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])


def test_menus_of_another_shape_are_refused_and_change_nothing() -> None:
    collector = MenuCollector(window_seconds=60.0, per_window=1)
    menus = _menus([0, 1])
    bad = (np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="same"):
        collector.add(campaign_ids=IDS, time=1.0, campaign=menus["campaign"], terms=lambda k: bad)
    assert len(collector) == 0
    # Nothing was counted either: the next batch keeps the rows the refused one would have.
    collector.add(campaign_ids=IDS, time=1.0, **menus)
    np.testing.assert_array_equal(collector.take().weight, [1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        MenuCollector(window_seconds=0.0)


def test_only_the_menus_kept_are_priced() -> None:
    collector = MenuCollector(window_seconds=60.0, per_window=2)
    asked: list[int] = []

    def terms(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(len(keep))
        return np.ones((len(keep), 2)), np.ones((len(keep), 2))

    collector.add(campaign_ids=IDS, time=0.0, campaign=np.zeros(10, np.int64), terms=terms)
    collector.take()
    collector.add(campaign_ids=IDS, time=60.0, campaign=np.zeros(10, np.int64), terms=terms)
    # The first window kept all ten (its stride could only double after the batch); the next,
    # sized on those ten, keeps every fifth.
    assert asked == [10, 2]
