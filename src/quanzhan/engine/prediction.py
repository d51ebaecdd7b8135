"""Click and purchase prediction learned from the engine's own log.

Both models are per-surface logistic regressions (``engine.logistic``) over five features of a
(request, campaign) pair:

    retrieval   the retrieval score (text match on search, similarity elsewhere)
    interest    log share of the shopper's past clicks in the item's category
    item_rate   smoothed logit of the item's rate (clicks per exposure, or orders per click)
    cat_rate    smoothed logit of the item's category rate
    price       log of the price against its category's median

Rates used in training are out-of-fold (rows split in two by request id, each half encoded from
the other), so a row's own outcome never leaks into its features. Clicks are counted against
exposure, the sum of the position factors of their impressions, so an item shown low is not
mistaken for a weak item. Purchase labels use only clicks older than the conversion maturity, so
orders still on their way are not read as no order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from quanzhan.domain import ItemTable
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.logistic import LogisticModel
from quanzhan.engine.rates import smoothed_logit

FEATURES = ("retrieval", "interest", "item_rate", "cat_rate", "price")
N_FEATURES = len(FEATURES)
_ITEM_STRENGTH = 30.0  # pseudo-trials of the category rate behind each item rate
_CATEGORY_STRENGTH = 300.0  # pseudo-trials of the global rate behind each category rate
_NEGATIVES_PER_CLICK = 3.0  # negative down-sampling for the click model, re-weighted
_MIN_ORDERS = 20  # below this many labelled orders the purchase model keeps its prior


class Predictor:
    """pCTR and pCVR for (request, campaign) pairs; ``refresh`` relearns from an ``EventLog``."""

    def __init__(
        self,
        *,
        config: EngineConfig,
        items: ItemTable,
        campaign_item: NDArray[np.int32],
        max_slots: int,
        seed: int,
    ) -> None:
        self.config = config
        self._category = items.category[campaign_item].astype(np.int64)
        self._n_categories = items.n_categories
        self._price = _relative_price(items, campaign_item)
        self._rng = np.random.default_rng(seed)
        n = len(campaign_item)
        self.click = LogisticModel.prior(
            rate=config.prior_ctr, n_features=N_FEATURES, n_positions=max(max_slots, 1)
        )
        self.click.shared[1] = 0.5  # before any data, lean on the shopper's category interest
        decay = np.log(config.prior_position_decay) * np.arange(max(max_slots, 1))
        self.click.position[:] = decay[None, :]
        self.purchase = LogisticModel.prior(
            rate=config.prior_cvr, n_features=N_FEATURES, n_positions=1
        )
        self.ctr_item = np.full(n, logit(config.prior_ctr))
        self.ctr_category = np.full(items.n_categories, logit(config.prior_ctr))
        self.cvr_item = np.full(n, logit(config.prior_cvr))
        self.cvr_category = np.full(items.n_categories, logit(config.prior_cvr))
        self.refreshes = 0

    @property
    def category(self) -> NDArray[np.int64]:
        """The category of each campaign's item."""
        return self._category

    def features(
        self,
        *,
        campaign: NDArray[np.int32],
        retrieval: NDArray[np.float32],
        interest: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(n, k, f)`` click and purchase features; ``interest`` is ``(n, categories)``."""
        c = np.maximum(campaign, 0)
        category = self._category[c]
        share = np.take_along_axis(interest, category, axis=1)
        common = [retrieval, np.log(np.maximum(share, 1e-6)), self._price[c]]
        x_ctr = np.stack(
            [common[0], common[1], self.ctr_item[c], self.ctr_category[category], common[2]], -1
        )
        x_cvr = np.stack(
            [common[0], common[1], self.cvr_item[c], self.cvr_category[category], common[2]], -1
        )
        return x_ctr.astype(np.float32), x_cvr.astype(np.float32)

    def predict(
        self, *, surface: NDArray[np.int8], x_ctr: NDArray[np.float32], x_cvr: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(n, k)`` pCTR at the first slot and pCVR, for ``(n, k, f)`` features."""
        return self.click.predict_grid(surface, x_ctr), self.purchase.predict_grid(surface, x_cvr)

    def position_factor(
        self, surface: NDArray[np.int8], slot: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Learned click odds of ``slot`` relative to the first slot (approximately)."""
        top = self.click.position.shape[1] - 1
        out: NDArray[np.float64] = np.exp(self.click.position[surface, np.minimum(slot, top)])
        return out

    def refresh(self, *, log: EventLog, now: float) -> None:
        """Relearn rates and both models from everything logged up to ``now``."""
        if len(log) == 0:
            return
        impressions = log.impressions()
        self._refresh_click(impressions)
        self._refresh_purchase(impressions, log.ordered_clicks(), now)
        self.refreshes += 1

    def state(self) -> dict[str, NDArray[np.float64]]:
        """Everything learned, as named arrays (for a model directory)."""
        out: dict[str, NDArray[np.float64]] = {
            "ctr_item": self.ctr_item,
            "ctr_category": self.ctr_category,
            "cvr_item": self.cvr_item,
            "cvr_category": self.cvr_category,
            "refreshes": np.array([self.refreshes], dtype=np.float64),
        }
        for name, model in (("click", self.click), ("purchase", self.purchase)):
            for part in ("bias", "shared", "deviation", "position"):
                out[f"{name}.{part}"] = getattr(model, part)
        return out

    def load_state(self, state: dict[str, NDArray[np.float64]]) -> None:
        """Take what ``state`` gave; names and shapes must match this predictor's exactly."""
        mine = self.state()
        _check_state(mine, state)
        self.ctr_item, self.ctr_category = state["ctr_item"].copy(), state["ctr_category"].copy()
        self.cvr_item, self.cvr_category = state["cvr_item"].copy(), state["cvr_category"].copy()
        self.refreshes = int(state["refreshes"][0])
        for name, model in (("click", self.click), ("purchase", self.purchase)):
            for part in ("bias", "shared", "deviation", "position"):
                setattr(model, part, state[f"{name}.{part}"].astype(np.float64).copy())

    def _refresh_click(self, imps: Impressions) -> None:
        exposure = self.position_factor(imps.surface, imps.slot)
        clicked = imps.clicked.astype(np.float64)
        fold = (imps.request_id & 1).astype(bool)
        item, category = self._rates(imps.campaign, clicked, exposure, self.config.prior_ctr)
        self.ctr_item, self.ctr_category = item, category
        rows = self._recent(len(imps))
        train = imps.take(rows)
        x = train.x_ctr.copy()
        x[:, 2], x[:, 3] = self._out_of_fold(
            train.campaign, fold, rows, imps.campaign, clicked, exposure, self.config.prior_ctr
        )
        keep, weight = self._downsample(train.clicked)
        self.click.fit(
            surface=train.surface[keep],
            x=x[keep],
            slot=train.slot[keep],
            label=train.clicked[keep],
            weight=weight,
            l2=self.config.l2,
            fit_position=True,
        )

    def _refresh_purchase(self, imps: Impressions, ordered: NDArray[np.int64], now: float) -> None:
        mature = imps.clicked & (
            imps.click_time <= now - self.config.conversion_maturity_hours * 3600
        )
        clicks = imps.take(mature)
        label = np.isin(clicks.click_id, ordered)
        if label.sum() < _MIN_ORDERS:
            return
        ones = np.ones(len(clicks))
        fold = (clicks.request_id & 1).astype(bool)
        y = label.astype(np.float64)
        self.cvr_item, self.cvr_category = self._rates(
            clicks.campaign, y, ones, self.config.prior_cvr
        )
        rows = self._recent(len(clicks))
        x = clicks.x_cvr[rows].copy()
        x[:, 2], x[:, 3] = self._out_of_fold(
            clicks.campaign[rows], fold, rows, clicks.campaign, y, ones, self.config.prior_cvr
        )
        self.purchase.fit(
            surface=clicks.surface[rows],
            x=x,
            slot=clicks.slot[rows],
            label=label[rows],
            weight=np.ones(len(rows)),
            l2=self.config.l2,
            fit_position=False,
        )

    def _rates(
        self,
        campaign: NDArray[np.int32],
        successes: NDArray[np.float64],
        trials: NDArray[np.float64],
        prior: float,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Smoothed logits per campaign and per category: categories shrink to ``prior``."""
        category = self._category[campaign]
        per_category = smoothed_logit(
            key=category, successes=successes, trials=trials,
            n_keys=self._n_categories, prior=prior, strength=_CATEGORY_STRENGTH,
        )  # fmt: skip
        parent = expit(per_category[self._category])
        per_item = smoothed_logit(
            key=campaign.astype(np.int64), successes=successes, trials=trials,
            n_keys=len(self._category), prior=parent, strength=_ITEM_STRENGTH,
        )  # fmt: skip
        return per_item, per_category

    def _out_of_fold(
        self,
        train_campaign: NDArray[np.int32],
        all_fold: NDArray[np.bool_],
        rows: NDArray[np.int64],
        campaign: NDArray[np.int32],
        successes: NDArray[np.float64],
        trials: NDArray[np.float64],
        prior: float,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Item and category rate features of training rows, each from the other fold's rows."""
        item = np.empty(len(rows))
        category = np.empty(len(rows))
        for side in (False, True):
            other = all_fold != side
            per_item, per_cat = self._rates(campaign[other], successes[other], trials[other], prior)
            mine = all_fold[rows] == side
            item[mine] = per_item[train_campaign[mine]]
            category[mine] = per_cat[self._category[train_campaign[mine]]]
        return item, category

    def _recent(self, n: int) -> NDArray[np.int64]:
        return np.arange(max(0, n - self.config.max_training_rows), n, dtype=np.int64)

    def _downsample(
        self, clicked: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """All clicks and a re-weighted sample of the rest."""
        n_clicks = int(clicked.sum())
        n_rest = len(clicked) - n_clicks
        rate = min(1.0, _NEGATIVES_PER_CLICK * max(n_clicks, 1) / max(n_rest, 1))
        keep = clicked | (self._rng.random(len(clicked)) < rate)
        index = np.flatnonzero(keep)
        weight = np.where(clicked[index], 1.0, 1.0 / rate)
        return index, weight


def _relative_price(items: ItemTable, campaign_item: NDArray[np.int32]) -> NDArray[np.float64]:
    """log(price / median price of the category), from the public catalog."""
    order = np.argsort(items.category, kind="stable")
    sorted_category = items.category[order]
    bounds = np.searchsorted(sorted_category, np.arange(items.n_categories + 1))
    median = np.ones(items.n_categories)
    for c in range(items.n_categories):
        prices = items.price[order[bounds[c] : bounds[c + 1]]]
        if len(prices):
            median[c] = float(np.median(prices))
    out: NDArray[np.float64] = np.log(
        items.price[campaign_item] / median[items.category[campaign_item]]
    )
    return out


def _check_state(
    expected: dict[str, NDArray[np.float64]], given: dict[str, NDArray[np.float64]]
) -> None:
    """Same names, same shapes, finite values; ``ValueError`` naming the first difference."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(f"model state differs: missing {missing}, unexpected {extra}")
    for name, array in expected.items():
        if np.shape(given[name]) != np.shape(array):
            raise ValueError(
                f"model state {name!r} has shape {np.shape(given[name])}, expected {array.shape}"
            )
        if not np.all(np.isfinite(given[name])):
            raise ValueError(f"model state {name!r} holds non-finite values")
