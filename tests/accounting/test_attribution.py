"""Tests of last-click attribution against a brute-force reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.accounting import attribution as attribution_module
from quanzhan.accounting.attribution import AttributedOrders, Attribution
from quanzhan.domain import N_SURFACES

# --- a brute-force reference -------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    click_id: int
    user: int
    item: int
    campaign: int
    surface: int
    time: float


def reference(
    clicks: list[Click], orders: list[tuple[int, int, float]], window: float
) -> list[tuple[int, int, int, float]]:
    """For each order scan every click: (campaign, click_id, surface, click_time).

    Among clicks with equal time and id (one click recorded twice), the later record wins.
    """
    out = []
    for user, item, t in orders:
        best: Click | None = None
        for c in clicks:
            if c.user != user or c.item != item or not (t - window <= c.time <= t):
                continue
            if best is None or (c.time, c.click_id) >= (best.time, best.click_id):
                best = c
        if best is None:
            out.append((-1, -1, -1, math.nan))
        else:
            out.append((best.campaign, best.click_id, best.surface, best.time))
    return out


def as_tuples(result: AttributedOrders) -> list[tuple[int, int, int, float]]:
    return list(
        zip(
            result.campaign.tolist(),
            result.click_id.tolist(),
            result.surface.tolist(),
            result.click_time.tolist(),
            strict=True,
        )
    )


def same(got: list[tuple[int, int, int, float]], want: list[tuple[int, int, int, float]]) -> bool:
    def key(row: tuple[int, int, int, float]) -> tuple[int, int, int, float | None]:
        return (row[0], row[1], row[2], None if math.isnan(row[3]) else row[3])

    return [key(r) for r in got] == [key(r) for r in want]


def record(attribution: Attribution, clicks: list[Click]) -> None:
    attribution.record_clicks(
        click_id=np.array([c.click_id for c in clicks], dtype=np.int64),
        user=np.array([c.user for c in clicks], dtype=np.int64),
        item=np.array([c.item for c in clicks], dtype=np.int64),
        campaign=np.array([c.campaign for c in clicks], dtype=np.int64),
        surface=np.array([c.surface for c in clicks], dtype=np.int64),
        time=np.array([c.time for c in clicks], dtype=np.float64),
    )


def attribute(attribution: Attribution, orders: list[tuple[int, int, float]]) -> AttributedOrders:
    return attribution.attribute(
        user=np.array([o[0] for o in orders], dtype=np.int64),
        item=np.array([o[1] for o in orders], dtype=np.int64),
        time=np.array([o[2] for o in orders], dtype=np.float64),
    )


# --- strategies --------------------------------------------------------------------------------

small_ids = st.integers(min_value=0, max_value=3)
times = st.integers(min_value=0, max_value=30).map(float)


def clicks_strategy(max_size: int = 15) -> st.SearchStrategy[list[Click]]:
    return st.lists(
        st.builds(
            Click,
            click_id=st.integers(min_value=0, max_value=50),
            user=small_ids,
            item=small_ids,
            campaign=st.integers(min_value=0, max_value=9),
            surface=st.integers(min_value=0, max_value=N_SURFACES - 1),
            time=times,
        ),
        max_size=max_size,
    )


orders_strategy = st.lists(st.tuples(small_ids, small_ids, times), max_size=15)


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    window=st.integers(min_value=1, max_value=12).map(float),
    steps=st.lists(st.tuples(clicks_strategy(), orders_strategy), min_size=1, max_size=4),
)
def test_matches_brute_force(
    window: float, steps: list[tuple[list[Click], list[tuple[int, int, float]]]]
) -> None:
    """Record and attribute interleaved, so both the first sort and later merges are checked."""
    attribution = Attribution(window_seconds=window)
    seen: list[Click] = []
    for clicks, orders in steps:
        record(attribution, clicks)
        seen += clicks
        assert same(as_tuples(attribute(attribution, orders)), reference(seen, orders, window))
    assert attribution.n_clicks == len(seen)


@settings(max_examples=100, deadline=None)
@given(
    clicks=clicks_strategy(30),
    orders=orders_strategy,
    cut=times,
)
def test_prune_equals_never_having_recorded_old_clicks(
    clicks: list[Click], orders: list[tuple[int, int, float]], cut: float
) -> None:
    pruned = Attribution(window_seconds=10.0)
    half = len(clicks) // 2
    record(pruned, clicks[:half])
    attribute(pruned, [])  # sort the first half; the second half stays pending
    record(pruned, clicks[half:])
    pruned.prune(before_time=cut)
    kept = [c for c in clicks if c.time >= cut]
    assert pruned.n_clicks == len(kept)
    assert same(as_tuples(attribute(pruned, orders)), reference(kept, orders, 10.0))


@pytest.mark.parametrize("lexsort", [False, True])
def test_matches_brute_force_on_large_random_data(
    lexsort: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of clicks with ids near 10**7 and near the int64 limit, in several chunks.

    ``lexsort`` forces the sort used for very large batches on these small ones.
    """
    if lexsort:
        monkeypatch.setattr(attribution_module, "_RANK_SORT_MAX", 0)
    rng = np.random.default_rng(11)
    n, k, window = 6_000, 800, 50.0
    base = np.array([10**7, 2**62])[rng.integers(0, 2, n)]
    user = base + rng.integers(0, 20, n)
    item = base[::-1] + rng.integers(0, 20, n)
    time = rng.integers(0, 400, n).astype(np.float64)
    click_id = rng.permutation(n).astype(np.int64)
    campaign = rng.integers(0, 100, n)
    surface = rng.integers(0, N_SURFACES, n)
    attribution = Attribution(window_seconds=window)
    for part in np.array_split(rng.permutation(n), 5):
        attribution.record_clicks(
            click_id=click_id[part],
            user=user[part],
            item=item[part],
            campaign=campaign[part],
            surface=surface[part],
            time=time[part],
        )
        attribution.attribute(user=user[:1], item=item[:1], time=time[:1])
    pick = rng.integers(0, n, k)
    o_user, o_item = user[pick], item[pick]
    o_time = time[pick] + rng.integers(-5, 80, k)
    got = attribution.attribute(user=o_user, item=o_item, time=o_time)
    want = numpy_reference(user, item, time, click_id, o_user, o_item, o_time, window)
    np.testing.assert_array_equal(got.click_id, want)
    hit = want >= 0
    assert hit.mean() > 0.3
    by_id = np.argsort(click_id)
    np.testing.assert_array_equal(got.campaign[hit], campaign[by_id][want[hit]])
    np.testing.assert_array_equal(got.click_time[hit], time[by_id][want[hit]])
    assert np.all(np.isnan(got.click_time[~hit]))


def numpy_reference(
    user: NDArray[np.int64],
    item: NDArray[np.int64],
    time: NDArray[np.float64],
    click_id: NDArray[np.int64],
    o_user: NDArray[np.int64],
    o_item: NDArray[np.int64],
    o_time: NDArray[np.float64],
    window: float,
) -> NDArray[np.int64]:
    """Per order, scan all clicks (vectorised over clicks only)."""
    out = np.full(len(o_user), -1, dtype=np.int64)
    for j in range(len(o_user)):
        ok = (user == o_user[j]) & (item == o_item[j]) & (time <= o_time[j])
        ok &= time >= o_time[j] - window
        if ok.any():
            idx = np.flatnonzero(ok)
            best = idx[np.lexsort((click_id[idx], time[idx]))[-1]]
            out[j] = click_id[best]
    return out


# --- examples ----------------------------------------------------------------------------------


def one_click(attribution: Attribution, *, click_id: int, time: float, campaign: int = 0) -> None:
    attribution.record_clicks(
        click_id=[click_id], user=[1], item=[2], campaign=[campaign], surface=[3], time=[time]
    )


def test_window_boundaries() -> None:
    attribution = Attribution(window_seconds=10.0)
    one_click(attribution, click_id=5, time=100.0)
    result = attribution.attribute(
        user=[1, 1, 1, 1, 1], item=[2, 2, 2, 2, 2], time=[110.0, 100.0, 110.5, 99.999, 105.0]
    )
    # exactly the window before counts; the same instant counts; a later click never does
    assert result.click_id.tolist() == [5, 5, -1, -1, 5]
    assert result.surface.tolist() == [3, 3, -1, -1, 3]
    assert result.is_organic.tolist() == [False, False, True, True, False]


def test_the_last_click_wins_and_ties_go_to_the_larger_id() -> None:
    attribution = Attribution(window_seconds=100.0)
    one_click(attribution, click_id=9, time=50.0, campaign=1)
    one_click(attribution, click_id=4, time=50.0, campaign=2)
    one_click(attribution, click_id=20, time=40.0, campaign=3)
    one_click(attribution, click_id=30, time=60.0, campaign=4)
    result = attribution.attribute(user=[1, 1, 1], item=[2, 2, 2], time=[55.0, 45.0, 60.0])
    assert result.click_id.tolist() == [9, 20, 30]
    assert result.campaign.tolist() == [1, 3, 4]


@pytest.mark.parametrize("sort_between", [False, True])
def test_a_click_recorded_twice_resolves_to_the_later_record(sort_between: bool) -> None:
    attribution = Attribution(window_seconds=10.0)
    for campaign in (1, 2, 3):
        one_click(attribution, click_id=7, time=5.0, campaign=campaign)
        if sort_between:  # each record becomes its own sorted run, then runs are merged
            attribution.attribute(user=[1], item=[2], time=[5.0])
    assert attribution.attribute(user=[1], item=[2], time=[6.0]).campaign.tolist() == [3]


def test_a_click_recorded_twice_resolves_to_the_later_record_across_unmerged_runs() -> None:
    attribution = Attribution(window_seconds=10.0)
    attribution.record_clicks(  # a large first run, so the second one is not merged into it
        click_id=[7, 100, 101, 102, 103],
        user=[1, 5, 5, 5, 5],
        item=[2, 2, 2, 2, 2],
        campaign=[1, 0, 0, 0, 0],
        surface=[0, 0, 0, 0, 0],
        time=[5.0, 1.0, 2.0, 3.0, 4.0],
    )
    attribution.attribute(user=[1], item=[2], time=[5.0])
    one_click(attribution, click_id=7, time=5.0, campaign=2)
    assert attribution.attribute(user=[1], item=[2], time=[6.0]).campaign.tolist() == [2]


def test_a_later_click_does_not_shadow_an_earlier_one() -> None:
    attribution = Attribution(window_seconds=10.0)
    one_click(attribution, click_id=1, time=0.0)
    one_click(attribution, click_id=2, time=20.0)
    result = attribution.attribute(user=[1], item=[2], time=[5.0])
    assert result.click_id.tolist() == [1]


def test_other_users_and_items_do_not_match() -> None:
    attribution = Attribution(window_seconds=10.0)
    one_click(attribution, click_id=1, time=0.0)
    result = attribution.attribute(user=[2, 1, 0], item=[2, 1, 2], time=[1.0, 1.0, 1.0])
    assert result.is_organic.all()


def test_no_clicks_and_no_orders() -> None:
    attribution = Attribution(window_seconds=1.0)
    result = attribution.attribute(user=[3], item=[4], time=[5.0])
    assert result.campaign.tolist() == [-1]
    assert math.isnan(result.click_time[0])
    one_click(attribution, click_id=1, time=0.0)
    empty = attribution.attribute(user=[], item=[], time=[])
    assert len(empty) == 0
    assert empty.campaign.dtype == np.int32 and empty.surface.dtype == np.int8
    assert empty.click_id.dtype == np.int64 and empty.click_time.dtype == np.float64


def test_prune_keeps_clicks_at_the_cut() -> None:
    attribution = Attribution(window_seconds=100.0)
    one_click(attribution, click_id=1, time=10.0)
    one_click(attribution, click_id=2, time=20.0)
    attribution.prune(before_time=20.0)
    assert attribution.n_clicks == 1
    assert attribution.attribute(user=[1, 1], item=[2, 2], time=[15.0, 25.0]).click_id.tolist() == [
        -1,
        2,
    ]
    with pytest.raises(ValueError):
        attribution.prune(before_time=math.nan)


def test_recorded_clicks_do_not_alias_the_callers_arrays() -> None:
    attribution = Attribution(window_seconds=10.0)
    time = np.array([0.0])
    ids = np.array([1], dtype=np.int64)
    attribution.record_clicks(
        click_id=ids, user=[1], item=[2], campaign=[0], surface=[0], time=time
    )
    time[0], ids[0] = 1000.0, 99
    assert attribution.attribute(user=[1], item=[2], time=[5.0]).click_id.tolist() == [1]


@pytest.mark.parametrize("window", [0.0, -1.0, math.nan, math.inf])
def test_window_must_be_positive_and_finite(window: float) -> None:
    with pytest.raises(ValueError):
        Attribution(window_seconds=window)


VALID_CLICK: dict[str, object] = {
    "click_id": [1, 2],
    "user": [1, 1],
    "item": [2, 2],
    "campaign": [0, 1],
    "surface": [0, 1],
    "time": [0.0, 1.0],
}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("time", [0.0]),
        ("user", [-1, 1]),
        ("item", [1.0, 2.0]),
        ("click_id", [-1, 2]),
        ("campaign", [-3, 0]),
        ("surface", [0, N_SURFACES]),
        ("time", [0.0, math.nan]),
        ("user", [[1, 1]]),
    ],
)
def test_invalid_clicks_raise_and_record_nothing(column: str, value: object) -> None:
    attribution = Attribution(window_seconds=10.0)
    with pytest.raises(ValueError):
        attribution.record_clicks(**{**VALID_CLICK, column: value})
    assert attribution.n_clicks == 0


@pytest.mark.parametrize(
    "orders",
    [
        {"user": [1], "item": [2, 3], "time": [0.0]},
        {"user": [-1], "item": [2], "time": [0.0]},
        {"user": [1], "item": [2], "time": [math.inf]},
    ],
)
def test_invalid_orders_raise(orders: dict[str, list[float]]) -> None:
    attribution = Attribution(window_seconds=10.0)
    with pytest.raises(ValueError):
        attribution.attribute(**orders)
