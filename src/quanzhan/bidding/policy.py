"""The bidding-policy interface: what a policy is given and what it must answer (the policies
that ship are named in ``bidding.registry``).

A policy steers the full-site campaigns of one market: for campaign ``c`` the engine bids
``multipliers()[c] * pCVR * price`` per click. The simulator (or the service) drives it:

    policy.reset(campaigns=spec, seed=7)     # before the first page view
    for every control tick:
        k = policy.multipliers()             # read before each batch of auctions
        ...                                  # auctions, charges, orders
        policy.update(observation)           # the tick's figures, today so far
    policy.start_day()                       # at midnight: budgets start again

Contract, checked for every registered policy by ``tests/bidding/test_policy_conformance.py``:

- ``multipliers()`` returns ``(n,)`` finite, non-negative floats and never aliases internal state;
- the same seed and the same observations give the same multipliers (no hidden randomness);
- a policy is picklable (so runs can be checkpointed and sharded);
- a policy sees only its campaigns' own figures: everything in ``Observation`` is per campaign,
  but for what the platform learns across all campaigns, as its models do (the order-delay
  distribution behind ``orders_arrived``, the ``value_prior``), which the driver fits.

A policy may also define ``recall_day(menus: MenuView)``. Where the platform ran before the
policy took over, the driver then hands it, after ``reset``, the slot menus of the platform's
last day before (a sample, ``MenuView.weight`` saying how many auctions each row stands for,
``MenuView.day_fraction`` when in the day each ran), valued by the engine's models as they
were then, whatever steered the bids: a landscape policy plans its first day on them instead
of on the first hours alone. A campaign that did not run then has no rows.

A policy may also define ``expect_promotions(calendar: Sequence[Promotion])``: where the
platform has announced promotion windows (``bidding.calendar``: a day of the run, the hours,
the traffic expected against an ordinary day's), the driver hands them over after ``reset``
and ``recall_day``, before the first update; the landscape policy plans a promotion day's
budget over the windows' extra auctions. Such a policy also says which of its days it is on
(``day``: 0 the first, one more at each ``start_day``), so that a driver whose calendar is
dated (the service's) can count days as it does, and may hand the calendar over again
before any update.

Budgets are enforced by the ledger whatever a policy does; a policy's job is to spend well.
To plug in your own, implement the four methods and pass an instance where a policy is asked
for (``Simulation(..., policy=MyPolicy())``) or add it to ``POLICIES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.value_prior import GammaPrior
from quanzhan.domain import RoiBasis


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What the merchants asked for, ``(n,)`` each."""

    budget: NDArray[np.float64]
    target_roi: NDArray[np.float64]
    roi_basis: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.budget)

    @property
    def full_site(self) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = self.roi_basis == RoiBasis.FULL_SITE
        return mask


@dataclass(frozen=True, slots=True)
class MenuView:
    """Slot menus in the engine's own predicted terms: row ``a`` is one auction
    a campaign took part in, ``value``/``cost`` ``(m, s)`` what each slot would have brought and
    cost (``nan`` where absent), ``campaign`` ``(m,)`` whose menu it is; ``weight`` ``(m,)``,
    where the rows are a sample, how many auctions each stands for (``None``: one each);
    ``day_fraction`` ``(m,)``, when in its day each auction ran, 0 at midnight to 1 (``None``,
    or ``nan`` in a row: not known)."""

    campaign: NDArray[np.int64]
    value: NDArray[np.float64]
    cost: NDArray[np.float64]
    weight: NDArray[np.float64] | None = None
    day_fraction: NDArray[np.float64] | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One control tick's figures for today so far, ``(n,)`` per campaign.

    - ``planned_share``: the traffic forecast's share of today's page views already past;
    - ``spend``: charged today;
    - ``gmv_realized``: GMV of the orders already attributed to today's ad clicks;
    - ``gmv_predicted``: the engine's predicted GMV of today's ad clicks (pCVR x price);
    - ``orders_realized``: orders already attributed to today's ad clicks;
    - ``orders_arrived``: the orders today's clicks were predicted to bring (sum of pCVR) that
      should have arrived by now under the learned order-delay distribution: the fair yardstick
      for ``orders_realized`` while orders are still on their way;
    - ``gmv_organic``: the item's organic GMV today (counts on the full-site basis);
    - ``clicks``: today's ad clicks;
    - ``menus``: the slot menus of the auctions since the previous update, for policies that
      plan over the landscape (``None`` when there were none, or the policy does not need them);
      a policy keeps what it wants of them;
    - ``value_prior``: how the steered campaigns' realized orders stand against those due,
      fitted over all of them (``bidding.value_prior``): the prior of each campaign's own
      value calibration (``None`` where the driver fits none).
    """

    now: float
    day_fraction: float
    planned_share: float
    spend: NDArray[np.float64]
    gmv_realized: NDArray[np.float64]
    gmv_predicted: NDArray[np.float64]
    orders_realized: NDArray[np.float64]
    orders_arrived: NDArray[np.float64]
    gmv_organic: NDArray[np.float64]
    clicks: NDArray[np.float64]
    menus: MenuView | None = None
    value_prior: GammaPrior | None = None


class Policy(Protocol):
    """Steers bid multipliers; see the module docstring for the contract.

    ``needs_menus``: whether ``update`` wants ``Observation.menus`` (they cost time to gather).
    """

    name: str
    needs_menus: bool

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        """Start afresh for these campaigns."""
        ...

    def multipliers(self) -> NDArray[np.float64]:
        """``(n,)`` bid multipliers to use until the next update."""
        ...

    def update(self, observation: Observation) -> None:
        """Take one tick's figures and move the multipliers."""
        ...

    def start_day(self) -> None:
        """A new day: daily figures start again from zero."""
        ...


def basis_gmv(
    spec: CampaignSpec, ad_gmv: NDArray[np.float64], organic: NDArray[np.float64]
) -> NDArray[np.float64]:
    """GMV on each campaign's ROI basis: organic counts on the full-site basis only."""
    out: NDArray[np.float64] = ad_gmv + np.where(spec.full_site, organic, 0.0)
    return out


# A policy whose first update comes later than this share of the day started part-way through
# it (the service starts one when a campaign is created, or its budget or target changes); the
# simulator's first tick of a day is a ninety-sixth of it.
JOINED_AFTER = 0.05


def joined_at(observation: Observation) -> tuple[float, NDArray[np.float64]] | None:
    """Where a policy's first update after ``reset`` says it joined the day part-way through:
    the share of the day's traffic past then and today's spend so far; ``None`` where it came
    within ``JOINED_AFTER`` of midnight."""
    if observation.day_fraction > JOINED_AFTER:
        return observation.planned_share, np.asarray(observation.spend, np.float64).copy()
    return None


def planned_spend(
    budget: NDArray[np.float64],
    planned_share: float,
    joined: tuple[float, NDArray[np.float64]] | None,
) -> NDArray[np.float64]:
    """The spend planned by ``planned_share`` of the day: the budget times that share; on a
    day joined part-way through (``joined_at``), the spend then plus what was left of the
    budget times the share past since, over the share that was left. A policy started at
    noon has no morning to have fallen behind on."""
    if joined is None:
        out: NDArray[np.float64] = budget * planned_share
        return out
    share, spent = joined
    since = max(planned_share - share, 0.0) / max(1.0 - share, 1e-9)
    out = spent + np.maximum(budget - spent, 0.0) * since
    return out


def orders_to_date(
    seen: NDArray[np.float64], due: NDArray[np.float64], today: Observation | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Realized and due orders over past days (``seen``, ``due``) and today so far: the
    evidence a policy calibrates its predicted GMV with."""
    if today is None:
        return seen.copy(), due.copy()
    return seen + today.orders_realized, due + today.orders_arrived


PolicyFactory = Callable[[], Policy]
