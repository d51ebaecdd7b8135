"""The control loop inside the service: on a wall-clock tick, each active campaign's policy reads
today's figures and sets the campaign's next bid multiplier.

The policies are the simulator's (``bidding.registry``), one instance per campaign (policies treat
campaigns independently), pickled into the ``controllers`` table after every tick, so a
restarted service resumes each controller where it stopped. With several serving processes on
one database, one of them holds the control lease and runs the loop; if it dies, another takes
the lease over when it lapses.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, insert, select, update

from quanzhan.bidding.delay import DelayModel
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.policy import CampaignSpec, Observation, Policy
from quanzhan.bidding.registry import make_policy
from quanzhan.domain import DAY_SECONDS, RoiBasis
from quanzhan.store.catalog import ControllerStart
from quanzhan.store.database import Database
from quanzhan.store.events import day_of
from quanzhan.store.observations import (
    active_controllers,
    day_figures,
    hourly_traffic,
    order_delays,
)
from quanzhan.store.schema import controllers, leases

log = logging.getLogger("quanzhan.control")

_LEASE = "control"
_FORECAST_DAYS = 7


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


class ControlLoop:
    """Runs one tick at a time; ``holder`` names this process for the lease."""

    def __init__(
        self, *, database: Database, tick_seconds: float, holder: str, clock: Callable[[], float]
    ) -> None:
        self.database = database
        self.tick_seconds = tick_seconds
        self.holder = holder
        self.clock = clock
        self.ticks = 0

    def tick(self) -> bool:
        """One control tick if this process holds the lease; whether it ran."""
        now = self.clock()
        if not self.database.retrying(lambda c: self._take_lease(c, now)):
            return False
        self.database.retrying(lambda c: self._steer(c, now))
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
        connection.execute(
            insert(leases).values(name=_LEASE, holder=self.holder, expires_at=expires)
        )
        return True

    def _steer(self, connection: Connection, now: float) -> None:
        rows = active_controllers(connection)
        if not rows:
            return
        today = day_of(now)
        midnight = datetime.fromisoformat(today).replace(tzinfo=UTC)
        day_start = midnight.timestamp()
        figures = day_figures(connection, rows=rows, day=today, day_start=day_start)
        delay = DelayModel()
        click_time, order_time = order_delays(connection, now=now)
        if len(click_time):
            delay.fit(delay=order_time - click_time, horizon=now - click_time)
        arrived: NDArray[np.float64] = np.bincount(
            figures.click_campaign,
            weights=figures.click_pcvr * delay.share_arrived(now - figures.click_time),
            minlength=len(rows),
        ).astype(np.float64)
        day_fraction = (now - day_start) / DAY_SECONDS
        planned = self._forecast(connection, midnight).share_elapsed(day_fraction)
        for i, row in enumerate(rows):
            policy: Policy = pickle.loads(row["state"])
            if row["day"] != today:
                policy.start_day()
            policy.update(
                Observation(
                    now=now,
                    day_fraction=day_fraction,
                    planned_share=planned,
                    spend=figures.spend[i : i + 1],
                    gmv_realized=figures.gmv[i : i + 1],
                    gmv_predicted=figures.gmv_predicted[i : i + 1],
                    orders_realized=figures.orders[i : i + 1],
                    orders_arrived=arrived[i : i + 1],
                    gmv_organic=figures.gmv_organic[i : i + 1],
                    clicks=figures.clicks[i : i + 1],
                )
            )
            multiplier = float(policy.multipliers()[0])
            connection.execute(
                update(controllers)
                .where(controllers.c.campaign_id == row["id"])
                .values(
                    multiplier=multiplier,
                    state=pickle.dumps(policy),
                    day=today,
                    updated_at=now,
                )
            )
            log.debug("steered", extra={"campaign_id": row["id"], "multiplier": multiplier})

    @staticmethod
    def _forecast(connection: Connection, midnight: datetime) -> TrafficForecast:
        days = [
            (midnight - timedelta(days=d)).strftime("%Y-%m-%d")
            for d in range(_FORECAST_DAYS, 0, -1)
        ]
        forecast = TrafficForecast()
        for hourly in hourly_traffic(connection, days=days).values():
            forecast.add_day(hourly)
        return forecast


def wall_clock() -> float:
    return time.time()
