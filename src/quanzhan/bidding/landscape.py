"""The default policy: budget and ROI duals solved each tick from the auction landscape itself.

The per-campaign LP (``bidding.menu_lp``) has one optimal bid multiplier ``k``, the ratio at
which the budget or the ROI constraint binds. A feedback controller has to find it by trial,
and a campaign whose multiplier wins nothing learns nothing. This policy reads it off the
landscape instead: the engine logs every auction a campaign takes part in as a slot menu
(predicted value and price of each slot, the competitors' bids fixed), whether it won or not,
so at every tick the policy can say what any multiplier would buy. It then takes

- **the rest of the day's landscape**: today's auctions so far, plus all of yesterday's at
  ``(1 - planned share)`` of their weight, standing for the hours still to come (on the first
  day, the platform's last day before the policy took over, where the driver hands it over:
  ``recall_day``; for a campaign with none, the latest hour or so of today's, scaled to the
  rest of the day: on a platform's first day the models learn, and a campaign meets more
  auctions by the hour); on a day the platform's promotion calendar announces
  (``expect_promotions``), with the extra auctions its windows still ahead will bring;
- **the state of the day**: the budget still left, and the ROI slack already earned or owed:
  what today's auctions brought at the multipliers actually used, in expected value
  (``value - target x cost`` of the slots taken), the item's organic GMV on the full-site
  basis, and any deficit carried from earlier days;
- **the largest multiplier** whose GSP response (``bidding.response``) on that landscape
  spends at most the budget left and keeps the day's ROI at target: ``min(k_budget, k_roi)``,
  the two faces of the Lagrangian bid ``v (1 + mu) / (lambda + mu R)``. A campaign that no
  step pays for bids at most break-even (one click, on its own, at target), not just under
  its cheapest step: the landscape is a sample, and the auctions it missed are bought at any
  price under the bid.

Two calibrations keep the predicted landscape honest:

- *value*: realized orders over the orders the bought clicks should have brought by now under
  the learned delay distribution, read at a low quantile of its posterior under the prior the
  driver fits over every campaign's orders (``Observation.value_prior``,
  ``bidding.value_prior``; four pseudo-orders of no error until a driver hands one over, and
  the latest one handed over after that): a campaign's own orders are few and mostly noise,
  and how far to trust them is what every campaign's orders together show, while the low
  quantile keeps a margin against the auction's favouring the clicks whose value is
  over-predicted (the winner's curse). A campaign due hardly an order yet plans with a wider
  prior than the crowd's (``ThinEvidence``): its item is one the models know little of, and
  its error is larger than the campaigns with orders show;
- *spend*: money actually charged over the expected cost of the slots taken; it corrects the
  click model's position effects, which the menus inherit.

Within a day a campaign moves at most a factor ``e^0.5`` per tick, so one odd tick cannot throw
its bid far; at midnight it is planned afresh on yesterday's landscape and the whole budget.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.calendar import Promotion, traffic_factor
from quanzhan.bidding.policy import (
    JOINED_AFTER,
    CampaignSpec,
    MenuView,
    Observation,
    orders_to_date,
)
from quanzhan.bidding.response import Response, ResponseCurve, taken_slot
from quanzhan.bidding.step_book import OrderedSteps, StepBook, merge
from quanzhan.bidding.value_prior import NO_ERROR, ThinEvidence, posterior_quantile

_ROWS_PER_TICK = 12  # menu rows kept per campaign and tick; each stands for its share of them
_VALUE_QUANTILE = 0.2  # of a campaign's posterior value calibration: the one it plans with
# A campaign due hardly an order errs as its item does, not as the crowd: on `steady` its log
# value ratio spread 0.38 where under a third of an order was due, 0.16 at one (the benchmark's
# menus, seed 1), which a spread of 1 / sqrt(7) halving its variance's excess at 0.1 orders fits.
_THIN = ThinEvidence(alpha=7.0, half=0.1)
_SPEND_PRIOR_SHARE = 0.02  # of the budget: pseudo-spend behind the spend calibration
_ROI_MARGIN = 0.03  # plan for a ROI this much above target: estimates are noisy
_STEP = 0.5  # most a multiplier moves per tick, in log
_BEYOND = 1.5  # most a multiplier goes past the dearest step it can afford
_MIN_SHARE = 0.01  # of the day, past and to come, planned for at least
_FIRST_SHARE = 1e-3  # today's auctions never stand for more than a thousand times as many
_RECENT_SHARE = 0.05  # of the day's traffic: the latest ticks that stand for the rest of it
_BOUNDS = (1e-3, 100.0)
_LEVEL_PRIOR_SHARE = 0.1  # of the recalled day: pseudo-evidence behind its level against today
_LEVEL_BOUNDS = (0.25, 4.0)  # most today's auctions are taken to differ from a recalled day's


@dataclass(frozen=True, slots=True)
class _Rows:
    campaign: NDArray[np.int64]
    value: NDArray[np.float64]
    cost: NDArray[np.float64]
    weight: NDArray[np.float64]
    fraction: NDArray[np.float64]  # when in its day the auction ran; nan where not known

    @staticmethod
    def empty() -> _Rows:
        none = np.zeros(0)
        return _Rows(np.zeros(0, np.int64), np.zeros((0, 1)), np.zeros((0, 1)), none, none)

    def take(self, rows: NDArray[np.int64] | NDArray[np.bool_]) -> _Rows:
        """Just ``rows``, in their order."""
        return _Rows(
            self.campaign[rows], self.value[rows], self.cost[rows], self.weight[rows],
            self.fraction[rows],
        )  # fmt: skip

    def scaled(self, weight: NDArray[np.float64] | float) -> _Rows:
        """The same rows, each standing for ``weight`` times as many auctions."""
        return _Rows(self.campaign, self.value, self.cost, self.weight * weight, self.fraction)


class MenuSample:
    """A weighted sample of menu rows: at most ``per_tick`` rows per campaign from each batch
    added, evenly spread, each weighted by how many rows it stands for."""

    def __init__(self, *, n_campaigns: int, per_tick: int = _ROWS_PER_TICK) -> None:
        self.n = n_campaigns
        self.per_tick = per_tick
        self._parts: list[_Rows] = []
        self._book = StepBook()
        self._index = _Index.empty()

    def __getstate__(self) -> dict[str, Any]:
        """The rows alone, in one part: the steps and the index are worked out again where
        needed. (The service stores a policy after every tick and reads it back at the next:
        a day's parts one by one took twice as long to store and read as the same rows
        joined.)"""
        parts = [_join(self._parts)] if len(self._parts) > 1 else self._parts
        return {"n": self.n, "per_tick": self.per_tick, "_parts": parts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._book = StepBook()
        self._index = _Index.empty()

    def add(self, menus: MenuView) -> _Rows:
        """Keep a sample of ``menus``; the rows kept. Rows that are a sample already
        (``weight``) keep standing for theirs, times the rows each kept one stands for."""
        if len(menus.campaign) == 0:
            return _Rows.empty()
        keep, weight = even_sample(menus.campaign, self.n, self.per_tick)
        given = 1.0 if menus.weight is None else menus.weight[keep]
        kept = _Rows(
            campaign=menus.campaign[keep],
            value=menus.value[keep],
            cost=menus.cost[keep],
            weight=weight[menus.campaign[keep]] * given,
            fraction=np.full(len(keep), np.nan)
            if menus.day_fraction is None
            else np.asarray(menus.day_fraction, np.float64)[keep],
        )
        self._parts.append(kept)
        return kept

    def keep(self, menus: MenuView) -> None:
        """Keep ``menus`` as they are, each row standing for its ``weight`` (one without);
        ``ValueError``, keeping nothing, where they do not fit this sample's campaigns."""
        m = len(menus.campaign)
        weight = np.ones(m) if menus.weight is None else np.asarray(menus.weight, np.float64)
        if menus.value.shape != menus.cost.shape or menus.value.ndim != 2:
            raise ValueError("menu value and cost need the same (rows, slots) shape")
        if len(menus.value) != m or weight.shape != (m,):
            raise ValueError("menus need one campaign and one weight per row")
        if m and (menus.campaign.min() < 0 or menus.campaign.max() >= self.n):
            raise ValueError(f"menu campaigns must lie in 0..{self.n - 1}")
        if not np.all(np.isfinite(weight) & (weight >= 0)):
            raise ValueError("menu weights must be finite and non-negative")
        fraction = (
            np.full(m, np.nan)
            if menus.day_fraction is None
            else np.asarray(menus.day_fraction, np.float64)
        )
        if fraction.shape != (m,):
            raise ValueError("menus need one day fraction per row")
        known = fraction[~np.isnan(fraction)]
        if np.any((known < 0) | (known > 1)):
            raise ValueError("menu day fractions must lie in 0..1")
        if m:
            self._parts.append(
                _Rows(
                    menus.campaign.astype(np.int64),
                    menus.value,
                    menus.cost,
                    weight.copy(),
                    fraction.copy(),
                )
            )

    def view(self) -> MenuView:
        """Every row kept so far, each with how many auctions it stands for."""
        rows = self.rows()
        return MenuView(rows.campaign, rows.value, rows.cost, rows.weight, rows.fraction)

    def rows(self, scale: float = 1.0) -> _Rows:
        """Every row kept so far, weights times ``scale``."""
        if not self._parts:
            return _Rows.empty()
        if len(self._parts) > 1:
            self._parts = [_join(self._parts)]
        return self._parts[0].scaled(scale)

    def steps(self) -> OrderedSteps:
        """The bid-response steps of every row kept so far, in order (``bidding.step_book``);
        each step's ``row`` numbers its row in the order kept (``index``'s)."""
        new = self._since(self._book.rows)
        if len(new.campaign):
            self._book.add(new.campaign, new.value, new.cost)
        return self._book.steps

    def index(self) -> _Index:
        """Each row's campaign, weight and day fraction, in the order kept: what a plan reads
        at every tick, without joining the rows' menus."""
        new = self._since(len(self._index.campaign))
        if len(new.campaign):
            old = self._index
            self._index = _Index(
                np.concatenate([old.campaign, new.campaign]),
                np.concatenate([old.weight, new.weight]),
                np.concatenate([old.fraction, new.fraction]),
            )
        return self._index

    def _since(self, first: int) -> _Rows:
        """The rows kept from the ``first``-th on. Rows are only ever appended (``add``,
        ``keep``) and joining keeps their order, so a row's number never changes."""
        if first == 0:
            return self.rows()
        parts, start = [], 0
        for part in self._parts:
            end = start + len(part.campaign)
            if end > first:
                skip = first - start
                parts.append(part if skip <= 0 else part.take(np.arange(skip, end - start)))
            start = end
        if not parts:
            return _Rows.empty()
        return parts[0] if len(parts) == 1 else _join(parts)

    def __len__(self) -> int:
        return sum(len(p.campaign) for p in self._parts)


@dataclass(frozen=True, slots=True)
class _Index:
    campaign: NDArray[np.int64]
    weight: NDArray[np.float64]
    fraction: NDArray[np.float64]

    @staticmethod
    def empty() -> _Index:
        return _Index(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def even_sample(
    campaign: NDArray[np.int64], n: int, cap: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Every ``stride``-th row of each campaign, in order, at most about ``cap`` each; and per
    campaign how many rows each kept one stands for."""
    # Campaign numbers that fit 16 bits sort by radix, in linear time.
    key = campaign.astype(np.uint16) if n <= np.iinfo(np.uint16).max + 1 else campaign
    order = np.argsort(key, kind="stable")
    counts = np.bincount(campaign, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - start[campaign[order]]
    stride = np.maximum(1, -(-counts // cap))
    keep = np.sort(order[rank % stride[campaign[order]] == 0])
    kept = np.bincount(campaign[keep], minlength=n)
    weight: NDArray[np.float64] = counts / np.maximum(kept, 1)
    return keep.astype(np.int64), np.maximum(weight, 1.0)


def _join(parts: list[_Rows]) -> _Rows:
    width = max(p.value.shape[1] for p in parts)
    return _Rows(
        campaign=np.concatenate([p.campaign for p in parts]),
        value=np.concatenate([_widen(p.value, width) for p in parts]),
        cost=np.concatenate([_widen(p.cost, width) for p in parts]),
        weight=np.concatenate([p.weight for p in parts]),
        fraction=np.concatenate([p.fraction for p in parts]),
    )


def _widen(menu: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    if menu.shape[1] == width:
        return menu
    out = np.full((menu.shape[0], width), np.nan)
    out[:, : menu.shape[1]] = menu
    return out


class LandscapePacing:
    """Budget and ROI duals from the observed landscape, re-solved at every tick."""

    name = "landscape"
    needs_menus = True

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        n = len(campaigns)
        self._spec = campaigns
        self._k = 1.0 / campaigns.target_roi
        self._today_rows = MenuSample(n_campaigns=n)
        self._yesterday_rows: MenuSample | None = None
        self._recent: list[tuple[_Rows, float]] = []  # the latest ticks' rows, their share
        self._last_share = 0.0
        self._today: Observation | None = None
        self._orders_seen, self._orders_due = np.zeros(n), np.zeros(n)
        self._spend_charged, self._spend_expected = np.zeros(n), np.zeros(n)
        self._done_cost, self._done_value = np.zeros(n), np.zeros(n)
        self._last_spend = np.zeros(n)
        self._organic_past, self._days = np.zeros(n), 0
        self._carry = np.zeros(n)
        self._value_prior = NO_ERROR
        self._calendar: tuple[Promotion, ...] = ()
        self._day = 0  # of the run: the calendar's days
        self._observed = False  # whether an update has come since the reset
        self._joined = 0.0  # share of today that passed before the policy's first menus
        self._skip_spend = False  # the tick's charge predates the policy: not calibration
        self._start_level_tracking(recalled=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A policy the service pickled under an earlier version lacks the fields added since:
        each takes what a policy reset for the same campaigns starts with, but that it has been
        observing all along."""
        spec = state.get("_spec")
        missing = _fields() - state.keys()
        if missing and spec is not None:
            fresh = LandscapePacing()
            fresh.reset(campaigns=spec, seed=0)
            state = {**{name: fresh.__dict__[name] for name in missing}, **state}
            if "_observed" in missing:
                state["_observed"] = True
        self.__dict__.update(state)

    def _start_level_tracking(self, *, recalled: bool) -> None:
        """Today's auctions against yesterday's of the same hours, where the day to plan on is
        a recalled one (``recalled``) or a promotion touches today or yesterday: nothing
        compared yet."""
        n = len(self._require())
        self._met_value, self._met_cost = np.zeros(n), np.zeros(n)
        self._told_value, self._told_cost = np.zeros(n), np.zeros(n)
        self._whole_value, self._whole_cost = np.zeros(n), np.zeros(n)
        self._last_fraction = 0.0
        compare = recalled or any(p.day in (self._day, self._day - 1) for p in self._calendar)
        rows = (
            self._ordinary(self._yesterday_rows.rows(), self._day - 1)
            if compare and self._yesterday_rows is not None and len(self._yesterday_rows)
            else _Rows.empty()
        )
        timed = np.flatnonzero(~np.isnan(rows.fraction))
        order = timed[np.argsort(rows.fraction[timed], kind="stable")]
        self._recalled_by_time = rows.take(order)

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    @property
    def day(self) -> int:
        """The day of its run the policy is on, as its calendar counts days: 0 the first, one
        more at each ``start_day``."""
        return self._day

    def update(self, observation: Observation) -> None:
        spec = self._require()
        if not self._observed:
            self._observed = True
            self._join(observation)
        self._today = observation
        if observation.value_prior is not None:
            self._value_prior = observation.value_prior
        self._account(observation)
        organic = np.where(spec.full_site, observation.gmv_organic, 0.0)
        self._plan(spend=observation.spend, organic=organic, share=observation.planned_share)

    def _join(self, observation: Observation) -> None:
        """The first update after ``reset``. A policy may start part-way through a day (the
        service starts one when a campaign is created, or its budget or target changes): its
        first menus then cover the minutes since it started, not the day so far, and today's
        spend includes what was spent before it. It counts its first tick from the earliest of
        those menus (the share of the day elapsed since, taken as even over the interval), and
        leaves that tick's charge out of its spend calibration: what was charged before it
        started is not the price of what it bought."""
        menus = observation.menus
        now = observation.day_fraction
        if menus is None or not len(menus.campaign):
            start = now  # nothing seen yet: it starts now
        else:
            fraction = np.full(0, np.nan) if menus.day_fraction is None else menus.day_fraction
            known = np.asarray(fraction, np.float64)
            known = known[np.isfinite(known)]
            if not len(known):
                return  # auctions without their hours: nothing says when they began
            start = float(known.min())
        if not (start > JOINED_AFTER and now > 0):
            return
        covered = observation.planned_share * max(now - start, 0.0) / now
        self._last_share = self._joined = observation.planned_share - covered
        self._last_fraction = max(self._last_fraction, min(start, now))
        self._last_spend = np.asarray(observation.spend, np.float64).copy()
        self._skip_spend = True

    def _plan(
        self,
        *,
        spend: NDArray[np.float64],
        organic: NDArray[np.float64],
        share: float,
        step: float | None = _STEP,
    ) -> None:
        """Set each multiplier to the largest the rest of the day affords, at most ``step``
        (in log) from where it was."""
        spec = self._require()
        value_cal, spend_cal = self.value_calibration(), self.spend_calibration()
        landscape = self._landscape(share, value=spend_cal * value_cal, cost=spend_cal)
        if landscape is None:
            return
        curve, seen = landscape
        share = min(max(share, _MIN_SHARE), 1.0 - _MIN_SHARE)
        target = spec.target_roi * (1.0 + _ROI_MARGIN)
        slack = (
            spend_cal * (value_cal * self._done_value - target * self._done_cost)
            + self._organic_expected(organic, share)
            + np.minimum(self._carry, 0.0)
        )
        remaining = spec.budget - spend
        rest = 1.0 - share

        def solve(budget: NDArray[np.float64], base: NDArray[np.float64]) -> Response:
            return curve.answer(budget=budget, target_roi=target, base_gmv=base)

        response = solve(np.maximum(remaining, 0.0) / rest, slack / rest)
        planned = value_cal * _inside(response)
        stuck = np.isnan(planned)
        if stuck.any():
            # Not even the cheapest step fits. If the rest of the day, on its own and without
            # the budget, could still meet the target, the deficit or a coarse sample is to
            # blame: bid no higher than that. If it could not, every step loses ROI: fall just
            # under the first, and never past break-even (one click, on its own, at target):
            # the auctions the sample missed are bought at any price under the bid.
            alone = solve(np.full(len(spec), np.inf), np.maximum(slack, 0.0) / rest)
            on_its_own = value_cal * _inside(alone)
            fallback = np.where(
                np.isnan(on_its_own),
                value_cal * np.minimum(alone.high * 0.95, 1.0 / target),
                np.minimum(self._k, on_its_own),
            )
            planned = np.where(stuck, fallback, planned)
        planned = np.clip(np.where(np.isfinite(planned), planned, self._k), *_BOUNDS)
        if step is not None:
            planned = np.clip(planned, self._k * np.exp(-step), self._k * np.exp(step))
        # A campaign with a menu, and a usable slot in it.
        known = seen & (response.affordable | np.isfinite(response.high))
        # A campaign with nothing left cannot buy: its multiplier may fall, never rise.
        planned = np.where(remaining > 0, planned, np.minimum(planned, self._k))
        self._k = np.clip(np.where(known, planned, self._k), *_BOUNDS)

    def start_day(self) -> None:
        spec = self._require()
        if self._today is not None:
            organic = np.where(spec.full_site, self._today.gmv_organic, 0.0)
            # Valued before today's orders join the past: the calibration counts them once.
            # A figure gone astray (nan) adds nothing, rather than freezing the campaign for good.
            self._carry += _finite(
                self.spend_calibration()
                * (self.value_calibration() * self._done_value - spec.target_roi * self._done_cost)
                + organic
            )
            self._orders_seen += _finite(self._today.orders_realized)
            self._orders_due += _finite(self._today.orders_arrived)
            # At an ordinary day's pace: a promotion's windows brought more shoppers to the
            # item's organic results as to its auctions.
            self._organic_past += _finite(
                organic / self._day_traffic(self._today_rows.rows(), self._day)
            )
            self._days += 1
        if len(self._today_rows):
            self._yesterday_rows = self._today_rows
        self._today_rows = MenuSample(n_campaigns=len(spec))
        self._recent, self._last_share = [], 0.0
        self._today = None
        self._done_cost, self._done_value = np.zeros(len(spec)), np.zeros(len(spec))
        self._last_spend = np.zeros(len(spec))
        self._day += 1
        self._joined = 0.0
        self._start_level_tracking(recalled=False)
        # The last tick planned for a few minutes of budget; midnight opens a whole day.
        self._plan_whole_day()

    def recall_day(self, menus: MenuView) -> None:
        """The platform's last day before this policy steered (``bidding.policy``): the first
        day plans on it as on a yesterday, instead of reading the rest of the day off its
        first hours. Call after ``reset``, before the first update."""
        sample = MenuSample(n_campaigns=len(self._require()))
        sample.keep(menus)
        if len(sample):
            self._yesterday_rows = sample
            self._start_level_tracking(recalled=True)
            self._plan_whole_day()

    def expect_promotions(self, calendar: Sequence[Promotion]) -> None:
        """The platform's promotion calendar (``bidding.calendar``), replacing any given
        before. A promotion day is planned with the auctions its windows still ahead will add
        to an ordinary day's, and every day's auctions inside its windows stand for an ordinary
        day's at those hours (their weight over the factor), the day after included. Call after
        ``reset`` (and ``recall_day``), before the first update of the day; handing over the
        calendar already held (a dated driver's, at every tick) changes nothing."""
        self._require()
        entries = tuple(calendar)
        if not all(isinstance(p, Promotion) for p in entries):
            raise TypeError("a promotion calendar holds Promotion entries")
        if entries == self._calendar:  # a driver may hand it over at every tick
            return
        self._calendar = entries
        if self._today is None:
            self._start_level_tracking(recalled=len(self._recalled_by_time.campaign) > 0)
            self._plan_whole_day()

    def _plan_whole_day(self) -> None:
        """Plan a day not yet begun: nothing spent or sold, free to move any distance."""
        none = np.zeros(len(self._require()))
        self._plan(spend=none, organic=none, share=0.0, step=None)

    def value_calibration(self) -> NDArray[np.float64]:
        """Realized over due orders to date: a low quantile of each campaign's posterior."""
        seen, due = orders_to_date(self._orders_seen, self._orders_due, self._today)
        return posterior_quantile(
            self._value_prior, realized=seen, due=due, quantile=_VALUE_QUANTILE, thin=_THIN
        )

    def spend_calibration(self) -> NDArray[np.float64]:
        """Money charged over the expected cost of the slots taken, shrunk to 1."""
        prior = _SPEND_PRIOR_SHARE * self._require().budget
        out: NDArray[np.float64] = (self._spend_charged + prior + 1e-12) / (
            self._spend_expected + prior + 1e-12
        )
        return out

    def _account(self, observation: Observation) -> None:
        """What the tick's auctions bought at the multipliers used, and what was charged."""
        spec = self._require()
        n = len(spec)
        menus = observation.menus
        kept = _Rows.empty()  # a tick without auctions still counts towards the recent share
        # The tick a budget runs out, the ledger charges only part of what was won: leave it out.
        bidding = (spec.budget - self._last_spend > 0) & (observation.spend < spec.budget)
        if menus is not None and len(menus.campaign):
            cost, value = _weighted(
                menus, *taken_slot(self._k[menus.campaign], menus.value, menus.cost)
            )
            cost_by = np.bincount(menus.campaign, weights=cost, minlength=n)
            value_by = np.bincount(menus.campaign, weights=value, minlength=n)
            self._done_cost += np.where(bidding, cost_by, 0.0)
            self._done_value += np.where(bidding, value_by, 0.0)
            if not self._skip_spend:
                self._spend_expected += np.where(bidding, cost_by, 0.0)
            kept = self._today_rows.add(menus)
        self._compare_with_recalled(observation.day_fraction, bidding, menus)
        self._remember(kept, observation.planned_share - self._last_share)
        self._last_share = max(self._last_share, observation.planned_share)
        charged = observation.spend - self._last_spend
        if not self._skip_spend:
            self._spend_charged += np.where(bidding, charged, 0.0)
        self._skip_spend = False
        self._last_spend = observation.spend.copy()

    def _compare_with_recalled(
        self, now: float, bidding: NDArray[np.bool_], menus: MenuView | None
    ) -> None:
        """Add the tick's auctions, at the multipliers used, and the recalled day's of the same
        hours at the same multipliers, to the day's comparison (``recalled_level``)."""
        n = len(self._require())
        past = self._recalled_by_time
        low, high = np.searchsorted(past.fraction, [self._last_fraction, now], side="right")
        self._last_fraction = max(self._last_fraction, now)
        if high <= low:
            return
        # What the recalled day would have brought at these multipliers: the scale of the
        # comparison's prior.
        cost, value = taken_slot(self._k[past.campaign], past.value, past.cost)
        self._whole_cost = _per_campaign(past.campaign, cost * past.weight, n)
        self._whole_value = _per_campaign(past.campaign, value * past.weight, n)
        window = slice(int(low), int(high))
        campaign, weight = past.campaign[window], past.weight[window]
        # Only campaigns that met auctions then at these hours compare; only while bidding.
        compared = bidding & (np.bincount(campaign, minlength=n) > 0)
        self._told_cost += np.where(compared, _per_campaign(campaign, cost[window] * weight, n), 0)
        self._told_value += np.where(
            compared, _per_campaign(campaign, value[window] * weight, n), 0
        )
        if menus is not None and len(menus.campaign):
            cost, value = _weighted(
                menus, *taken_slot(self._k[menus.campaign], menus.value, menus.cost)
            )
            # Inside a promotion window, the tick's auctions stand for an ordinary day's.
            when = np.full(len(cost), now) if menus.day_fraction is None else menus.day_fraction
            ordinary = 1.0 / traffic_factor(self._calendar, self._day, np.asarray(when, float))
            cost, value = cost * ordinary, value * ordinary
            self._met_cost += np.where(compared, _per_campaign(menus.campaign, cost, n), 0.0)
            self._met_value += np.where(compared, _per_campaign(menus.campaign, value, n), 0.0)

    def recalled_level(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """On a first day planned on a recalled day (``recall_day``), or a day a promotion
        touches: how today's auctions stand against the recalled day's (yesterday's) of the
        same hours, per campaign, each counted as an ordinary day's. The value and the cost
        they brought at the multipliers used, over what the recalled day's would have, each
        shrunk to 1 by a tenth of what the whole recalled day would have brought at the latest
        multiplier (equal landscapes read 1, and so does a campaign the recalled day would have
        sold nothing, or any other day).

        Another policy steered that day's bids, and the engine's models valued it as they
        stood then: on ``steady`` its auctions cost 0.6 of today's at the same multipliers
        (median over budget-bound campaigns), and a budget planned on it went on the morning.
        The comparison shows that within hours, and the rest of the day is planned on the
        recalled day moved by as much. A yesterday this policy steered itself is trusted as
        it is (compared the same way, it only added noise), but where a promotion touches
        today or yesterday: within hours of a promotion's first window the models learn its
        readier buyers, and the same auctions at the same multiplier bring and cost more (on
        ``surge``, 1.3-1.5 times yesterday's that afternoon)."""
        levels = []
        for met, told, whole in (
            (self._met_value, self._told_value, self._whole_value),
            (self._met_cost, self._told_cost, self._whole_cost),
        ):
            prior = _LEVEL_PRIOR_SHARE * whole
            level = np.where(prior > 0, (met + prior) / np.where(prior > 0, told + prior, 1.0), 1.0)
            levels.append(np.clip(level, *_LEVEL_BOUNDS))
        return levels[0], levels[1]

    def _remember(self, kept: _Rows, share: float) -> None:
        """Keep the latest ticks' rows until they cover ``_RECENT_SHARE`` of the day."""
        self._recent.append((kept, max(share, 0.0)))
        while len(self._recent) > 1 and sum(s for _, s in self._recent[1:]) >= _RECENT_SHARE:
            self._recent.pop(0)

    def _landscape(
        self, share: float, *, value: NDArray[np.float64], cost: NDArray[np.float64]
    ) -> tuple[ResponseCurve, NDArray[np.bool_]] | None:
        """The response curve of a whole day's auctions per campaign, today's so far plus the
        rest of the day, each menu's value times ``value`` and its cost times ``cost`` (per
        campaign); and which campaigns met any auction in it. ``None`` where none did.

        The rest of the day is yesterday's auctions, all of them, at ``1 - share`` of their
        weight. A campaign with none yesterday has only today to go by: the latest hour or
        so of it stands for the rest, scaled up, since the landscape may be changing (on a
        platform's first day its models learn, and a campaign meets more auctions as they do);
        one with none lately, all of today's.

        With a promotion calendar (``expect_promotions``), auctions inside a day's windows
        count as an ordinary day's (their weight over the factor), and yesterday's at the hours
        of today's windows still ahead count the more by the auctions those windows add (a
        campaign with no yesterday has no hours to read them at, and plans without them).

        Every row's steps are sorted once, as it arrives (``bidding.step_book``): a plan only
        weighs them, each row by the auctions it stands for, each campaign by ``value`` and
        ``cost`` (and yesterday's by ``recalled_level``)."""
        n = self._today_rows.n
        today = self._today_rows.index()
        weight = self._ordinary_weight(today.weight, today.fraction, self._day)
        rest = 1.0 - min(max(share, 0.0), 1.0)
        # Started part-way through today: its rows stand for all of it.
        joined = share / max(share - self._joined, _FIRST_SHARE) if self._joined > 0.0 else 1.0
        seen = np.bincount(today.campaign, minlength=n) > 0
        has_yesterday = np.zeros(n, dtype=bool)
        earlier = None
        if self._yesterday_rows is not None and len(self._yesterday_rows):
            past = self._yesterday_rows.index()
            past_weight = self._ordinary_weight(past.weight, past.fraction, self._day - 1)
            past_weight = past_weight * rest * self._promotion_ahead(past.fraction, rest)
            has_yesterday[past.campaign] = True
            value_level, cost_level = self.recalled_level()
            earlier = self._yesterday_rows.steps().scaled(
                row_weight=past_weight,
                value_factor=value * value_level,
                cost_factor=cost * cost_level,
            )
        # The latest ticks' rows are today's last ones (``_remember``): for a campaign without
        # yesterday they count again, for the rest of the day.
        recent_share = sum(s for _, s in self._recent)
        recent = np.zeros(len(today.campaign))
        has_recent = np.zeros(n, dtype=bool)
        if self._recent and recent_share > 0 and rest > 0:
            first = len(today.campaign) - sum(len(r.campaign) for r, _ in self._recent)
            latest = ~has_yesterday[today.campaign[first:]]
            has_recent[today.campaign[first:][latest]] = True
            ahead = rest / max(recent_share, _FIRST_SHARE)
            recent[first:] = np.where(latest, weight[first:] * ahead, 0.0)
        alone = ~has_yesterday[today.campaign] & ~has_recent[today.campaign]
        scale = np.where(alone, 1.0 / max(share, _FIRST_SHARE), 1.0)
        steps = self._today_rows.steps().scaled(
            row_weight=weight * joined * scale + recent, value_factor=value, cost_factor=cost
        )
        if earlier is not None:
            steps = merge(steps, earlier)
        seen |= has_yesterday
        if not seen.any():
            return None
        curve = ResponseCurve.ordered(steps.owner, steps.at, steps.d_cost, steps.d_value, n)
        return curve, seen

    def _ordinary_weight(
        self, weight: NDArray[np.float64], fraction: NDArray[np.float64], day: int
    ) -> NDArray[np.float64]:
        """Rows' ``weight`` on day ``day`` at ``fraction``, each standing for an ordinary day's
        auctions at its hour."""
        if not self._calendar:
            return weight
        out: NDArray[np.float64] = weight / traffic_factor(self._calendar, day, fraction)
        return out

    def _ordinary(self, rows: _Rows, day: int) -> _Rows:
        """``rows`` of day ``day``, each standing for an ordinary day's auctions at its hour."""
        if not self._calendar:
            return rows
        return rows.scaled(1.0 / traffic_factor(self._calendar, day, rows.fraction))

    def _promotion_ahead(self, fraction: NDArray[np.float64], rest: float) -> NDArray[np.float64]:
        """Per row of an ordinary day at ``fraction`` standing for ``rest`` of a day: how many
        times its weight today's windows still ahead make it (1 outside them).

        The plan holds a whole day's landscape to the budget over ``rest`` (``_plan``), so a
        window's ``factor - 1`` extra auctions, real ones still to come, weigh ``1 / rest`` in
        it; the row's own weight there is ``rest``: ``1 + (factor - 1) / rest ** 2``. A window
        quieter than an ordinary day takes its hours out, no further."""
        if not self._calendar:
            return np.ones(len(fraction))
        now = 0.0 if self._today is None else self._today.day_fraction
        factor = traffic_factor(self._calendar, self._day, fraction)
        ahead = np.where(fraction >= now, factor - 1.0, 0.0)
        rest = max(rest, _MIN_SHARE)
        out: NDArray[np.float64] = np.maximum(1.0 + ahead / rest**2, 0.0)
        return out

    def _organic_expected(self, so_far: NDArray[np.float64], share: float) -> NDArray[np.float64]:
        """Today's organic GMV on the full-site basis: ``so_far``, plus the past days' ordinary
        pace for the rest of the day, the more by the traffic today's windows still ahead
        bring (nothing before a whole day has been seen)."""
        if self._days == 0:
            return so_far
        pace = self._organic_past / self._days
        out: NDArray[np.float64] = so_far + (1.0 - share) * pace * self._traffic_ahead()
        return out

    def _day_traffic(self, rows: _Rows, day: int) -> NDArray[np.float64]:
        """Per campaign, its auctions of day ``day`` (``rows``) over an ordinary day's at the
        same hours: above 1 where the calendar's windows brought more (1 without any)."""
        n = len(self._require())
        if not self._calendar or len(rows.campaign) == 0:
            return np.ones(n)
        factor = traffic_factor(self._calendar, day, rows.fraction)
        seen = _per_campaign(rows.campaign, rows.weight, n)
        ordinary = _per_campaign(rows.campaign, rows.weight / factor, n)
        out: NDArray[np.float64] = np.where(ordinary > 0, seen / np.maximum(ordinary, 1e-300), 1.0)
        return out

    def _traffic_ahead(self) -> NDArray[np.float64]:
        """Per campaign, the traffic of the rest of today over an ordinary day's at the same
        hours, read at the hours of yesterday's auctions still ahead (1 without a calendar or
        a yesterday)."""
        n = len(self._require())
        if not self._calendar or self._yesterday_rows is None or not len(self._yesterday_rows):
            return np.ones(n)
        rows = self._ordinary(self._yesterday_rows.rows(), self._day - 1)
        now = 0.0 if self._today is None else self._today.day_fraction
        ahead = rows.take(~(rows.fraction < now))  # unknown hours count as ahead
        factor = traffic_factor(self._calendar, self._day, ahead.fraction)
        ordinary = _per_campaign(ahead.campaign, ahead.weight, n)
        expected = _per_campaign(ahead.campaign, ahead.weight * factor, n)
        out: NDArray[np.float64] = np.where(
            ordinary > 0, expected / np.maximum(ordinary, 1e-300), 1.0
        )
        return out

    def _require(self) -> CampaignSpec:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        return self._spec


def _weighted(
    menus: MenuView, cost: NDArray[np.float64], value: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per row, ``cost`` and ``value`` times the auctions the row stands for (a sample's
    weight; one each where the menus are every auction)."""
    if menus.weight is None:
        return cost, value
    weight = np.asarray(menus.weight, np.float64)
    return cost * weight, value * weight


def _finite(amount: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.where(np.isfinite(amount), amount, 0.0)
    return out


def _per_campaign(
    campaign: NDArray[np.int64], amount: NDArray[np.float64], n: int
) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.bincount(campaign, weights=amount, minlength=n).astype(np.float64)
    return out


def _inside(response: Response) -> NDArray[np.float64]:
    """A multiplier that buys what ``response.low`` buys: halfway (in log) to the next step, at
    most ``_BEYOND`` past ``low``, or that far past the dearest step where every one is
    affordable; ``nan`` where none is. Where only steps that cost nothing are affordable (a
    reserve of 0), ``low`` is 0 and any multiplier under the next step buys them: the least
    multiplier, or half the next step where that is lower, stands for it."""
    high = response.high
    free = response.affordable & (response.low <= 0)
    low = np.where(free, np.minimum(_BOUNDS[0], 0.5 * high), response.low)
    out = np.where(np.isinf(high), low * _BEYOND, np.sqrt(low * np.minimum(high, low * _BEYOND)))
    result: NDArray[np.float64] = np.where(response.affordable, out, np.nan)
    return result


@functools.cache
def _fields() -> frozenset[str]:
    """The names of a reset ``LandscapePacing``'s fields."""
    policy = LandscapePacing()
    one = np.ones(1)
    policy.reset(
        campaigns=CampaignSpec(budget=one, target_roi=one, roi_basis=np.zeros(1, np.int8)),
        seed=0,
    )
    return frozenset(policy.__dict__)
