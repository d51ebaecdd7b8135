"""The decision path over a batch: retrieval, prediction, bidding, auction.

``Engine.decide`` serves a batch of one page view (HTTP) or of a hundred thousand (simulation)
through the same code. The engine keeps no money: it takes each campaign's remaining budget and
bid multiplier as inputs, and the ledger decides what is charged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, CampaignMode, CampaignTable, ItemTable
from quanzhan.engine.affinity import CategoryAffinity
from quanzhan.engine.auction import AuctionResult, run_auction
from quanzhan.engine.batch import Candidates, Decision, RequestBatch
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.log import EventLog, Impressions, Landscape
from quanzhan.engine.opportunity import Opportunities, slot_menus
from quanzhan.engine.organic import OrganicEvents, OrganicEvidence
from quanzhan.engine.popularity import history_popularity
from quanzhan.engine.prediction import Predictor, ServedAffinity
from quanzhan.engine.profiles import UserProfiles
from quanzhan.engine.retrieval import Retriever

PredictionSource = Callable[
    [RequestBatch, NDArray[np.int32]], tuple[NDArray[np.float64], NDArray[np.float64]]
]

# Requests scored together; bounds memory on large batches without costing throughput.
_CHUNK = 16_384


@dataclass(frozen=True, slots=True)
class Decided:
    """``decide``'s answer: the decision, the winners' features ``(n, s, f)`` as served (for the
    log), and, on request, every full-site candidate's slot menu."""

    decision: Decision
    x_ctr: NDArray[np.float32]
    x_cvr: NDArray[np.float32]
    menus: Opportunities | None


class Engine:
    """The ad decision engine of one marketplace.

    ``items`` is the public catalog and ``campaigns`` the campaigns it serves (row = campaign id).
    ``history_user``/``history_item`` are past clicks from the platform's behaviour log.
    """

    def __init__(
        self,
        *,
        config: EngineConfig,
        items: ItemTable,
        campaigns: CampaignTable,
        n_users: int,
        max_slots: int,
        history_user: NDArray[np.int32] | None = None,
        history_item: NDArray[np.int32] | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.items = items
        self.campaigns = campaigns
        self.max_slots = max_slots
        self.profiles = UserProfiles(n_users=n_users, n_categories=items.n_categories)
        if history_user is not None and history_item is not None:
            self.profiles.add(user=history_user, category=items.category[history_item])
        self.affinity = CategoryAffinity(n_categories=items.n_categories, rank=config.embedding_dim)
        self.retriever = Retriever(
            items=items,
            campaign_item=campaigns.item,
            k=config.candidates,
            search_requires_match=config.search_requires_match,
        )
        popularity = None
        if history_item is not None:
            popularity = history_popularity(
                item_category=items.category,
                n_categories=items.n_categories,
                history_item=history_item,
            )[campaigns.item]
        self.predictor = Predictor(
            config=config,
            items=items,
            campaign_item=campaigns.item,
            max_slots=max_slots,
            seed=seed,
            popularity=popularity,
        )
        self.log = EventLog()
        self._reserve = np.array(config.reserve_by_surface())
        self._floor = np.array(config.floor_by_surface())
        self._price = items.price[campaigns.item]
        self._manual = campaigns.mode == CampaignMode.MANUAL_CPC
        self._profiled_clicks = 0
        self._organic: list[OrganicEvidence] = []  # recorded since the last refresh
        # Evaluation only: pCTR (first slot) and pCVR from elsewhere, for ``(batch, (n, k)
        # campaigns)``; the simulator's oracle-predictions run puts the truth here.
        self.prediction_override: PredictionSource | None = None

    def menu_terms(self, menus: Opportunities) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each menu's value and cost per slot ``(m, s)`` in the engine's predicted terms: the
        clicks a slot brings (pCTR at its position) times predicted GMV per click, and those
        clicks times the price per click; ``nan`` where the page has no such slot."""
        slots = menus.price.shape[1]
        # One factor per (surface, slot): looked up per menu, not worked out per menu.
        by_surface = self.predictor.position_factor(
            np.repeat(np.arange(N_SURFACES, dtype=np.int8), slots),
            np.tile(np.arange(slots), N_SURFACES),
        ).reshape(N_SURFACES, slots)
        position = by_surface[menus.surface]
        clicks = position * menus.pctr[:, None]
        price = self.items.price[self.campaigns.item[menus.campaign]]
        return clicks * (menus.pcvr * price)[:, None], clicks * menus.price

    def decide(
        self,
        batch: RequestBatch,
        *,
        multiplier: NDArray[np.float64],
        remaining_budget: NDArray[np.float64],
        active: NDArray[np.bool_] | None = None,
        with_menus: bool = False,
        menu_campaigns: NDArray[np.bool_] | None = None,
        spent_menus: bool = True,
    ) -> Decided:
        """Slots, prices and predictions for every request.

        ``multiplier`` is each campaign's bid per unit of value; ``remaining_budget`` caps each
        bid, and campaigns with nothing left (or not ``active``) do not bid. ``with_menus`` also
        returns the slot menus (``engine.opportunity``) of the candidates among
        ``menu_campaigns`` (default: every campaign that is not manual CPC), and of the active
        ones among them out of budget in the auctions they would have entered (unless not
        ``spent_menus``: where no one will read them, they cost a second retrieval); what is
        shown is the same with menus or without.
        """
        if len(multiplier) != len(self.campaigns) or len(remaining_budget) != len(self.campaigns):
            raise ValueError("multiplier and remaining_budget need one entry per campaign")
        listed = np.ones(len(self.campaigns), dtype=bool) if active is None else active.copy()
        live = listed & (remaining_budget > 0)
        # Menus must cover a campaign's whole day, budget or not, so that the hindsight optimum
        # does not depend on when a policy ran the budget out: a campaign with nothing left gets
        # the menus of the auctions it would have entered (``_out_of_budget``), and the auction's
        # candidates are the live ones alone.
        if not (with_menus and spent_menus):
            listed = live
        starts = list(range(0, max(len(batch), 1), _CHUNK))
        menus_of = None
        if with_menus:
            menus_of = ~self._manual if menu_campaigns is None else menu_campaigns
        parts = [
            self._decide_chunk(
                _slice(batch, start), multiplier, remaining_budget, listed, live, menus_of
            )
            for start in starts
        ]
        if len(parts) == 1:
            return parts[0]
        merged = Decision(
            **{
                name: np.concatenate([getattr(p.decision, name) for p in parts])
                for name in Decision.__dataclass_fields__
            }
        )
        menus = [p.menus for p in parts if p.menus is not None]
        return Decided(
            decision=merged,
            x_ctr=np.concatenate([p.x_ctr for p in parts]),
            x_cvr=np.concatenate([p.x_cvr for p in parts]),
            menus=Opportunities.concat(menus, offsets=starts) if with_menus else None,
        )

    def _decide_chunk(
        self,
        batch: RequestBatch,
        multiplier: NDArray[np.float64],
        remaining: NDArray[np.float64],
        listed: NDArray[np.bool_],
        live: NDArray[np.bool_],
        menus_of: NDArray[np.bool_] | None,
    ) -> Decided:
        candidates, interest, affinity = self.retrieve(batch, live=live)
        # Only the campaigns whose menus are wanted: a spent manual-CPC campaign would take a
        # place among the ``K`` retrieved for nothing.
        spent = None if menus_of is None else listed & ~live & menus_of
        if spent is not None and spent.any():
            candidates = self._out_of_budget(batch, candidates, spent, interest, affinity)
        campaign = candidates.campaign
        c = np.maximum(campaign, 0)
        x_ctr, x_cvr = self.predictor.features(
            campaign=campaign, retrieval=candidates.score, interest=interest, affinity=affinity
        )
        pctr, pcvr = self.predictor.predict(surface=batch.surface, x_ctr=x_ctr, x_cvr=x_cvr)
        if self.prediction_override is not None:
            pctr, pcvr = self.prediction_override(batch, campaign)
        bid = np.where(
            self._manual[c], self.campaigns.manual_cpc[c], multiplier[c] * pcvr * self._price[c]
        )
        bid = np.minimum(bid, remaining[c])
        valid = candidates.valid & live[c]
        reserve = self._reserve[batch.surface]
        floor = self._floor[batch.surface]
        result = run_auction(
            bid=bid,
            pctr=pctr,
            item=self.campaigns.item[c],
            valid=valid,
            n_slots=batch.n_slots,
            reserve=reserve,
            relevance_floor=floor,
            max_slots=self.max_slots,
        )
        menus = None
        if menus_of is not None:
            menus = slot_menus(
                request_id=batch.request_id,
                surface=batch.surface,
                campaign=campaign,
                eligible=candidates.valid
                & listed[c]
                & menus_of[c]
                & (pctr >= floor[:, None])
                & (pctr > 0),
                pctr=pctr,
                pcvr=pcvr,
                landscape_ecpm=result.landscape_ecpm,
                landscape_col=result.landscape_col,
                winner=result.winner,
                n_slots=batch.n_slots,
                reserve=reserve,
            )
        x_win_ctr, x_win_cvr = self._winner_features(result.winner, x_ctr, x_cvr)
        return Decided(
            decision=self._assemble(batch, campaign, bid, pctr, pcvr, result),
            x_ctr=x_win_ctr,
            x_cvr=x_win_cvr,
            menus=menus,
        )

    def _out_of_budget(
        self,
        batch: RequestBatch,
        live: Candidates,
        spent: NDArray[np.bool_],
        interest: NDArray[np.float32],
        affinity: NDArray[np.float32],
    ) -> Candidates:
        """``live`` candidates followed by the ``spent`` campaigns (active, out of budget) that
        would have been among them had they had budget left: those retrieval ranks above the
        last live candidate, or any where the live list is short; the best ``K`` of them at
        most. They do not bid; they give the menus of the auctions they would have entered,
        against the live candidates alone."""
        found = self.retriever.retrieve(batch, interest=interest, affinity=affinity, live=spent)
        last = np.where(live.valid[:, -1], live.rank[:, -1], -np.inf)
        # Retrieval lists best first, so each row's entrants are a prefix of its list.
        entered = found.valid & (found.rank > last[:, None])
        width = int(entered.sum(axis=1).max()) if len(batch) else 0
        if width == 0:
            return live
        kept = entered[:, :width]
        return Candidates(
            campaign=np.hstack([live.campaign, np.where(kept, found.campaign[:, :width], -1)]),
            score=np.hstack([live.score, np.where(kept, found.score[:, :width], 0.0)]),
            rank=np.hstack([live.rank, np.where(kept, found.rank[:, :width], -np.inf)]),
        )

    def retrieve(
        self, batch: RequestBatch, *, live: NDArray[np.bool_], k: int | None = None
    ) -> tuple[Candidates, NDArray[np.float32], NDArray[np.float32]]:
        """Candidates among ``live`` campaigns, with the viewers' ``(n, categories)`` interest
        and affinity they were found by (the models' features need both)."""
        interest = self.profiles.distribution(batch.user)
        affinity = self.affinity.affinities(interest)
        found = self.retriever.retrieve(batch, interest=interest, affinity=affinity, live=live, k=k)
        return found, interest, affinity

    def _assemble(
        self,
        batch: RequestBatch,
        campaign: NDArray[np.int32],
        bid: NDArray[np.float64],
        pctr: NDArray[np.float64],
        pcvr: NDArray[np.float64],
        result: AuctionResult,
    ) -> Decision:
        won = result.winner >= 0
        col = np.maximum(result.winner, 0)
        chosen = np.where(won, np.take_along_axis(campaign, col, axis=1), -1).astype(np.int32)
        slot = np.broadcast_to(np.arange(self.max_slots), chosen.shape)
        position = self.predictor.position_factor(
            np.repeat(batch.surface, self.max_slots), slot.ravel().astype(np.int64)
        ).reshape(chosen.shape)
        top_pctr = np.take_along_axis(pctr, col, axis=1)
        lcol = np.maximum(result.landscape_col, 0)
        return Decision(
            campaign=chosen,
            item=np.where(won, self.campaigns.item[np.maximum(chosen, 0)], -1).astype(np.int32),
            price=result.price,
            bid=np.where(won, np.take_along_axis(bid, col, axis=1), 0.0),
            pctr=np.where(won, np.minimum(top_pctr * position, 1.0), 0.0),
            pcvr=np.where(won, np.take_along_axis(pcvr, col, axis=1), 0.0),
            landscape_ecpm=result.landscape_ecpm,
            landscape_campaign=np.where(
                result.landscape_col >= 0, np.take_along_axis(campaign, lcol, axis=1), -1
            ).astype(np.int32),
        )

    @staticmethod
    def _winner_features(
        winner: NDArray[np.int32], x_ctr: NDArray[np.float32], x_cvr: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        col = np.maximum(winner, 0)[:, :, None]
        return np.take_along_axis(x_ctr, col, axis=1), np.take_along_axis(x_cvr, col, axis=1)

    def set_campaigns(self, campaigns: CampaignTable) -> None:
        """New modes, manual bids or budgets for the same campaigns (same rows, same items)."""
        if len(campaigns) != len(self.campaigns) or not np.array_equal(
            campaigns.item, self.campaigns.item
        ):
            raise ValueError("set_campaigns takes the same campaigns, row for row")
        self.campaigns = campaigns
        self._manual = campaigns.mode == CampaignMode.MANUAL_CPC

    def model_state(self) -> dict[str, NDArray[np.float64]]:
        """Every learned parameter as named arrays: ``predictor.*`` and ``affinity.*``.

        Profiles are shoppers' data, not model, and stay out. ``load_model_state`` takes the
        same names and shapes back (the same catalog and campaigns) and raises ``ValueError``
        on any difference, changing nothing.
        """
        out: dict[str, NDArray[np.float64]] = {}
        for prefix, part in (("predictor", self.predictor), ("affinity", self.affinity)):
            for name, array in part.state().items():
                out[f"{prefix}.{name}"] = np.asarray(array, dtype=np.float64)
        return out

    def load_model_state(self, state: dict[str, NDArray[np.float64]]) -> None:
        parts: dict[str, dict[str, NDArray[np.float64]]] = {"predictor": {}, "affinity": {}}
        for key, array in state.items():
            prefix, _, name = key.partition(".")
            if prefix not in parts:
                raise ValueError(f"model state {key!r} belongs to no part of the engine")
            parts[prefix][name] = array
        # Each part checks everything before it changes anything; the predictor is put back
        # if the affinity then refuses, so a bad state changes nothing.
        backup = self.predictor.state()
        self.predictor.load_state(parts["predictor"])
        try:
            self.affinity.load_state(
                {k: v.astype(np.float32) for k, v in parts["affinity"].items()}
            )
        except ValueError:
            self.predictor.load_state(backup)
            raise
        # Retrieval's weights are read off the models, as after a refresh.
        self.retriever.update(self.predictor.value_model(self._price))

    def record(self, impressions: Impressions) -> None:
        """Log shown ads and their clicks; they are learned from at the next ``refresh``."""
        self.log.add_impressions(impressions)

    def record_organic(self, events: OrganicEvents) -> None:
        """Log the platform's own results shown and clicked (``engine.organic``); shoppers'
        tastes are learned from them at the next ``refresh``, which reads only their
        ``OrganicEvidence``."""
        if len(events):
            self._organic.append(OrganicEvidence.of(events, self.items.category))

    def record_auctions(self, batch: RequestBatch, decision: Decision) -> None:
        """Log each auction's landscape, for the hindsight optimum."""
        self.log.add_landscape(
            Landscape(
                request_id=batch.request_id,
                time=batch.time,
                surface=batch.surface,
                n_slots=batch.n_slots,
                ecpm=decision.landscape_ecpm,
                campaign=decision.landscape_campaign,
            )
        )

    def record_attributed_orders(
        self, click_id: NDArray[np.int64], time: NDArray[np.float64]
    ) -> None:
        """Log orders by the click each was attributed to and when it was placed (``nan``
        where unknown): labels for the purchase model, delays for its delay distribution."""
        self.log.add_attributed_orders(click_id, time)

    def refresh(self, *, now: float) -> None:
        """Relearn profiles, the category affinity, rates and models from the log and the
        organic results recorded since the last refresh, then re-rank retrieval by quality."""
        organic = OrganicEvidence.concat(self._organic)
        self._organic = []
        if len(self.log) == 0 and len(organic) == 0:
            return
        # The rows held out to calibrate the models (those since the last refresh) were served
        # with the profiles before it. On a first refresh over a long log (a file, a platform's
        # past) they are the log's last refresh interval (``Predictor.refresh``), served with
        # every click before that interval.
        first = self.predictor.refreshes == 0
        served_until = now - self.config.refresh_hours * 3600 if first else -np.inf
        served = self._learn_tastes(organic, served_until=served_until)
        if len(self.log) == 0:  # organic results before any ad was shown
            return
        self.predictor.refresh(
            log=self.log, now=now, served_affinity=self._affinity_as_served(served)
        )
        self.retriever.update(self.predictor.value_model(self._price))

    def _learn_tastes(self, organic: OrganicEvidence, *, served_until: float) -> UserProfiles:
        """Profiles count the clicks since the last refresh, on ads and organic results; the
        affinity keeps the organic evidence and refits on it and the latest logged ads. Returns
        the profiles as they stood with the clicks up to ``served_until`` alone."""
        impressions = self.log.impressions() if len(self.log) else Impressions.empty()
        new = np.flatnonzero(impressions.clicked[self._profiled_clicks :]) + self._profiled_clicks
        self._profiled_clicks = len(impressions)
        ad_category = self.predictor.category[impressions.campaign].astype(np.int32)
        hit = np.flatnonzero(organic.clicked)
        ad_early = impressions.click_time[new] <= served_until
        organic_early = organic.time[hit] <= served_until

        def count(ads: NDArray[np.intp], hits: NDArray[np.intp]) -> None:
            self.profiles.add(user=impressions.user[ads], category=ad_category[ads])
            self.profiles.add(user=organic.user[hits], category=organic.category[hits])

        count(new[ad_early], hit[organic_early])
        served = self.profiles.snapshot()
        count(new[~ad_early], hit[~organic_early])
        self.affinity.observe_organic(
            counts=self.profiles.counts,
            user=organic.user,
            category=organic.category,
            surface=organic.surface,
            position=organic.position,
            clicked=organic.clicked,
        )
        recent = slice(max(0, len(impressions) - self.config.max_training_rows), None)
        self.affinity.fit(
            counts=self.profiles.counts,
            user=impressions.user[recent],
            category=ad_category[recent],
            clicked=impressions.clicked[recent],
            exposure=self.predictor.position_factor(
                impressions.surface[recent], impressions.slot[recent]
            ),
        )
        return served

    def _affinity_as_served(self, served: UserProfiles) -> ServedAffinity:
        """Logged rows' affinity from the profiles ``served`` (as they stood since the last
        refresh) and the affinity as learned now."""

        def affinity(rows: Impressions) -> NDArray[np.float32]:
            category = self.predictor.category[rows.campaign]
            return self.affinity.of_rows(served, user=rows.user, category=category)

        return affinity


def _slice(batch: RequestBatch, start: int) -> RequestBatch:
    if start == 0 and len(batch) <= _CHUNK:
        return batch
    end = start + _CHUNK
    return RequestBatch(
        request_id=batch.request_id[start:end],
        time=batch.time[start:end],
        surface=batch.surface[start:end],
        user=batch.user[start:end],
        query_terms=batch.query_terms[start:end],
        context_item=batch.context_item[start:end],
        n_slots=batch.n_slots[start:end],
    )
