"""``ProportionalPacing`` (a ``Policy``) and the ``TrafficForecast`` that plans its spend along
the day."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from quanzhan.bidding import pacing
from quanzhan.bidding.calendar import Promotion
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.pacing import ProportionalPacing
from quanzhan.bidding.policy import CampaignSpec, Observation
from quanzhan.domain import RoiBasis

DAY = 86_400.0
LOW, HIGH = pacing._BOUNDS
STEP = pacing._STEP
FULL, AD_ONLY = int(RoiBasis.FULL_SITE), int(RoiBasis.AD_ONLY)


def _spec(
    *, budget: list[float], target: list[float], basis: list[int] | None = None
) -> CampaignSpec:
    return CampaignSpec(
        budget=np.array(budget, dtype=np.float64),
        target_roi=np.array(target, dtype=np.float64),
        roi_basis=np.array(basis if basis is not None else [FULL] * len(budget), dtype=np.int8),
    )


def _observation(
    *,
    share: float,
    spend: list[float],
    gmv: list[float],
    organic: list[float] | None = None,
    realized: list[float] | None = None,
) -> Observation:
    """A tick at which ``share`` of the day's traffic is past (the plan), the forecast being a
    straight line; ``gmv`` is the engine's predicted GMV of the clicks bought."""
    n = len(spend)
    zeros = np.zeros(n)
    return Observation(
        now=share * DAY,
        day_fraction=share,
        planned_share=share,
        spend=np.array(spend, dtype=np.float64),
        gmv_realized=np.array(realized, dtype=np.float64) if realized is not None else zeros,
        gmv_predicted=np.array(gmv, dtype=np.float64),
        orders_realized=zeros.copy(),
        orders_arrived=zeros.copy(),
        gmv_organic=np.array(organic, dtype=np.float64) if organic is not None else zeros.copy(),
        clicks=zeros.copy(),
    )


def _controller(spec: CampaignSpec, gain: float = 0.6) -> ProportionalPacing:
    """A controller steering since midnight: its first update came then, nothing spent."""
    controller = ProportionalPacing(gain=gain)
    controller.reset(campaigns=spec, seed=0)
    nothing = [0.0] * len(spec)
    before = controller.multipliers()
    controller.update(_observation(share=0.0, spend=nothing, gmv=nothing))
    np.testing.assert_array_equal(controller.multipliers(), before)
    return controller


def _after_one_tick(
    spec: CampaignSpec, observation: Observation, gain: float = 0.6
) -> NDArray[np.float64]:
    """The multipliers after one update over those before it."""
    controller = _controller(spec, gain)
    before = controller.multipliers()
    controller.update(observation)
    ratio: NDArray[np.float64] = controller.multipliers() / before
    return ratio


def test_starts_at_break_even_on_the_target() -> None:
    target = [1.5, 2.0, 4.0]
    controller = _controller(_spec(budget=[10.0, 10.0, 10.0], target=target), gain=0.5)
    np.testing.assert_allclose(controller.multipliers(), 1 / np.array(target))


def test_under_spending_profitable_campaign_bids_up() -> None:
    # Half the day gone, a fifth of the budget spent, ROI twice the target.
    ratio = _after_one_tick(
        _spec(budget=[100.0], target=[4.0]),
        _observation(share=0.5, spend=[20.0], gmv=[160.0]),
    )
    assert ratio[0] > 1.0


def test_campaign_below_its_target_roi_bids_down_even_when_under_spending() -> None:
    ratio = _after_one_tick(
        _spec(budget=[100.0], target=[3.0]),
        _observation(share=0.5, spend=[20.0], gmv=[30.0]),
    )
    assert ratio[0] < 1.0


def test_over_pacing_campaign_bids_down_even_when_profitable() -> None:
    # A quarter of the day gone, 60% of the budget spent, ROI twice the target.
    ratio = _after_one_tick(
        _spec(budget=[100.0], target=[3.0]),
        _observation(share=0.25, spend=[60.0], gmv=[360.0]),
    )
    assert ratio[0] < 1.0


def test_a_campaign_that_has_spent_its_budget_bids_down_however_profitable() -> None:
    for share in (0.1, 0.5, 0.99, 1.0):
        ratio = _after_one_tick(
            _spec(budget=[100.0], target=[2.0]),
            _observation(share=share, spend=[100.0], gmv=[5000.0]),
        )
        assert ratio[0] <= 1.0


def test_on_plan_and_on_target_holds_still() -> None:
    ratio = _after_one_tick(
        _spec(budget=[100.0], target=[3.0]),
        _observation(share=0.4, spend=[40.0], gmv=[120.0]),
    )
    assert ratio[0] == pytest.approx(1.0, abs=1e-12)


def test_organic_gmv_counts_towards_roi_on_the_full_site_basis_only() -> None:
    """Ad GMV at two thirds of the target: below target on the ad-only basis, but the item's
    organic GMV lifts the full-site campaign over it."""
    spec = _spec(budget=[100.0, 100.0], target=[3.0, 3.0], basis=[FULL, AD_ONLY])
    observation = _observation(
        share=0.5, spend=[20.0, 20.0], gmv=[40.0, 40.0], organic=[200.0, 200.0]
    )
    ratio = _after_one_tick(spec, observation)
    assert ratio[0] > 1.0 > ratio[1]
    # Without the organic GMV both are below target and move alike.
    bare = _after_one_tick(spec, _observation(share=0.5, spend=[20.0, 20.0], gmv=[40.0, 40.0]))
    assert bare[0] < 1.0
    assert bare[0] == pytest.approx(bare[1], rel=1e-12)
    assert ratio[1] == pytest.approx(bare[1], rel=1e-12)


def test_roi_is_judged_on_predicted_not_realized_gmv() -> None:
    """Orders arrive late: the controller steers on the predicted GMV of the clicks bought."""
    spec = _spec(budget=[100.0], target=[3.0])
    late = _observation(share=0.5, spend=[20.0], gmv=[160.0], realized=[0.0])
    arrived = _observation(share=0.5, spend=[20.0], gmv=[160.0], realized=[160.0])
    assert _after_one_tick(spec, late)[0] == _after_one_tick(spec, arrived)[0] > 1.0


def test_campaigns_move_independently() -> None:
    spec = _spec(budget=[100.0, 100.0, 100.0], target=[4.0, 3.0, 3.0])
    ratio = _after_one_tick(
        spec, _observation(share=0.5, spend=[20.0, 20.0, 90.0], gmv=[160.0, 30.0, 540.0])
    )
    assert ratio[0] > 1.0 > ratio[1]
    assert ratio[2] < 1.0
    alone = _after_one_tick(
        _spec(budget=[100.0], target=[4.0]), _observation(share=0.5, spend=[20.0], gmv=[160.0])
    )
    assert ratio[0] == pytest.approx(alone[0], rel=1e-12)


def test_the_move_is_proportional_to_the_gain_until_it_is_bounded() -> None:
    # A small ROI shortfall while under plan: the ROI error decides.
    spec = _spec(budget=[100.0], target=[3.0])
    small = _observation(share=0.5, spend=[20.0], gmv=[57.0])
    weak, strong = _after_one_tick(spec, small, gain=0.1), _after_one_tick(spec, small, gain=0.2)
    assert weak[0] < 1.0
    assert math.log(strong[0]) == pytest.approx(2 * math.log(weak[0]), rel=1e-9)
    # Far from target, the move saturates at the per-tick bound whatever the error.
    bad = _after_one_tick(spec, _observation(share=0.5, spend=[20.0], gmv=[1.0]), gain=50.0)
    worse = _after_one_tick(
        _spec(budget=[100.0], target=[30.0]),
        _observation(share=0.5, spend=[20.0], gmv=[0.0]),
        gain=50.0,
    )
    assert bad[0] == pytest.approx(worse[0])
    assert bad[0] == pytest.approx(math.exp(-STEP))
    great = _after_one_tick(
        _spec(budget=[100.0], target=[1.0]),
        _observation(share=0.9, spend=[1.0], gmv=[1e6]),
        gain=50.0,
    )
    assert great[0] == pytest.approx(math.exp(STEP))


def test_the_plan_decides_what_under_spending_means() -> None:
    """Forty percent spent at midday is behind a straight line, ahead of a plan that expects
    most of the traffic in the evening (an eighth of it by midday)."""
    spec = _spec(budget=[100.0], target=[2.0])
    linear = _observation(share=0.5, spend=[40.0], gmv=[400.0])
    evening = Observation(
        now=linear.now,
        day_fraction=linear.day_fraction,
        planned_share=0.5**3,
        spend=linear.spend,
        gmv_realized=linear.gmv_realized,
        gmv_predicted=linear.gmv_predicted,
        orders_realized=linear.orders_realized,
        orders_arrived=linear.orders_arrived,
        gmv_organic=linear.gmv_organic,
        clicks=linear.clicks,
    )
    assert _after_one_tick(spec, linear)[0] > 1.0 > _after_one_tick(spec, evening)[0]


def test_a_controller_started_at_noon_is_not_behind_on_the_morning() -> None:
    """A campaign created at noon (the service starts a controller then) has spent nothing: the
    morning's half of the budget is no plan it fell behind, so it holds still where one steering
    since midnight bids up; later it keeps pace with what is left of the budget over what is left
    of the day, from the spend it found."""
    spec = _spec(budget=[100.0, 100.0], target=[2.0, 2.0])
    joined = ProportionalPacing()
    joined.reset(campaigns=spec, seed=0)
    start = joined.multipliers()
    joined.update(_observation(share=0.5, spend=[0.0, 30.0], gmv=[0.0, 60.0]))
    np.testing.assert_array_equal(joined.multipliers(), start)
    assert np.all(
        _after_one_tick(spec, _observation(share=0.5, spend=[0.0, 0.0], gmv=[0.0, 0.0])) > 1
    )
    # Three quarters of the day: half of what was left is the plan (50, and 30 + 35 = 65).
    before = joined.multipliers()
    joined.update(_observation(share=0.75, spend=[50.0, 65.0], gmv=[100.0, 130.0]))
    np.testing.assert_allclose(joined.multipliers(), before, rtol=1e-12)
    joined.start_day()  # a whole day from midnight next
    joined.update(_observation(share=0.5, spend=[10.0, 10.0], gmv=[40.0, 40.0]))
    assert np.all(joined.multipliers() > before)


def test_a_controller_pickled_before_it_knew_a_days_start_steers_from_midnight() -> None:
    controller = _controller(_spec(budget=[100.0], target=[2.0]))
    for name in ("_observed", "_plan_from"):
        del controller.__dict__[name]
    restored = pickle.loads(pickle.dumps(controller))
    twin = _controller(_spec(budget=[100.0], target=[2.0]))
    for policy in (restored, twin):
        policy.update(_observation(share=0.5, spend=[10.0], gmv=[40.0]))
    assert restored.multipliers()[0] == twin.multipliers()[0] > 1 / 2.0


def test_a_new_day_keeps_the_multipliers() -> None:
    controller = _controller(_spec(budget=[100.0, 100.0], target=[2.0, 5.0]))
    start = controller.multipliers()
    controller.update(_observation(share=0.5, spend=[10.0, 90.0], gmv=[100.0, 50.0]))
    learned = controller.multipliers()
    assert not np.allclose(learned, start)
    controller.start_day()
    np.testing.assert_array_equal(controller.multipliers(), learned)
    learned[:] = 123.0  # a copy: the caller cannot move the controller
    assert not np.any(controller.multipliers() == 123.0)


@pytest.mark.parametrize("target", [[2.0, 0.0], [-1.0], [3.0, -0.5, 2.0]])
def test_non_positive_targets_are_refused_at_reset(target: list[float]) -> None:
    controller = ProportionalPacing(gain=0.6)
    with pytest.raises(ValueError, match="positive"):
        controller.reset(campaigns=_spec(budget=[10.0] * len(target), target=target), seed=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nan_or_infinite_target_is_refused_at_reset(bad: float) -> None:
    controller = ProportionalPacing(gain=0.6)
    with pytest.raises(ValueError, match="positive"):
        controller.reset(campaigns=_spec(budget=[10.0, 10.0], target=[2.0, bad]), seed=0)


@pytest.mark.parametrize("gain", [0.0, -0.5, math.nan, math.inf])
def test_the_gain_must_be_finite_and_positive(gain: float) -> None:
    with pytest.raises(ValueError, match="gain"):
        ProportionalPacing(gain=gain)


def test_update_before_reset_is_refused() -> None:
    with pytest.raises(RuntimeError):
        ProportionalPacing().update(_observation(share=0.5, spend=[1.0], gmv=[1.0]))


@st.composite
def tick_sequences(draw: st.DrawFn) -> tuple[CampaignSpec, list[Observation], float]:
    n = draw(st.integers(1, 6))
    target = draw(arrays(np.float64, (n,), elements=st.floats(0.5, 20.0)))
    budget = draw(arrays(np.float64, (n,), elements=st.floats(0.5, 1e4)))
    basis = draw(arrays(np.int8, (n,), elements=st.sampled_from([FULL, AD_ONLY])))
    observations = []
    for _ in range(draw(st.integers(1, 12))):
        spend = budget * draw(arrays(np.float64, (n,), elements=st.floats(0.0, 1.5)))
        roi = draw(arrays(np.float64, (n,), elements=st.floats(0.0, 100.0)))
        share = draw(st.floats(0.0, 1.0))
        observations.append(
            Observation(
                now=share * DAY,
                day_fraction=share,
                planned_share=share,
                spend=spend,
                gmv_realized=np.zeros(n),
                gmv_predicted=spend * roi,
                orders_realized=np.zeros(n),
                orders_arrived=np.zeros(n),
                gmv_organic=draw(arrays(np.float64, (n,), elements=st.floats(0.0, 1e3))),
                clicks=np.zeros(n),
            )
        )
    spec = CampaignSpec(budget=budget, target_roi=target, roi_basis=basis)
    return spec, observations, draw(st.floats(0.01, 100.0))


@settings(max_examples=200, deadline=None)
@given(tick_sequences())
def test_multipliers_stay_bounded_and_move_at_most_a_step(
    case: tuple[CampaignSpec, list[Observation], float],
) -> None:
    spec, observations, gain = case
    controller = _controller(spec, gain)
    for observation in observations:
        before = controller.multipliers()
        controller.update(observation)
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


def test_a_promotions_hours_count_as_an_ordinary_days() -> None:
    """On a day whose evening the calendar announced at three times the traffic, the evening's
    page views count a third each: the forecast learns an ordinary day's shape, not the
    promotion's (which, learned, would be expected again the day after)."""
    rng = np.random.default_rng(3)
    ordinary = 2 * DAY + rng.uniform(0.0, DAY, 24_000)
    evening = ordinary[ordinary >= 2 * DAY + 18 * 3600]
    promoted = np.concatenate([ordinary, evening, evening])  # three times the evening's views
    calendar = (Promotion(day=2, start=0.75, end=1.0, traffic_factor=3.0),)
    plain, told, untold = TrafficForecast(), TrafficForecast(calendar), TrafficForecast()
    plain.observe(ordinary)
    told.observe(promoted)
    untold.observe(promoted)
    for forecast in (plain, told, untold):
        forecast.end_day()
    for f in np.linspace(0, 1, 25):
        assert told.share_elapsed(f) == pytest.approx(plain.share_elapsed(f))
    assert untold.share_elapsed(0.75) < plain.share_elapsed(0.75) - 0.1
    # A promotion of another day leaves the day's views as they are.
    elsewhere = TrafficForecast((Promotion(day=5, start=0.75, end=1.0, traffic_factor=3.0),))
    elsewhere.observe(promoted)
    elsewhere.end_day()
    assert elsewhere.share_elapsed(0.75) == pytest.approx(untold.share_elapsed(0.75))


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
    controller = _controller(_spec(budget=[100.0], target=[3.0]))
    start = controller.multipliers()[0]
    for share in (0.25, 0.5, 0.9):
        controller.update(_observation(share=share, spend=[0.0], gmv=[0.0]))
    assert controller.multipliers()[0] > start
