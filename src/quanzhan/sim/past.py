"""The platform's past: ordinary days it ran before the first simulated one.

A marketplace does not switch its ad engine on the morning a merchant starts a campaign: the
engine has served ads before, and its models have learned from what came of them. With
``traffic.warmup_days`` set, a run starts from such a past instead of from priors. The same
market (catalog, shoppers, campaigns) plays that many ordinary days beforehand, with its own
page views and outcomes, no surges, and only the campaigns that were running then: no entrants,
no items new to the platform. The scenario's own policy (``engine.policy``) steers it. The
engine's log of those days carries over, shifted to end at the run's start (a click that lands
after the start, seconds after its impression, is not in it). So does every order that its
clicks bring later: each is handed to the engine when its time comes in the run, as yesterday's
late orders reach a live platform. The run then starts from models trained on that log, and from
what the platform learned across campaigns beside its models: how long orders take after their
click, and how the campaigns' realized orders stood against those predicted (the prior of every
campaign's value calibration). Budgets, ledger, policies and every figure start afresh: the past
is never measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.observer import PastEvidence
from quanzhan.bidding.policy import MenuView
from quanzhan.domain import DAY_SECONDS
from quanzhan.engine.log import Impressions
from quanzhan.engine.organic import OrganicEvents
from quanzhan.sim.config import ScenarioConfig

# Request and click ids of the past are moved out of the run's range (both count from zero):
# request ids below zero (their parity, which splits training folds, kept), click ids above.
_ID_OFFSET = 1 << 40


@dataclass(frozen=True, slots=True)
class PlatformPast:
    """What the days before the run left in the engine's log, on the run's clock (the past
    ends at time 0). ``ordered_clicks`` are the clicks whose orders came before the start, at
    ``ordered_time``; ``late_click`` are past clicks whose orders come after the start, at
    ``late_time``, in time order, each of campaign ``late_campaign``, clicked at
    ``late_click_time``. ``evidence`` is what the past's observer learned across campaigns
    (order delays, every campaign's realized and due orders), the platform's as its models are.
    ``landscape`` is a sample of the slot menus of the past's last day, in the engine's
    predicted terms of that day (``bidding.policy``'s ``recall_day``). ``organic`` are the
    platform's own results shown in the past and what shoppers clicked of them.
    """

    impressions: Impressions
    ordered_clicks: NDArray[np.int64]
    ordered_time: NDArray[np.float64]
    late_click: NDArray[np.int64]
    late_time: NDArray[np.float64]
    late_campaign: NDArray[np.int32]
    late_click_time: NDArray[np.float64]
    evidence: PastEvidence
    landscape: MenuView | None = None
    organic: OrganicEvents = field(default_factory=OrganicEvents.empty)

    def late_between(self, start: float, end: float) -> slice:
        """Where in the ``late_`` arrays the orders that arrive in ``(start, end]`` lie."""
        low, high = np.searchsorted(self.late_time, [start, end], side="right")
        return slice(int(low), int(high))


def past_config(config: ScenarioConfig) -> ScenarioConfig:
    """The scenario as it ran before its first day: ``warmup_days`` ordinary days."""
    traffic = config.traffic.model_copy(
        update={"days": config.traffic.warmup_days, "surges": (), "warmup_days": 0}
    )
    return config.model_copy(update={"traffic": traffic})


def play_past(
    config: ScenarioConfig, *, seed: int, progress: Callable[[int, int], None] | None = None
) -> PlatformPast | None:
    """Play the days before the run of ``config`` from ``seed``; ``None`` without any.
    ``progress`` hears of every tick played, as ``(done, total)``."""
    from quanzhan.sim.run import Simulation  # the past is played by the day loop itself

    days = config.traffic.warmup_days
    if days == 0:
        return None
    simulation = Simulation(past_config(config), seed=seed, recall=False, before_start=True)
    simulation.play(progress)
    shift = days * DAY_SECONDS
    later = simulation.market.remaining_orders()
    found = simulation.attribution.attribute(user=later.user, item=later.item, time=later.time)
    ad = found.campaign >= 0
    order = np.argsort(later.time[ad], kind="stable")
    log = simulation.engine.log
    late_click, late_time = found.click_id[ad][order].astype(np.int64), later.time[ad][order]
    late_campaign, late_click_time = found.campaign[ad][order], found.click_time[ad][order]
    if len(log):
        shown = log.impressions()
        # A click lags its impression by seconds, so an ad shown in the past's last moments may
        # be clicked after the run began. The log as it stood at the start holds no such click
        # (nor any order of it, all still to come): the ad counts as shown, not clicked.
        after = (shown.click_id >= 0) & (shown.click_time - shift >= 0.0)
        kept = ~np.isin(late_click, shown.click_id[after])
        late_click, late_time = late_click[kept], late_time[kept]
        late_campaign, late_click_time = late_campaign[kept], late_click_time[kept]
        clicked = (shown.click_id >= 0) & ~after
        impressions = Impressions(
            request_id=shown.request_id - _ID_OFFSET,
            time=shown.time - shift,
            surface=shown.surface,
            slot=shown.slot,
            campaign=shown.campaign,
            user=shown.user,
            click_id=np.where(clicked, shown.click_id + _ID_OFFSET, -1),
            click_time=np.where(clicked, shown.click_time - shift, np.nan),
            x_ctr=shown.x_ctr,
            x_cvr=shown.x_cvr,
            pctr=shown.pctr,
            pcvr=shown.pcvr,
        )
    else:
        impressions = Impressions.empty()
    ordered_clicks, ordered_time = log.orders()
    return PlatformPast(
        impressions=impressions,
        ordered_clicks=ordered_clicks + _ID_OFFSET,
        ordered_time=ordered_time - shift,
        late_click=late_click + _ID_OFFSET,
        late_time=late_time - shift,
        late_campaign=late_campaign.astype(np.int32),
        late_click_time=late_click_time - shift,
        evidence=simulation.observer.evidence().shifted(-shift),
        landscape=simulation.landscape.view() if simulation.landscape is not None else None,
        organic=_shifted(OrganicEvents.concat(simulation.organic_kept or []), -shift),
    )


def _shifted(organic: OrganicEvents, seconds: float) -> OrganicEvents:
    return replace(organic, time=organic.time + seconds)
