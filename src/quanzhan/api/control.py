"""The control loop inside the service: on a wall-clock tick, each active campaign's policy reads
today's figures and sets the campaign's next bid multiplier.

The policies are the simulator's (``bidding.registry``), one instance per campaign (policies treat
campaigns independently). What is learned over all campaigns is learned here, as the
simulator's observer learns it, and reaches each policy through its observation: the order-delay
distribution (refitted hourly on the last week's orders) behind the orders due by now, and the
prior of how far campaigns' realized orders fall from those predicted (``bidding.value_prior``,
refitted hourly on the last week's clicks and their orders). A policy that plans over the
landscape also gets the slot menus the serving processes sampled since the last tick
(``api.menus``, ``store.menus``), and one that plans on a promotion calendar the operator's
windows (``api.calendar``). Each policy is pickled into
the ``controllers`` table after every tick, so a restarted service resumes each controller where
it stopped. With several serving processes on one database, one of them holds the control lease
and runs the loop; if it dies, another takes the lease over when it lapses.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from quanzhan.api.calendar import ordinary_hours, policy_calendar
from quanzhan.bidding.delay import DelayModel
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.policy import CampaignSpec, MenuView, Observation, Policy
from quanzhan.bidding.registry import DEFAULT_POLICY, POLICIES, make_policy
from quanzhan.bidding.value_prior import NO_ERROR, GammaPrior, fit_prior
from quanzhan.domain import DAY_SECONDS, RoiBasis
from quanzhan.store.catalog import ControllerStart
from quanzhan.store.database import Database
from quanzhan.store.events import day_of
from quanzhan.store.menus import MenuRows, delete_menu_samples, read_menu_samples
from quanzhan.store.observations import (
    DayFigures,
    OrderEvidence,
    active_controllers,
    day_figures,
    hourly_traffic,
    order_delays,
    order_evidence,
)
from quanzhan.store.promotions import list_promotions
from quanzhan.store.schema import controllers, leases

log = logging.getLogger("quanzhan.control")

_LEASE = "control"
_FORECAST_DAYS = 7
_REFIT_SECONDS = 3600.0
# A controller idle longer than this starts no more new days than this: its days are empty.
_MAX_NEW_DAYS = 31


def new_controller(
    *, policy: str, daily_budget: float, target_roi: float, roi_basis: str, now: float
) -> ControllerStart:
    """A fresh policy for one campaign, ready to store."""
    instance = make_policy(policy)
    instance.reset(
        campaigns=CampaignSpec(
            budget=np.array([daily_budget]),
            target_roi=np.array([target_roi]),
            roi_basis=np.array([RoiBasis[roi_basis.upper()]], dtype=np.int8),
        ),
        seed=0,
    )
    return ControllerStart(
        policy=policy,
        multiplier=float(instance.multipliers()[0]),
        state=pickle.dumps(instance),
        day=day_of(now),
    )


@dataclass(frozen=True, slots=True)
class _Refit:
    """The last week's attributed orders (click and order times) and order evidence."""

    click_time: NDArray[np.float64]
    order_time: NDArray[np.float64]
    evidence: OrderEvidence


@dataclass(frozen=True, slots=True)
class _TickReading:
    """What one tick reads, in one transaction: the active controllers, today's figures, the
    traffic forecast, the sampled menus, the promotions, and on the hour the last week's orders
    to refit on."""

    rows: list[dict[str, Any]]
    figures: DayFigures
    forecast: TrafficForecast
    today: str
    day_start: float
    # The menus the serving processes sampled since the last tick.
    menus: MenuRows
    # The promotion calendar's windows from the forecast's first day to tomorrow.
    promotions: list[dict[str, Any]]
    # On the hour: the week's orders to refit on, else None.
    refit: _Refit | None = None
    # The first tick of a day: yesterday's figures, to the day's end, of the controllers last
    # steered yesterday; else None.
    closing: DayFigures | None = None


@dataclass(frozen=True, slots=True)
class _Steered:
    campaign_id: int
    seen: float  # the controller row's updated_at when it was read
    multiplier: float
    state: bytes
    policy: str  # the campaign's own, or the service's where its own is no longer shipped


class ControlLoop:
    """Runs one tick at a time; ``holder`` names this process for the lease, and
    ``attribution_window`` (seconds) bounds the orders a click can bring (``bidding.delay``).

    A tick reads in one transaction, computes outside any, and writes in a short one, so event
    intake is not held up by the policies' arithmetic. A controller row changed in between (a
    merchant's new budget or target) keeps the change: the write is conditional on the row being
    as it was read.
    """

    def __init__(
        self,
        *,
        database: Database,
        tick_seconds: float,
        holder: str,
        clock: Callable[[], float],
        attribution_window: float = math.inf,
        policy: str = DEFAULT_POLICY,
    ) -> None:
        self.database = database
        self.tick_seconds = tick_seconds
        self.holder = holder
        self.policy = policy  # for a campaign whose own policy is no longer shipped
        self.clock = clock
        self.ticks = 0
        self.delay = DelayModel(window_seconds=attribution_window)
        self.value_prior = NO_ERROR
        self._fitted_at = -np.inf

    def tick(self) -> bool:
        """One control tick if this process holds the lease; whether it ran."""
        now = self.clock()
        if not self.database.retrying(lambda c: self._take_lease(c, now)):
            return False
        try:
            with self.database.read() as connection:
                menu_ids, menus = read_menu_samples(connection)
                reading = self._read(connection, now, menus)
            steered = [] if reading is None else self._steer(reading, now)
            queued = (menu_ids, menus)
            self.database.retrying(lambda c: self._write(c, steered, queued, now))
        except Exception:
            # Let another process take over at once rather than after three missed ticks.
            self.database.retrying(self._release_lease)
            raise
        self.ticks += 1
        return True

    def _take_lease(self, connection: Connection, now: float) -> bool:
        expires = now + 3 * self.tick_seconds
        taken = connection.execute(
            update(leases)
            .where(
                leases.c.name == _LEASE,
                (leases.c.holder == self.holder) | (leases.c.expires_at < now),
            )
            .values(holder=self.holder, expires_at=expires)
        ).rowcount
        if taken:
            return True
        exists = connection.execute(select(leases.c.name).where(leases.c.name == _LEASE)).first()
        if exists is not None:
            return False
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(leases).values(name=_LEASE, holder=self.holder, expires_at=expires)
                )
        except IntegrityError:  # another process made the lease first
            return False
        return True

    def release(self) -> None:
        """Give the lease up (a process shutting down), so that another, or this one
        restarted, steers at its next tick rather than once the lease lapses."""
        self.database.retrying(self._release_lease)

    def _release_lease(self, connection: Connection) -> None:
        connection.execute(
            update(leases)
            .where(leases.c.name == _LEASE, leases.c.holder == self.holder)
            .values(expires_at=0.0)
        )

    def _read(self, connection: Connection, now: float, menus: MenuRows) -> _TickReading | None:
        """Everything else the tick needs from the database; ``None`` with no active
        controller."""
        rows = active_controllers(connection)
        if not rows:
            return None
        today = day_of(now)
        midnight = datetime.fromisoformat(today).replace(tzinfo=UTC)
        day_start = midnight.timestamp()
        promotions = list_promotions(
            connection,
            first_day=_day_string(midnight - timedelta(days=_FORECAST_DAYS)),
            last_day=_day_string(midnight + timedelta(days=1)),
        )
        yesterday = _day_before(today)
        closing_rows = [r for r in rows if r["day"] == yesterday]
        reading = _TickReading(
            menus=menus,
            promotions=promotions,
            rows=rows,
            figures=day_figures(connection, rows=rows, day=today, day_start=day_start),
            forecast=self._forecast(connection, midnight, promotions),
            today=today,
            day_start=day_start,
            closing=day_figures(
                connection,
                rows=closing_rows,
                day=yesterday,
                day_start=day_start - DAY_SECONDS,
                day_end=day_start,
            )
            if closing_rows
            else None,
        )
        if now - self._fitted_at < _REFIT_SECONDS:
            return reading
        # Hourly, as the simulator refits its delay model: each fit reads a week.
        click_time, order_time = order_delays(connection, now=now)
        refit = _Refit(click_time, order_time, order_evidence(connection, now=now))
        return replace(reading, refit=refit)

    def _steer(self, reading: _TickReading, now: float) -> list[_Steered]:
        """Each controller's next multiplier and state, outside any transaction."""
        rows, figures, today = reading.rows, reading.figures, reading.today
        refit = reading.refit
        if refit is not None:
            if len(refit.click_time):
                self.delay.fit(
                    delay=refit.order_time - refit.click_time, horizon=now - refit.click_time
                )
            self.value_prior = self._fit_value_prior(refit.evidence, now)
            self._fitted_at = now
        day_fraction = (now - reading.day_start) / DAY_SECONDS
        planned = reading.forecast.share_elapsed(day_fraction)
        ids = [int(r["id"]) for r in rows]
        menus = _menus_by_campaign(reading.menus, ids, reading.day_start)
        today_seen = _Seen(figures, self._arrived(figures, now), menus)
        closing = reading.closing
        yesterday = _day_before(today)
        closing_seen, closing_index = None, {}
        if closing is not None:
            # The day that ended since the last tick: its last minutes' auctions and orders,
            # to midnight, as the simulator's last tick of a day gives them to its policy.
            closing_menus = _menus_by_campaign(
                reading.menus, closing.campaign_ids, reading.day_start - DAY_SECONDS
            )
            closing_seen = _Seen(closing, self._arrived(closing, reading.day_start), closing_menus)
            closing_index = {c: j for j, c in enumerate(closing.campaign_ids)}

        def observe_today(policy: Policy, i: int) -> None:
            _expect_promotions(policy, reading.promotions, day=today)
            policy.update(
                today_seen.observation(
                    i,
                    now=now,
                    day_fraction=day_fraction,
                    planned_share=planned,
                    with_menus=policy.needs_menus,
                    value_prior=self.value_prior,
                )
            )

        def resume(row: dict[str, Any], i: int) -> Policy:
            """The stored controller, brought to now."""
            policy: Policy = pickle.loads(row["state"])
            j = closing_index.get(ids[i])
            if closing_seen is not None and j is not None:
                _expect_promotions(policy, reading.promotions, day=yesterday)
                policy.update(
                    closing_seen.observation(
                        j,
                        now=reading.day_start,
                        day_fraction=1.0,
                        planned_share=1.0,
                        with_menus=policy.needs_menus,
                        value_prior=self.value_prior,
                    )
                )
            # One new day for each that passed since the controller last steered (a paused
            # campaign, a service down): policies count days as the calendar dates them.
            for _ in range(_days_since(row["day"], today)):
                policy.start_day()
            observe_today(policy, i)
            return policy

        def restart(row: dict[str, Any], i: int) -> Policy:
            """A fresh controller of the campaign's policy (the service's, where the campaign's
            is no longer shipped), started now."""
            start = new_controller(
                policy=row["policy"] if row["policy"] in POLICIES else self.policy,
                daily_budget=float(row["daily_budget"]),
                target_roi=float(row["target_roi"]),
                roi_basis=str(row["roi_basis"]),
                now=now,
            )
            policy: Policy = pickle.loads(start.state)
            observe_today(policy, i)
            return policy

        steered = []
        for i, row in enumerate(rows):
            # One campaign's controller that cannot be read or stepped (a state from an older
            # version, a figure out of range) must not stop the tick for every campaign: it is
            # started afresh, and left as it stands if that fails too.
            for step in (resume, restart):
                try:
                    policy = step(row, i)
                    multiplier = float(policy.multipliers()[0])
                    if not math.isfinite(multiplier):
                        raise ValueError(f"multiplier {multiplier}")
                    steered.append(
                        _Steered(
                            campaign_id=int(row["id"]),
                            seen=float(row["updated_at"]),
                            multiplier=multiplier,
                            state=pickle.dumps(policy),
                            policy=policy.name,
                        )
                    )
                    break
                except Exception:
                    log.exception(
                        "campaign %s: its controller could not %s",
                        row["id"],
                        "resume; starting it afresh" if step is resume else "start; left as it was",
                    )
        return steered

    def _arrived(self, figures: DayFigures, now: float) -> NDArray[np.float64]:
        """Per campaign, the orders its clicks of ``figures`` should have brought by ``now``
        under the delay model."""
        out: NDArray[np.float64] = np.bincount(
            figures.click_campaign,
            weights=figures.click_pcvr * self.delay.share_arrived(now - figures.click_time),
            minlength=len(figures.campaign_ids),
        ).astype(np.float64)
        return out

    def _fit_value_prior(self, evidence: OrderEvidence, now: float) -> GammaPrior:
        """The prior over every campaign's last week: the orders that came of its clicks
        against those due by now under the delay model just fitted."""
        due = np.bincount(
            evidence.group_campaign,
            weights=evidence.group_pcvr * self.delay.share_arrived(now - evidence.group_time),
            minlength=len(evidence.campaign_ids),
        ).astype(np.float64)
        return fit_prior(realized=evidence.orders, due=due, start=self.value_prior)

    def _write(
        self,
        connection: Connection,
        steered: list[_Steered],
        queued: tuple[list[int], MenuRows],
        now: float,
    ) -> None:
        """Store each steered controller's new state, unless the row changed meanwhile, and
        take the menus read (``queued``: their ids and rows) off the queue with it: a failed
        write leaves both. A controller the merchant's change replaced keeps its menus for its
        new policy's next tick; menus of campaigns no longer steered go."""
        today = day_of(now)
        kept = set()
        for one in steered:
            written = connection.execute(
                update(controllers)
                .where(
                    controllers.c.campaign_id == one.campaign_id,
                    controllers.c.updated_at == one.seen,
                )
                .values(
                    multiplier=one.multiplier,
                    state=one.state,
                    policy=one.policy,
                    day=today,
                    updated_at=now,
                )
            ).rowcount
            if not written:
                kept.add(one.campaign_id)
        ids, rows = queued
        delete_menu_samples(
            connection,
            [i for i, c in zip(ids, rows.campaign_id.tolist(), strict=True) if c not in kept],
        )

    @staticmethod
    def _forecast(
        connection: Connection, midnight: datetime, promotions: list[dict[str, Any]]
    ) -> TrafficForecast:
        """An ordinary day's shape from the last week's page views, each past promotion's
        extra page views taken out."""
        days = [_day_string(midnight - timedelta(days=d)) for d in range(_FORECAST_DAYS, 0, -1)]
        forecast = TrafficForecast()
        for day, hourly in hourly_traffic(connection, days=days).items():
            forecast.add_day(ordinary_hours(hourly, promotions, day=day))
        return forecast


@dataclass(frozen=True, slots=True)
class _Seen:
    """One day's figures of the steered campaigns, the orders due of their clicks, and their
    sampled menus (``_menus_by_campaign``), ready to observe one campaign at a time."""

    figures: DayFigures
    arrived: NDArray[np.float64]
    menus: list[MenuView | None]

    def observation(
        self,
        i: int,
        *,
        now: float,
        day_fraction: float,
        planned_share: float,
        with_menus: bool,
        value_prior: GammaPrior,
    ) -> Observation:
        """The ``i``-th campaign's observation (its menus only ``with_menus``)."""
        one, figures = slice(i, i + 1), self.figures
        return Observation(
            now=now,
            day_fraction=day_fraction,
            planned_share=planned_share,
            spend=figures.spend[one],
            gmv_realized=figures.gmv[one],
            gmv_predicted=figures.gmv_predicted[one],
            orders_realized=figures.orders[one],
            orders_arrived=self.arrived[one],
            gmv_organic=figures.gmv_organic[one],
            clicks=figures.clicks[one],
            menus=self.menus[i] if with_menus else None,
            value_prior=value_prior,
        )


def _expect_promotions(policy: Policy, promotions: list[dict[str, Any]], *, day: str) -> None:
    """Hand a policy that plans on the promotion calendar the windows as it counts days, ``day``
    being the one it is on."""
    expect_promotions = getattr(policy, "expect_promotions", None)
    if expect_promotions is not None and hasattr(policy, "day"):
        expect_promotions(policy_calendar(promotions, today=day, policy_day=int(policy.day)))


def _days_since(last: str, today: str) -> int:
    """Days from ``last`` to ``today`` (UTC dates), at least 1 where they differ (a clock
    stepped back starts one new day) and at most ``_MAX_NEW_DAYS``."""
    if last == today:
        return 0
    passed = (date.fromisoformat(today) - date.fromisoformat(last)).days
    return min(max(passed, 1), _MAX_NEW_DAYS)


def _day_string(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _day_before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def _menus_by_campaign(
    menus: MenuRows, campaign_ids: list[int], day_start: float
) -> list[MenuView | None]:
    """Per campaign of ``campaign_ids``, the sampled menus of the day that starts at
    ``day_start`` as its policy sees them (one campaign, row 0; ``None`` where there were
    none). Menus of another campaign, or of auctions outside that day, are left out."""
    out: list[MenuView | None] = [None] * len(campaign_ids)
    if not len(menus):
        return out
    index = {c: i for i, c in enumerate(campaign_ids)}
    where = np.array([index.get(c, -1) for c in menus.campaign_id.tolist()], np.int64)
    fraction = (menus.time - day_start) / DAY_SECONDS
    used = (where >= 0) & (fraction >= 0.0) & (fraction < 1.0)
    order = np.flatnonzero(used)[np.argsort(where[used], kind="stable")]
    bounds = np.searchsorted(where[order], np.arange(len(campaign_ids) + 1))
    for i in range(len(campaign_ids)):
        mine = order[bounds[i] : bounds[i + 1]]
        if len(mine):
            out[i] = MenuView(
                campaign=np.zeros(len(mine), np.int64),
                value=menus.value[mine],
                cost=menus.cost[mine],
                weight=menus.weight[mine],
                day_fraction=fraction[mine],
            )
    return out


def wall_clock() -> float:
    return time.time()
