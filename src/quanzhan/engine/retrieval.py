"""Retrieval: the top-k campaigns worth scoring for each page view, on every surface.

A campaign is worth what the engine expects a click on it to sell: pCTR x pCVR x price. In
logs that is a sum, which splits in two parts (``ValueModel``, read off the click and purchase
models at every refresh):

- per request and category: how this shopper takes to the category (their share of clicks in
  it, and their learned cross-category affinity, ``engine.affinity``) and how relevant the
  category is to the page (the query's topic on search, the item on screen on item pages);
- per campaign: its item's learned click and purchase rates and its price.

An IVF index over category cells (``engine.index``) hands back the campaigns of the most
promising cells; they are scored exactly, with the query's word matches on search, and the best
``k`` kept. The relevance of each candidate (its share of the query's words and topic on search,
whether it shares the category of the item on screen on item pages) is returned as the
retrieval score, a feature of the models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, ItemTable, Surface
from quanzhan.engine.batch import Candidates, RequestBatch
from quanzhan.engine.index import CategoryIndex

# A query term points to a category only where that category holds this share of its uses.
_EXPANSION_FLOOR = 0.05
# Campaigns scored exactly per candidate slot asked for.
_SCORED_PER_SLOT = 2
# Relevance is half word match, half topic match: each in [0, 1], the sum too.
_WORD_SHARE = 0.5
_CONTEXT_SURFACES = (Surface.DETAIL, Surface.POST_PURCHASE, Surface.CART_FEED)
# A category the shopper has not clicked is scored as if it held this share of their clicks.
# The models floor the share at 1e-6 (``engine.prediction``), which would put every such
# category ``13.8 x interest weight`` below and leave a strong learned affinity no way up; at a
# hundredth, on `default` recall at 100 rose 0.015 over eight seeds and `steady`'s expected ad
# GMV 1.7% over six (``docs/matching.md``, "Retrieval").
_UNSEEN_SHARE = 0.01
# What a search page's cell loses off the query's topic when cells are probed: it comes after
# every cell on the topic.
_OFF_TOPIC = np.float32(1e4)
# Largest terms x campaigns table of title words kept (bytes).
_TERM_TABLE_CELLS = 1 << 26
# Indexes kept, one per set of live campaigns: a decision that gathers menus retrieves among
# the live campaigns and among those out of budget, chunk after chunk.
_INDEXES_KEPT = 2


@dataclass(frozen=True, slots=True)
class ValueModel:
    """Log expected value of a campaign to a request, as weights per surface ``(s,)`` on the
    request-by-category terms and a per-surface value of each campaign ``(s, campaigns)``."""

    interest_weight: NDArray[np.float32]
    affinity_weight: NDArray[np.float32]
    relevance_weight: NDArray[np.float32]
    campaign_value: NDArray[np.float32]

    @classmethod
    def neutral(cls, n_campaigns: int) -> ValueModel:
        """Before anything is learned: the shopper's own categories first, nothing else."""
        return cls(
            interest_weight=np.ones(N_SURFACES, dtype=np.float32),
            affinity_weight=np.zeros(N_SURFACES, dtype=np.float32),
            relevance_weight=np.ones(N_SURFACES, dtype=np.float32),
            campaign_value=np.zeros((N_SURFACES, n_campaigns), dtype=np.float32),
        )

    def arrays(self) -> dict[str, NDArray[np.float32]]:
        return {
            "interest_weight": self.interest_weight,
            "affinity_weight": self.affinity_weight,
            "relevance_weight": self.relevance_weight,
            "campaign_value": self.campaign_value,
        }


class Retriever:
    """Finds candidates among campaigns; campaign ``c`` promotes item ``campaign_item[c]``."""

    def __init__(
        self,
        *,
        items: ItemTable,
        campaign_item: NDArray[np.int32],
        k: int,
        search_requires_match: bool = False,
    ) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.search_requires_match = search_requires_match
        self.items = items
        self.campaign_item = campaign_item
        self.k = k
        self._category = items.category[campaign_item].astype(np.int64)
        self._titles = items.title_terms[campaign_item]
        self._has_term = _term_table(items.n_terms, self._titles)
        self._term_category = np.asarray(_term_categories(items).todense(), dtype=np.float32)
        self._value = ValueModel.neutral(len(campaign_item))
        self._indexes: list[tuple[NDArray[np.bool_], CategoryIndex]] = []

    @property
    def value(self) -> ValueModel:
        return self._value

    def update(self, value: ValueModel) -> None:
        """New value weights (after the models relearn); the indexes are rebuilt."""
        if value.campaign_value.shape != (N_SURFACES, len(self.campaign_item)):
            raise ValueError("campaign_value must be (surfaces, campaigns)")
        for name in ("interest_weight", "affinity_weight", "relevance_weight"):
            if getattr(value, name).shape != (N_SURFACES,):
                raise ValueError(f"{name} must hold one weight per surface")
        arrays = value.arrays().values()
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("value weights must be finite")
        self._value = value
        self._indexes = []

    def retrieve(
        self,
        batch: RequestBatch,
        *,
        interest: NDArray[np.float32],
        affinity: NDArray[np.float32],
        live: NDArray[np.bool_],
        k: int | None = None,
    ) -> Candidates:
        """``(n, k)`` candidate campaigns per request, best first, ``-1`` padded.

        ``interest`` and ``affinity`` are ``(n, categories)``: each viewer's category profile
        and learned affinity; only ``live`` campaigns are retrieved. ``k`` overrides the
        configured depth for this call (deeper lists for measuring recall).
        """
        depth = self.k if k is None else k
        if depth < 1:
            raise ValueError("k must be at least 1")
        n = len(batch)
        surface = batch.surface.astype(np.int64)
        relevance = self._cell_relevance(batch)
        search_rows = batch.surface == Surface.SEARCH
        v = self._value
        cell_score = (
            v.interest_weight[surface, None] * np.log(interest + _UNSEEN_SHARE)
            + v.affinity_weight[surface, None] * affinity
            + v.relevance_weight[surface, None] * relevance
        ).astype(np.float32)
        # Where search shows only ads that answer the query (a word of it in the title, or its
        # topic), cells off the topic are probed last, as a word may still sit in a title there.
        answer_query = search_rows & self.search_requires_match
        probe_score = cell_score.copy()
        probe_score[answer_query] -= np.where(relevance[answer_query] > 0, 0.0, _OFF_TOPIC)
        index = self._index_for(live)
        found = index.candidates(probe_score, budget=max(depth * _SCORED_PER_SLOT, depth))
        valid = found >= 0
        c = np.maximum(found, 0)
        # Flat indices into the (n, categories) and (surfaces, campaigns) tables: one ``take``
        # each instead of two-array fancy indexing.
        n_categories = relevance.shape[1]
        cell = np.arange(n)[:, None] * n_categories + self._category[c]
        candidate_relevance = np.take(relevance, cell)
        score = np.take(cell_score, cell) + np.take(
            v.campaign_value, surface[:, None] * v.campaign_value.shape[1] + c
        )
        if search_rows.any():
            words = self._word_share(np.where(search_rows[:, None], batch.query_terms, -1), c)
            candidate_relevance += _WORD_SHARE * words
            score += v.relevance_weight[surface, None] * _WORD_SHARE * words
            valid &= ~answer_query[:, None] | (candidate_relevance > 0)
        score = np.where(valid, score, -np.inf)
        keep = min(depth, score.shape[1])
        if keep < score.shape[1]:
            top = np.argpartition(-score, keep - 1, axis=1)[:, :keep]
        else:
            top = np.broadcast_to(np.arange(score.shape[1]), score.shape).copy()
        flat = np.arange(n)[:, None] * score.shape[1] + top
        top_score = np.take(score, flat)
        order = np.argsort(-top_score, axis=1, kind="stable")
        flat = np.take_along_axis(flat, order, axis=1)
        chosen = np.where(np.isfinite(np.take(score, flat)), np.take(found, flat), -1)
        chosen_relevance = np.take(candidate_relevance, flat)
        campaign = np.full((n, depth), -1, dtype=np.int32)
        out_score = np.zeros((n, depth), dtype=np.float32)
        rank = np.full((n, depth), -np.inf, dtype=np.float32)
        campaign[:, :keep] = chosen
        out_score[:, :keep] = np.where(chosen >= 0, chosen_relevance, 0.0)
        rank[:, :keep] = np.where(chosen >= 0, np.take(score, flat), -np.inf)
        return Candidates(campaign=campaign, score=out_score, rank=rank)

    def _cell_relevance(self, batch: RequestBatch) -> NDArray[np.float32]:
        """``(n, categories)``: the query's topic on search (the categories its words are used
        in, summing to one half), the category of the item on screen on item pages."""
        n, c = len(batch), self.items.n_categories
        relevance = np.zeros((n, c), dtype=np.float32)
        terms = batch.query_terms
        search = (batch.surface == Surface.SEARCH) & (terms >= 0).any(axis=1)
        if search.any():
            rows = terms[search]
            topic = np.where(
                (rows >= 0)[:, :, None], self._term_category[np.maximum(rows, 0)], 0.0
            ).sum(axis=1)
            totals = topic.sum(axis=1, keepdims=True)
            topic = np.divide(topic, totals, out=np.zeros_like(topic), where=totals > 0)
            relevance[search] = (1.0 - _WORD_SHARE) * topic
        context = batch.context_item
        on_item = np.isin(batch.surface, _CONTEXT_SURFACES) & (context >= 0)
        if on_item.any():
            relevance[np.flatnonzero(on_item), self.items.category[context[on_item]]] = 1.0
        return relevance

    def _word_share(
        self, query: NDArray[np.int32], campaign: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        """``(n, b)``: the share of each query's words found in each candidate's title."""
        share = np.zeros(campaign.shape, dtype=np.float32)
        asked = (query >= 0).sum(axis=1)
        rows = np.flatnonzero(asked > 0)
        if len(rows) == 0:
            return share
        words = query[rows]  # (r, q)
        found = np.zeros((len(rows), campaign.shape[1]), dtype=np.float32)
        for q in range(words.shape[1]):
            word = words[:, q]
            if self._has_term is not None:
                hit = self._has_term[np.maximum(word, 0)[:, None], campaign[rows]]
            else:  # a catalog too large for the table: compare titles
                hit = (self._titles[campaign[rows]] == word[:, None, None]).any(axis=2)
            found += hit & (word >= 0)[:, None]
        share[rows] = found / asked[rows, None]
        return share

    def _index_for(self, live: NDArray[np.bool_]) -> CategoryIndex:
        """The index over ``live`` campaigns, built on first use and kept for the next calls."""
        for listed, index in self._indexes:
            if np.array_equal(listed, live):
                return index
        index = CategoryIndex(
            cell=self._category,
            n_cells=self.items.n_categories,
            value=self._value.campaign_value.mean(axis=0).astype(np.float32),
            live=live,
        )
        self._indexes = [(live.copy(), index), *self._indexes[: _INDEXES_KEPT - 1]]
        return index


def _term_table(n_terms: int, titles: NDArray[np.int32]) -> NDArray[np.bool_] | None:
    """``(terms, campaigns)``: whether each campaign's title holds each term; ``None`` past
    ``_TERM_TABLE_CELLS``, where titles are compared instead."""
    if n_terms * len(titles) > _TERM_TABLE_CELLS:
        return None
    table = np.zeros((n_terms, len(titles)), dtype=bool)
    r, c = np.nonzero(titles >= 0)
    table[titles[r, c], r] = True
    return table


def _term_categories(items: ItemTable) -> sp.csr_matrix:
    """``(terms, categories)``: the share of each term's uses in titles that fall in a category."""
    r, c = np.nonzero(items.title_terms >= 0)
    counts = sp.csr_matrix(
        (np.ones(len(r), np.float32), (items.title_terms[r, c], items.category[r])),
        shape=(items.n_terms, items.n_categories),
    )
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    share = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts)
    share.data[share.data < _EXPANSION_FLOOR] = 0.0
    share.eliminate_zeros()
    return share
