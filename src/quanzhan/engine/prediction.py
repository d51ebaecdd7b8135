"""Click and purchase prediction learned from the engine's own log.

Both models are per-surface logistic regressions (``engine.logistic``) over seven features of a
(request, campaign) pair:

    retrieval   relevance to the page (query words and topic on search, the category of the item
                on screen on item pages, zero on the feeds without one)
    interest    log share of the shopper's past clicks in the item's category
    item_lift   the item's own log lift: its clicks (or orders) against what a model without it
                expected of its rows, shrunk towards what its history popularity predicts
    cat_rate    smoothed logit of the item's category rate
    price       log of the price against its category's median
    affinity    the shopper's learned lift for the item's category (``engine.affinity``)
    click_lift  the item's click lift, a feature of the purchase model only (zero for clicks):
                an item's appeal moves both odds, and a day holds a hundred clicks for each
                order, so its clicks tell what its few orders cannot

Rates used in training are out-of-fold (rows split in two by request id, each half encoded from
the other), so a row's own outcome never leaks into its features. Clicks are counted against
exposure, the sum of the position factors of their impressions, so an item shown low is not
mistaken for a weak item.

Orders come minutes to hours after their click, so a young click without one is only partly a
click without one. The purchase model learns a delay distribution from the orders it has seen
(``bidding.delay``, each delay truncated at its click's age) and counts each click as the share
``F(age)`` of its orders that would have arrived by now: that many trials behind the rates, that
share of the expected orders behind the item lifts and the calibration, and that weight on a
click still without an order in the fit (with a rate ``p`` of a few percent, weighting a
negative by ``F`` biases ``p`` by a share of about ``p (1 - F)``, far below its noise). So the
model learns from the latest hours' clicks as well, rather than from clicks hours old only: on
a platform's first hours it leaves its prior as soon as orders come, and after it follows a
change of conversion within the hour.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import logit

from quanzhan.bidding.delay import DelayModel
from quanzhan.domain import N_SURFACES, ItemTable
from quanzhan.engine.calibration import HeldOutCalibration
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.logistic import LogisticModel
from quanzhan.engine.rates import shrunk_lift, smoothed_logit
from quanzhan.engine.retrieval import ValueModel

# Logged rows' ``affinity`` feature as the affinity learned now would have served them.
ServedAffinity = Callable[[Impressions], NDArray[np.float32]]

FEATURES = ("retrieval", "interest", "item_lift", "cat_rate", "price", "affinity", "click_lift")
N_FEATURES = len(FEATURES)
_CLICK_LIFT = FEATURES.index("click_lift")
_AFFINITY = FEATURES.index("affinity")
_CATEGORY_STRENGTH = 300.0  # pseudo-trials of the global rate behind each category rate
_NEGATIVES_PER_CLICK = 3.0  # negative down-sampling for the click model, re-weighted
_MIN_ORDERS = 100  # below this many labelled orders the purchase model keeps its prior
_MIN_OUTCOMES = 50  # clicks below which rows are too thin to fit on or calibrate against
# Held-out outcomes each calibration reads, over as many recent refresh intervals as it takes
# (``engine.calibration``): per surface, a ratio within a few percent on the busy surfaces.
_CLICKS_TO_CALIBRATE = 2_000.0
_ORDERS_TO_CALIBRATE = 400.0
_DELAYS_TO_FIT = 20_000  # the latest orders whose delays the delay distribution is fitted to


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
        popularity: NDArray[np.float64] | None = None,
    ) -> None:
        """``popularity`` is each campaign's item's ``engine.popularity`` (zero without a
        history log)."""
        self.config = config
        self._category = items.category[campaign_item].astype(np.int64)
        self._n_categories = items.n_categories
        self._price = _relative_price(items, campaign_item)
        n = len(campaign_item)
        if popularity is not None and np.shape(popularity) != (n,):
            raise ValueError("popularity needs one value per campaign")
        self._popularity = np.zeros(n) if popularity is None else np.asarray(popularity, float)
        self._rng = np.random.default_rng(seed)
        self.click = LogisticModel.prior(
            rate=config.prior_ctr, n_features=N_FEATURES, n_positions=max(max_slots, 1)
        )
        self.click.shared[1] = 0.5  # before any data, lean on the shopper's category interest
        decay = np.log(config.prior_position_decay) * np.arange(max(max_slots, 1))
        self.click.position[:] = decay[None, :]
        self.purchase = LogisticModel.prior(
            rate=config.prior_cvr, n_features=N_FEATURES, n_positions=1
        )
        self.ctr_item = np.zeros(n)
        self.ctr_category = np.full(items.n_categories, logit(config.prior_ctr))
        self.cvr_item = np.zeros(n)
        self.cvr_category = np.full(items.n_categories, logit(config.prior_cvr))
        # Per-surface logit shifts that calibrate served predictions (``engine.calibration``).
        self.ctr_shift = np.zeros(N_SURFACES)
        self.cvr_shift = np.zeros(N_SURFACES)
        # Evaluation only (``bench bidding --pctr-perturbation``): every pCTR served is scaled
        # by this, to measure how far the market's chaos alone moves a benchmark's figures.
        self.click_scale = 1.0
        self._click_evidence = HeldOutCalibration(enough=_CLICKS_TO_CALIBRATE)
        self._purchase_evidence = HeldOutCalibration(enough=_ORDERS_TO_CALIBRATE)
        self.delay = DelayModel(window_seconds=config.attribution_window_hours * 3600)
        self._calibrated_until = 0.0
        self._cvr_calibrated_until = 0.0
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
        affinity: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(n, k, f)`` click and purchase features; ``interest`` and ``affinity`` are
        ``(n, categories)``."""
        c = np.maximum(campaign, 0)
        category = self._category[c]
        share = np.log(np.maximum(np.take_along_axis(interest, category, axis=1), 1e-6))
        lift = np.take_along_axis(affinity, category, axis=1)
        x_ctr = np.empty((*campaign.shape, N_FEATURES), dtype=np.float32)
        x_ctr[..., 0], x_ctr[..., 1] = retrieval, share
        x_ctr[..., 2], x_ctr[..., 3] = self.ctr_item[c], self.ctr_category[category]
        x_ctr[..., 4], x_ctr[..., 5] = self._price[c], lift
        x_ctr[..., 6] = 0.0
        x_cvr = x_ctr.copy()
        x_cvr[..., 2], x_cvr[..., 3] = self.cvr_item[c], self.cvr_category[category]
        x_cvr[..., 6] = self.ctr_item[c]
        return x_ctr, x_cvr

    def value_model(self, item_price: NDArray[np.float64]) -> ValueModel:
        """The models' log pCTR + log pCVR + log price, split for retrieval: weights per surface
        on the request-by-category features, and each campaign's own part (``item_price`` is
        the price of each campaign's item). Logits stand in for logs: the rates are small."""
        weights = {
            name: model.shared[None, :] + model.deviation
            for name, model in (("click", self.click), ("purchase", self.purchase))
        }
        both = weights["click"] + weights["purchase"]  # (s, f)
        index = {name: i for i, name in enumerate(FEATURES)}
        own = (
            (self.click.bias + self.purchase.bias)[:, None]
            + weights["click"][:, [index["item_lift"]]] * self.ctr_item[None, :]
            + weights["click"][:, [index["cat_rate"]]] * self.ctr_category[self._category][None, :]
            + weights["purchase"][:, [index["item_lift"]]] * self.cvr_item[None, :]
            + weights["purchase"][:, [index["cat_rate"]]]
            * self.cvr_category[self._category][None, :]
            + weights["purchase"][:, [index["click_lift"]]] * self.ctr_item[None, :]
            + both[:, [index["price"]]] * self._price[None, :]
            + np.log(item_price)[None, :]
        )
        return ValueModel(
            interest_weight=both[:, index["interest"]].astype(np.float32),
            affinity_weight=both[:, index["affinity"]].astype(np.float32),
            relevance_weight=both[:, index["retrieval"]].astype(np.float32),
            campaign_value=own.astype(np.float32),
        )

    def predict(
        self, *, surface: NDArray[np.int8], x_ctr: NDArray[np.float32], x_cvr: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(n, k)`` pCTR at the first slot and pCVR, for ``(n, k, f)`` features, each
        calibrated per surface."""
        pctr = self.click.predict_grid(surface, x_ctr, self.ctr_shift)
        if self.click_scale != 1.0:
            pctr = np.minimum(pctr * self.click_scale, 1.0)
        return pctr, self.purchase.predict_grid(surface, x_cvr, self.cvr_shift)

    def position_factor(
        self, surface: NDArray[np.int8], slot: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Learned click odds of ``slot`` relative to the first slot (approximately)."""
        top = self.click.position.shape[1] - 1
        out: NDArray[np.float64] = np.exp(self.click.position[surface, np.minimum(slot, top)])
        return out

    def refresh(
        self, *, log: EventLog, now: float, served_affinity: ServedAffinity | None = None
    ) -> None:
        """Relearn rates and both models from everything logged up to ``now``.
        ``served_affinity`` gives logged rows' ``affinity`` feature as the category affinity
        learned at this refresh would have served them: the held-out rows that calibrate the
        models take it in place of the value logged with them. The affinity keeps learning (from
        organic results above all), and a calibration read on the old values would not hold
        for the new ones."""
        if len(log) == 0:
            return
        impressions = log.impressions()
        if self.refreshes == 0:
            # A first refresh over a long log (training from a file) holds out its last
            # refresh interval; over the first hour of a run there is too little to hold out.
            window = self.config.refresh_hours * 3600
            self._calibrated_until = now - window
            self._cvr_calibrated_until = now - window - self.config.conversion_maturity_hours * 3600
        self._refresh_click(impressions, served_affinity)
        self._refresh_purchase(impressions, *log.orders(), now, served_affinity)
        self._calibrated_until = float(impressions.time.max())
        self._cvr_calibrated_until = now - self.config.conversion_maturity_hours * 3600
        self.refreshes += 1

    # Each refresh fits on what was logged before the previous refresh and holds out what came
    # since: the new model's predictions there, set against what happened, calibrate it per
    # surface (``engine.calibration``), and it is served as fitted, without those rows.

    def _refresh_click(self, imps: Impressions, served_affinity: ServedAffinity | None) -> None:
        exposure = self.position_factor(imps.surface, imps.slot)
        rows = self._recent(len(imps))
        held = imps.time[rows] > self._calibrated_until
        calibrate = _enough(imps.clicked[rows][~held]) and bool(held.any())
        fit_rows = rows[~held] if calibrate else rows
        keep, weight = self._downsample(imps.clicked[fit_rows])
        self.ctr_item, self.ctr_category, x_held = self._fit_with_lift(
            self.click, log=imps, x_log=imps.x_ctr, outcome=imps.clicked.astype(np.float64),
            trials=exposure, prior=self.config.prior_ctr, fit_rows=fit_rows[keep],
            weight=weight, fit_position=True, known_rows=fit_rows, held_rows=rows[held],
        )  # fmt: skip
        if calibrate:
            test = imps.take(rows[held])
            _serve_affinity(x_held, test, served_affinity)
            predicted = self.click.predict(test.surface, x_held, test.slot)
            self._click_evidence.add(surface=test.surface, predicted=predicted,
                                     outcome=test.clicked)  # fmt: skip
            self.ctr_shift = self._click_evidence.shift()

    def _refresh_purchase(
        self,
        imps: Impressions,
        ordered: NDArray[np.int64],
        order_time: NDArray[np.float64],
        now: float,
        served_affinity: ServedAffinity | None,
    ) -> None:
        """``ordered``: the clicks an order was attributed to, in order of id, placed at
        ``order_time`` (``nan`` where unknown)."""
        clicks = imps.take(
            imps.clicked & (imps.click_time <= now - self.config.conversion_maturity_hours * 3600)
        )
        at = np.minimum(np.searchsorted(ordered, clicks.click_id), max(len(ordered) - 1, 0))
        label = ordered[at] == clicks.click_id if len(ordered) else np.zeros(len(clicks), bool)
        if label.sum() < _MIN_ORDERS:
            return
        self._learn_delays(clicks, np.where(label, order_time[at], np.nan), now)
        arrived = self.delay.share_arrived(now - clicks.click_time)
        rows = self._recent(len(clicks))
        held = clicks.click_time[rows] > self._cvr_calibrated_until
        # Orders are scarce: one interval's held-out clicks may hold a few; the calibration
        # reads as many recent intervals as it takes (``_ORDERS_TO_CALIBRATE``).
        calibrate = label[rows][~held].sum() >= _MIN_ORDERS and bool(held.any())
        fit_rows = rows[~held] if calibrate else rows
        # The click lifts just learned, as they will be served: they know no order.
        x_cvr = clicks.x_cvr.copy()
        x_cvr[:, _CLICK_LIFT] = self.ctr_item[clicks.campaign]
        self.cvr_item, self.cvr_category, x_held = self._fit_with_lift(
            self.purchase, log=clicks, x_log=x_cvr, outcome=label.astype(np.float64),
            trials=arrived, prior=self.config.prior_cvr, fit_rows=fit_rows,
            weight=np.where(label[fit_rows], 1.0, arrived[fit_rows]), fit_position=False,
            known_rows=fit_rows, held_rows=rows[held], arrived=arrived,
            deviation_l2=self.config.purchase_deviation_l2,
        )  # fmt: skip
        if calibrate:
            test = clicks.take(rows[held])
            _serve_affinity(x_held, test, served_affinity)
            predicted = self.purchase.predict(test.surface, x_held) * arrived[rows[held]]
            self._purchase_evidence.add(surface=test.surface, predicted=predicted,
                                        outcome=label[rows[held]])  # fmt: skip
            self.cvr_shift = self._purchase_evidence.shift()

    def _learn_delays(
        self, clicks: Impressions, order_time: NDArray[np.float64], now: float
    ) -> None:
        """Fit the delay distribution to the latest orders of ``clicks`` (each click's order
        time, ``nan`` where it has none or its time is unknown), each delay seen only up to its
        click's age. Taken in order of click id, as the log keeps orders."""
        timed = np.flatnonzero(np.isfinite(order_time))
        timed = timed[np.argsort(clicks.click_id[timed], kind="stable")]
        latest = timed[np.argsort(order_time[timed], kind="stable")[-_DELAYS_TO_FIT:]]
        click_time = clicks.click_time[latest]
        self.delay.fit(delay=order_time[latest] - click_time, horizon=now - click_time)

    def _fit_with_lift(
        self,
        model: LogisticModel,
        *,
        log: Impressions,
        x_log: NDArray[np.float32],
        outcome: NDArray[np.float64],
        trials: NDArray[np.float64],
        prior: float,
        fit_rows: NDArray[np.int64],
        weight: NDArray[np.float64],
        fit_position: bool,
        known_rows: NDArray[np.int64],
        held_rows: NDArray[np.int64],
        arrived: NDArray[np.float64] | None = None,
        deviation_l2: float | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float32]]:
        """Refit ``model`` on ``fit_rows`` of the log (rows of ``outcome`` over ``trials``,
        features as served ``x_log``, each fitted row weighing ``weight``; ``arrived``, where
        given, the share of each row's outcomes that could be known by now). Returns the item
        lifts and category rates to serve, and the features of ``held_rows`` as this model
        would have served them knowing only ``known_rows``: their item lifts and category
        rates read off those rows, not the older tables logged with them (rates that were
        still rising then would make the held-out rows look underpredicted).

        The item's own lift is measured against a model that does not know the item: a first
        fit leaves the item feature out, and each item's outcomes over every logged row are set
        against what it expected of them (``_lifts``). Training rows take their item and
        category features from the other fold's rows."""
        campaign = log.campaign
        fold = (log.request_id & 1).astype(bool)
        category = self._category_rates(campaign, outcome, trials, prior)
        x = x_log[fit_rows].copy()
        x[:, 3] = self._out_of_fold(
            campaign[fit_rows], fold, fit_rows,
            lambda o: self._category_rates(campaign[o], outcome[o], trials[o], prior),
            by_category=True,
        )  # fmt: skip
        x[:, 2] = 0.0
        surface, slot, label = log.surface[fit_rows], log.slot[fit_rows], outcome[fit_rows] > 0
        l2 = self.config.l2
        base = LogisticModel.prior(
            rate=prior, n_features=N_FEATURES, n_positions=model.position.shape[1]
        )
        base.fit(surface=surface, x=x, slot=slot, label=label, weight=weight, l2=l2,
                 fit_position=fit_position, deviation_l2=deviation_l2)  # fmt: skip
        x_all = x_log.copy()
        x_all[:, 2], x_all[:, 3] = 0.0, category[self._category[campaign]]
        expected = base.predict(log.surface, x_all, log.slot)
        if arrived is not None:
            expected = expected * arrived
        x[:, 2] = self._out_of_fold(
            campaign[fit_rows], fold, fit_rows,
            lambda o: self._lifts(campaign[o], outcome[o], expected[o]),
            by_category=False,
        )  # fmt: skip
        model.fit(surface=surface, x=x, slot=slot, label=label, weight=weight, l2=l2,
                  fit_position=fit_position, deviation_l2=deviation_l2)  # fmt: skip
        x_held = x_log[held_rows].copy()
        if len(held_rows):
            k = known_rows
            known_lift = self._lifts(campaign[k], outcome[k], expected[k])
            known_category = self._category_rates(campaign[k], outcome[k], trials[k], prior)
            x_held[:, 2] = known_lift[campaign[held_rows]]
            x_held[:, 3] = known_category[self._category[campaign[held_rows]]]
        return self._lifts(campaign, outcome, expected), category, x_held

    def state(self) -> dict[str, NDArray[np.float64]]:
        """Everything learned, as named arrays (for a model directory)."""
        out: dict[str, NDArray[np.float64]] = {
            "ctr_item": self.ctr_item,
            "ctr_category": self.ctr_category,
            "cvr_item": self.cvr_item,
            "cvr_category": self.cvr_category,
            "ctr_shift": self.ctr_shift,
            "cvr_shift": self.cvr_shift,
            "refreshes": np.array([self.refreshes], dtype=np.float64),
        }
        for name, model in (("click", self.click), ("purchase", self.purchase)):
            for part in ("bias", "shared", "deviation", "position"):
                out[f"{name}.{part}"] = getattr(model, part)
        return out

    def load_state(self, state: dict[str, NDArray[np.float64]]) -> None:
        """Take what ``state`` gave; names and shapes must match this predictor's exactly."""
        _check_state(self.state(), state)
        self.ctr_item, self.ctr_category = state["ctr_item"].copy(), state["ctr_category"].copy()
        self.cvr_item, self.cvr_category = state["cvr_item"].copy(), state["cvr_category"].copy()
        self.ctr_shift, self.cvr_shift = state["ctr_shift"].copy(), state["cvr_shift"].copy()
        self.refreshes = int(state["refreshes"][0])
        for name, model in (("click", self.click), ("purchase", self.purchase)):
            for part in ("bias", "shared", "deviation", "position"):
                setattr(model, part, state[f"{name}.{part}"].astype(np.float64).copy())

    def _category_rates(
        self,
        campaign: NDArray[np.int32],
        successes: NDArray[np.float64],
        trials: NDArray[np.float64],
        prior: float,
    ) -> NDArray[np.float64]:
        """Smoothed logit of each category's rate, shrunk to the rate of all these rows (with
        one pseudo-success at the configured ``prior``). Not to ``prior`` itself: a rate shrunk
        to a fixed prior rises or falls as data grows, so a model fitted on out-of-fold rates
        (half the rows) would be served rates of another level and mis-predict all alike."""
        overall = (successes.sum() + 1.0) / (trials.sum() + 1.0 / prior)
        return smoothed_logit(
            key=self._category[campaign], successes=successes, trials=trials,
            n_keys=self._n_categories, prior=overall, strength=_CATEGORY_STRENGTH,
        )  # fmt: skip

    def _lifts(
        self,
        campaign: NDArray[np.int32],
        outcome: NDArray[np.float64],
        expected: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Each campaign's log lift of outcomes over ``expected``, shrunk towards what its
        item's popularity predicts (``rates.shrunk_lift``)."""
        lift, _, _ = shrunk_lift(
            key=campaign.astype(np.int64), observed=outcome, expected=expected,
            n_keys=len(self._category), covariate=self._popularity,
        )  # fmt: skip
        return lift

    def _out_of_fold(
        self,
        train_campaign: NDArray[np.int32],
        all_fold: NDArray[np.bool_],
        rows: NDArray[np.int64],
        encode: Callable[[NDArray[np.bool_]], NDArray[np.float64]],
        *,
        by_category: bool,
    ) -> NDArray[np.float64]:
        """A feature of training rows (``rows`` of the log, campaigns ``train_campaign``), each
        read from the table that ``encode`` builds of the other fold's rows (a mask of the log):
        per category with ``by_category``, else per campaign."""
        out = np.empty(len(rows))
        for side in (False, True):
            table = encode(all_fold != side)
            mine = all_fold[rows] == side
            key = train_campaign[mine]
            out[mine] = table[self._category[key] if by_category else key]
        return out

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


def _serve_affinity(
    x_held: NDArray[np.float32], rows: Impressions, served_affinity: ServedAffinity | None
) -> None:
    """Held-out rows' ``affinity`` as the affinity just learned would serve them, in place."""
    if served_affinity is not None and len(rows):
        x_held[:, _AFFINITY] = served_affinity(rows)


def _enough(outcome: NDArray[np.bool_]) -> bool:
    """Whether rows hold outcomes enough to fit on or to calibrate against."""
    return int(outcome.sum()) >= _MIN_OUTCOMES


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
