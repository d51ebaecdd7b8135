"""``ProportionalPacing`` and the ``TrafficForecast`` that plans its spend along the day."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from quanzhan.bidding import pacing
from quanzhan.bidding.controller import CampaignState
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.pacing import ProportionalPacing

DAY = 86_400.0
LOW, HIGH = pacing._BOUNDS
STEP = pacing._STEP


def _state(
    *,
    fraction: float,
    spend: list[float],
    gmv: list[float],
    budget: list[float],
    target: list[float],
) -> CampaignState:
    return CampaignState(
        day_fraction=fraction,
        spend=np.array(spend, dtype=np.float64),
        gmv=np.array(gmv, dtype=np.float64),
        budget=np.array(budget, dtype=np.float64),
        target_roi=np.array(target, dtype=np.float64),
    )


def _after_one_tick(state: CampaignState, gain: float = 0.6) -> NDArray[np.float64]:
    controller = ProportionalPacing(target_roi=state.target_roi, gain=gain)
    before = controller.multipliers()
    controller.update(state)
    ratio: NDArray[np.float64] = controller.multipliers() / before
    return ratio


def test_starts_at_break_even_on_the_target() -> None:
    target = np.array([1.5, 2.0, 4.0])
    np.testing.assert_allclose(
        ProportionalPacing(target_roi=target, gain=0.5).multipliers(), 1 / target
    )


def test_under_spending_profitable_campaign_bids_up() -> None:
    # Half the day gone, a fifth of the budget spent, ROI twice the target.
    ratio = _after_one_tick(
        _state(fraction=0.5, spend=[20.0], gmv=[160.0], budget=[100.0], target=[4.0])
    )
    assert ratio[0] > 1.0


def test_campaign_below_its_target_roi_bids_down_even_when_under_spending() -> None:
    ratio = _after_one_tick(
        _state(fraction=0.5, spend=[20.0], gmv=[30.0], budget=[100.0], target=[3.0])
    )
    assert ratio[0] < 1.0


def test_over_pacing_campaign_bids_down_even_when_profitable() -> None:
    # A quarter of the day gone, 60% of the budget spent, ROI twice the target.
    ratio = _after_one_tick(
        _state(fraction=0.25, spend=[60.0], gmv=[360.0], budget=[100.0], target=[3.0])
    )
    assert ratio[0] < 1.0


def test_on_plan_and_on_target_holds_still() -> None:
    ratio = _after_one_tick(
        _state(fraction=0.4, spend=[40.0], gmv=[120.0], budget=[100.0], target=[3.0])
    )
    assert ratio[0] == pytest.approx(1.0, abs=1e-12)


def test_campaigns_move_independently() -> None:
    state = _state(
        fraction=0.5,
        spend=[20.0, 20.0, 90.0],
        gmv=[160.0, 30.0, 540.0],
        budget=[100.0, 100.0, 100.0],
        target=[4.0, 3.0, 3.0],
    )
    ratio = _after_one_tick(state)
    assert ratio[0] > 1.0 > ratio[1]
    assert ratio[2] < 1.0
    alone = _after_one_tick(
        _state(fraction=0.5, spend=[20.0], gmv=[160.0], budget=[100.0], target=[4.0])
    )
    assert ratio[0] == pytest.approx(alone[0], rel=1e-12)


def test_the_move_is_proportional_to_the_gain_until_it_is_bounded() -> None:
    # A small ROI shortfall while under plan: the ROI error decides.
    small = _state(fraction=0.5, spend=[20.0], gmv=[57.0], budget=[100.0], target=[3.0])
    weak, strong = _after_one_tick(small, gain=0.1), _after_one_tick(small, gain=0.2)
    assert math.log(strong[0]) == pytest.approx(2 * math.log(weak[0]), rel=1e-9)
    # Far from target, the move saturates at the per-tick bound whatever the error.
    bad = _state(fraction=0.5, spend=[20.0], gmv=[1.0], budget=[100.0], target=[3.0])
    worse = _state(fraction=0.5, spend=[20.0], gmv=[0.0], budget=[100.0], target=[30.0])
    assert _after_one_tick(bad, gain=50.0)[0] == pytest.approx(_after_one_tick(worse, gain=50.0)[0])
    assert _after_one_tick(bad, gain=50.0)[0] == pytest.approx(math.exp(-STEP))
    great = _state(fraction=0.9, spend=[1.0], gmv=[1e6], budget=[100.0], target=[1.0])
    assert _after_one_tick(great, gain=50.0)[0] == pytest.approx(math.exp(STEP))


def test_the_plan_decides_what_under_spending_means() -> None:
    """Forty percent spent at midday is behind a straight line, ahead of a plan that expects
    most of the traffic in the evening."""
    state = _state(fraction=0.5, spend=[40.0], gmv=[400.0], budget=[100.0], target=[2.0])
    linear = ProportionalPacing(target_roi=state.target_roi, gain=0.6)
    evening = ProportionalPacing(target_roi=state.target_roi, gain=0.6, plan=lambda f: f**3)
    start = linear.multipliers()
    linear.update(state)
    evening.update(state)
    assert linear.multipliers()[0] > start[0] > evening.multipliers()[0]


def test_a_new_day_keeps_the_multipliers() -> None:
    controller = ProportionalPacing(target_roi=np.array([2.0, 5.0]), gain=0.6)
    controller.update(
        _state(
            fraction=0.5,
            spend=[10.0, 90.0],
            gmv=[100.0, 50.0],
            budget=[100.0, 100.0],
            target=[2.0, 5.0],
        )
    )
    learned = controller.multipliers()
    controller.start_day()
    np.testing.assert_array_equal(controller.multipliers(), learned)
    learned[:] = 123.0  # a copy: the caller cannot move the controller
    assert not np.any(controller.multipliers() == 123.0)


@pytest.mark.parametrize("target", [[2.0, 0.0], [-1.0], [3.0, -0.5, 2.0]])
def test_non_positive_targets_are_refused(target: list[float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        ProportionalPacing(target_roi=np.array(target), gain=0.6)


def test_a_nan_target_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProportionalPacing(target_roi=np.array([2.0, math.nan]), gain=0.6)


@st.composite
def tick_sequences(draw: st.DrawFn) -> tuple[NDArray[np.float64], list[CampaignState], float]:
    n = draw(st.integers(1, 6))
    target = draw(arrays(np.float64, (n,), elements=st.floats(0.5, 20.0)))
    budget = draw(arrays(np.float64, (n,), elements=st.floats(0.5, 1e4)))
    states = []
    for _ in range(draw(st.integers(1, 12))):
        spend = budget * draw(arrays(np.float64, (n,), elements=st.floats(0.0, 1.5)))
        roi = draw(arrays(np.float64, (n,), elements=st.floats(0.0, 100.0)))
        states.append(
            CampaignState(
                day_fraction=draw(st.floats(0.0, 1.0)),
                spend=spend,
                gmv=spend * roi + draw(arrays(np.float64, (n,), elements=st.floats(0.0, 1e3))),
                budget=budget,
                target_roi=target,
            )
        )
    return target, states, draw(st.floats(0.01, 100.0))


@settings(max_examples=200, deadline=None)
@given(tick_sequences())
def test_multipliers_stay_bounded_and_move_at_most_a_step(
    case: tuple[NDArray[np.float64], list[CampaignState], float],
) -> None:
    target, states, gain = case
    controller = ProportionalPacing(target_roi=target, gain=gain)
    for state in states:
        before = controller.multipliers()
        controller.update(state)
        after = controller.multipliers()
        assert np.all(np.isfinite(after))
        assert np.all((after >= LOW) & (after <= HIGH))
        assert np.all(np.abs(np.log(after / before)) <= STEP + 1e-12)


def test_forecast_is_a_straight_line_before_a_full_day() -> None:
    forecast = TrafficForecast()
    fractions = np.linspace(0.0, 1.0, 49)
    np.testing.assert_allclose(
        [forecast.share_elapsed(f) for f in fractions], fractions, atol=1e-12
    )
    # Traffic seen today counts only once the day is complete.
    forecast.observe(np.full(1000, 20 * 3600.0))
    np.testing.assert_allclose(
        [forecast.share_elapsed(f) for f in fractions], fractions, atol=1e-12
    )
    # A day without any traffic teaches nothing.
    empty = TrafficForecast()
    empty.end_day()
    np.testing.assert_allclose([empty.share_elapsed(f) for f in fractions], fractions, atol=1e-12)


def _evening(day: int, n: int = 5000, seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    out: NDArray[np.float64] = day * DAY + rng.uniform(18 * 3600, DAY, n)
    return out


def test_forecast_learns_that_traffic_comes_in_the_evening() -> None:
    forecast = TrafficForecast()
    forecast.observe(_evening(0))
    forecast.end_day()
    after_one = forecast.share_elapsed(0.5)
    assert after_one < 0.25  # a straight line says 0.5
    assert forecast.share_elapsed(0.0) == 0.0
    assert forecast.share_elapsed(1.0) == pytest.approx(1.0)
    assert forecast.share_elapsed(0.75) < forecast.share_elapsed(0.9) < 1.0
    # More evening days leave less room for the flat prior; an empty day changes nothing.
    for day in (1, 2, 3):
        forecast.observe(_evening(day, seed=day))
        forecast.end_day()
    after_four = forecast.share_elapsed(0.5)
    assert after_four < after_one
    forecast.end_day()
    assert forecast.share_elapsed(0.5) == pytest.approx(after_four)


def test_forecast_reads_the_time_of_day_on_any_day() -> None:
    first, later = TrafficForecast(), TrafficForecast()
    first.observe(_evening(0))
    later.observe(_evening(5))
    first.end_day()
    later.end_day()
    for f in np.linspace(0, 1, 25):
        assert first.share_elapsed(f) == pytest.approx(later.share_elapsed(f))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(0.0, 3 * DAY, exclude_max=True), max_size=40), min_size=1, max_size=3
    ),
    st.lists(st.floats(-0.5, 1.5), min_size=2, max_size=10),
)
def test_forecast_is_a_cumulative_share(days: list[list[float]], probes: list[float]) -> None:
    forecast = TrafficForecast()
    for times in days:
        forecast.observe(np.array(times, dtype=np.float64))
        forecast.end_day()
    assert forecast.share_elapsed(0.0) == 0.0
    assert forecast.share_elapsed(1.0) == pytest.approx(1.0)
    probes = sorted(probes)
    shares = [forecast.share_elapsed(f) for f in probes]
    assert all(0.0 <= s <= 1.0 + 1e-12 for s in shares)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(shares))


def test_a_logged_day_counts_as_an_observed_one() -> None:
    times = _evening(0)
    observed, logged = TrafficForecast(), TrafficForecast()
    observed.observe(times)
    observed.end_day()
    logged.add_day(np.bincount((times // 3600).astype(np.int64), minlength=24).astype(np.float64))
    for f in np.linspace(0, 1, 49):
        assert logged.share_elapsed(f) == pytest.approx(observed.share_elapsed(f))
    # Only the shape of a day matters, not its volume.
    scaled = TrafficForecast()
    scaled.add_day(10.0 * np.bincount((times // 3600).astype(np.int64), minlength=24))
    assert scaled.share_elapsed(0.8) == pytest.approx(logged.share_elapsed(0.8))


@pytest.mark.parametrize(
    "hourly", [np.ones(23), np.ones(25), np.ones((2, 24)), np.r_[np.ones(23), -1.0]]
)
def test_a_logged_day_must_be_24_non_negative_counts(hourly: NDArray[np.float64]) -> None:
    forecast = TrafficForecast()
    with pytest.raises(ValueError):
        forecast.add_day(hourly)
    assert forecast.share_elapsed(0.5) == pytest.approx(0.5)


def test_an_idle_campaign_bids_up_to_find_traffic() -> None:
    """No spend and no GMV: nothing to hold against the target, so pace alone moves it."""
    controller = ProportionalPacing(target_roi=np.array([3.0]), gain=0.6)
    start = controller.multipliers()[0]
    for fraction in (0.25, 0.5, 0.9):
        controller.update(
            CampaignState(
                day_fraction=fraction,
                spend=np.zeros(1),
                gmv=np.zeros(1),
                budget=np.array([100.0]),
                target_roi=np.array([3.0]),
            )
        )
    assert controller.multipliers()[0] > start
