"""Evaluation only: how much of the truly best supply retrieval finds, against the hidden truth.

A request's true value for a campaign is the hidden click odds at the top slot x the purchase
odds x the item's price. Among the campaigns that could bid in that auction (active, budget
left), the ``k`` of highest true value are the ground truth; recall at ``k`` is the share of them
that the engine's retriever returns in its first ``k``, averaged over sampled requests. Where
fewer than ``k`` campaigns have a positive value, the denominator is the number that do.

Scoring a request against every live campaign costs a truth evaluation per pair, so only a thin,
deterministic sample is scored: on the first tick of every hour, one request in ``stride`` by
request id (the engine never learns which). The retriever is called again on that sample, with
the live set and the engine state its auction just used, at depth 100 and at the engine's own
depth ``K``: the index probes more categories for a deeper list, so the first ``K`` of a list of
100 are not always the ``K`` the engine scored.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, SURFACE_NAMES
from quanzhan.engine.batch import RequestBatch
from quanzhan.engine.decision import Engine
from quanzhan.sim.market import Market

DEPTH = 100
# Requests scored per simulated day, about: a standard error of about 0.002 on recall at 100 in
# the default market, while truth for its ~1,000 campaigns each costs under a second of the day.
_REQUESTS_PER_DAY = 1_200
# Most requests scored in one tick, whatever a surge does to traffic.
_MAX_PER_TICK = 256


def recall_at(
    *, retrieved: NDArray[np.int32], value: NDArray[np.float64], k: int
) -> NDArray[np.float64]:
    """Per request, the share of its ``k`` highest-value campaigns found in ``retrieved[:, :k]``.

    ``value`` is ``(n, campaigns)``, zero for campaigns that could not bid; ``retrieved`` is
    ``(n, r)`` campaign ids, ``-1`` padded. ``nan`` where no campaign has a positive value.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    n, n_campaigns = value.shape
    positive = value > 0
    wanted = np.minimum(positive.sum(axis=1), k)
    best = np.zeros((n, n_campaigns), dtype=bool)
    if k < n_campaigns:
        # Ties at the boundary are broken arbitrarily; true values are continuous.
        top = np.argpartition(-value, k - 1, axis=1)[:, :k]
        np.put_along_axis(best, top, True, axis=1)
    else:
        best[:] = True
    best &= positive
    got = retrieved[:, :k]
    # One spare column takes the padding, so -1 never marks a real campaign.
    found = np.zeros((n, n_campaigns + 1), dtype=bool)
    found[np.arange(n)[:, None], np.where(got >= 0, got, n_campaigns)] = True
    hits = (best & found[:, :n_campaigns]).sum(axis=1)
    out = np.full(n, np.nan)
    scored = wanted > 0
    out[scored] = hits[scored] / wanted[scored]
    return out


def true_values(
    market: Market, *, request_index: NDArray[np.int64], live: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """``(n, campaigns)`` true value of each live campaign on rows of the batch served last;
    zero for the campaigns that could not bid."""
    campaign = np.flatnonzero(live)
    n, m = len(request_index), len(campaign)
    value = np.zeros((n, len(live)))
    if n == 0 or m == 0:
        return value
    item = market.campaigns.item[campaign]
    ctr, cvr = market.truth(
        request_index=np.repeat(request_index, m), item=np.tile(item, n).astype(np.int32)
    )
    price = market.catalog.items.price[item]
    value[:, campaign] = (ctr * cvr).reshape(n, m) * price[None, :]
    return value


class RetrievalRecall:
    """Samples requests tick by tick and records recall at ``DEPTH`` and at the engine's depth.

    ``requests_per_day`` and ``tick_minutes`` size the sample; call ``measure`` after the
    market served the tick (truth reads the served batch) and before the engine relearns.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        market: Market,
        requests_per_day: int,
        tick_minutes: float,
        enabled: bool = True,
    ) -> None:
        self.engine = engine
        self.market = market
        self.enabled = enabled
        self.k = engine.retriever.k
        self._ticks_per_hour = max(1, round(60 / tick_minutes))
        scored_traffic = requests_per_day / self._ticks_per_hour
        self.stride = max(1, math.ceil(scored_traffic / _REQUESTS_PER_DAY))
        self._surface: list[NDArray[np.int8]] = []
        self._at_depth: list[NDArray[np.float64]] = []
        self._at_k: list[NDArray[np.float64]] = []

    def measure(self, *, tick: int, batch: RequestBatch, live: NDArray[np.bool_]) -> None:
        """Score this tick's sample, if it is one to score; ``live`` as in the auction."""
        if not self.enabled or tick % self._ticks_per_hour:
            return
        rows = sample_rows(batch.request_id, stride=self.stride, cap=_MAX_PER_TICK)
        if len(rows) == 0:
            return
        sample = _take(batch, rows)
        deep, _, _ = self.engine.retrieve(sample, live=live, k=max(DEPTH, self.k))
        own, _, _ = self.engine.retrieve(sample, live=live)
        value = true_values(self.market, request_index=rows, live=live)
        self._surface.append(sample.surface)
        self._at_depth.append(recall_at(retrieved=deep.campaign, value=value, k=DEPTH))
        self._at_k.append(recall_at(retrieved=own.campaign, value=value, k=self.k))

    def report(self) -> dict[str, Any]:
        """Mean recall overall and ``by_surface``, with the number of requests scored."""
        surface = _concat(self._surface, np.int8)
        at_depth, at_k = _concat(self._at_depth, np.float64), _concat(self._at_k, np.float64)
        overall = _means(at_depth, at_k)
        overall["k"] = self.k
        overall["by_surface"] = {
            name: _means(at_depth[surface == s], at_k[surface == s])
            for s, name in zip(range(N_SURFACES), SURFACE_NAMES, strict=True)
        }
        return overall


def sample_rows(request_id: NDArray[np.int64], *, stride: int, cap: int) -> NDArray[np.int64]:
    """Rows whose request id is a multiple of ``stride``, thinned evenly to at most ``cap``."""
    rows = np.flatnonzero(request_id % stride == 0).astype(np.int64)
    if len(rows) > cap:
        rows = rows[np.linspace(0, len(rows) - 1, cap).astype(np.int64)]
    return rows


def _means(at_depth: NDArray[np.float64], at_k: NDArray[np.float64]) -> dict[str, Any]:
    scored = ~np.isnan(at_depth)
    return {
        f"recall_at_{DEPTH}": _mean(at_depth[scored]),
        "recall_at_k": _mean(at_k[~np.isnan(at_k)]),
        "requests_sampled": int(scored.sum()),
    }


def _mean(values: NDArray[np.float64]) -> float | None:
    # None rather than nan: the summary is JSON, and a run must compare equal to its repeat.
    return round(float(values.mean()), 5) if len(values) else None


def _concat(parts: list[NDArray[Any]], dtype: type[np.generic]) -> NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _take(batch: RequestBatch, rows: NDArray[np.int64]) -> RequestBatch:
    return RequestBatch(**{f.name: getattr(batch, f.name)[rows] for f in fields(RequestBatch)})
