"""Retrieval: the top-k campaigns worth scoring for each page view, per surface.

- search: an inverted index over the promoted items' title terms and categories; a query's terms
  are weighted by idf and expanded to the categories those terms are used in (learned from the
  catalog's titles), so an on-topic item is found even without the exact word;
- home feed and off-site: the shopper's interest profile against the items' category vectors
  (learned from how categories share shoppers, ``UserProfiles.category_vectors``) through an
  approximate-nearest-neighbour index (``engine.index``, inverted lists per category);
- detail, post-purchase and cart feed: item-to-item, the item on screen (blended with the
  shopper's interests on the cart feed) through the same index.

Every surface also leans a little towards campaigns whose items have done well (``quality``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from quanzhan.domain import ItemTable, Surface
from quanzhan.engine.batch import Candidates, RequestBatch
from quanzhan.engine.index import QUALITY_WEIGHT, CategoryIndex

# Weight of the category expansion of a query against one matched idf-weighted term.
_CATEGORY_WEIGHT = 2.0
# A query term expands to a category only where that category holds this share of its uses.
_EXPANSION_FLOOR = 0.05
# Search batches up to this many cells (requests x (terms + categories + campaigns)) are scored
# in dense arrays: cheaper than sparse algebra for the small batches of a server.
_DENSE_CELLS = 1 << 21
# How much the item on screen counts against the shopper's interests, per surface.
_CONTEXT_SHARE = {Surface.DETAIL: 0.8, Surface.POST_PURCHASE: 0.8, Surface.CART_FEED: 0.5}


class Retriever:
    """Finds candidates among campaigns; campaign ``c`` promotes item ``campaign_item[c]``."""

    def __init__(
        self,
        *,
        items: ItemTable,
        campaign_item: NDArray[np.int32],
        k: int,
        category_vectors: NDArray[np.float32],
    ) -> None:
        self.items = items
        self.campaign_item = campaign_item
        self.k = k
        self._category = items.category[campaign_item]
        self._term_category = _term_categories(items)
        self._idf = _idf(items)
        self._text_index = self._campaign_text_index()
        self._quality = np.zeros(len(campaign_item), dtype=np.float32)
        self._vectors = category_vectors
        self._live = np.ones(len(campaign_item), dtype=bool)
        self._index = self._vector_index()

    def update(
        self, *, quality: NDArray[np.float32], category_vectors: NDArray[np.float32]
    ) -> None:
        """New category vectors and a score in [-1, 1] per campaign for how well its item does;
        rebuilds the index."""
        self._quality = np.clip(quality, -1.0, 1.0).astype(np.float32)
        self._vectors = category_vectors
        self._index = self._vector_index()

    def state(self) -> dict[str, NDArray[np.float32]]:
        """What retrieval learned: campaign quality and category vectors."""
        return {"quality": self._quality, "category_vectors": self._vectors}

    def load_state(self, state: dict[str, NDArray[np.float32]]) -> None:
        for name, array in self.state().items():
            if np.shape(state[name]) != array.shape or not np.all(np.isfinite(state[name])):
                raise ValueError(f"retrieval state {name!r} has the wrong shape or bad values")
        self.update(quality=state["quality"], category_vectors=state["category_vectors"])

    def retrieve(
        self,
        batch: RequestBatch,
        *,
        interest: NDArray[np.float32],
        live: NDArray[np.bool_],
        k: int | None = None,
    ) -> Candidates:
        """``(n, k)`` candidate campaigns per request, best first, ``-1`` padded.

        ``interest`` is ``(n, categories)``: each viewer's category profile; only ``live``
        campaigns are retrieved. ``k`` overrides the configured depth for this call (deeper
        lists for measuring recall).
        """
        depth = self.k if k is None else k
        if depth < 1:
            raise ValueError("k must be at least 1")
        if not np.array_equal(live, self._live):
            self._live = live.copy()
            self._index = self._vector_index()
        n = len(batch)
        campaign = np.full((n, depth), -1, dtype=np.int32)
        score = np.zeros((n, depth), dtype=np.float32)
        search = batch.surface == Surface.SEARCH
        for rows, (found, found_score) in (
            (np.flatnonzero(search), self._search(batch, search, depth)),
            (np.flatnonzero(~search), self._similar(batch, ~search, interest[~search], depth)),
        ):
            campaign[rows], score[rows] = found, found_score
        return Candidates(campaign=campaign, score=score)

    def _search(
        self, batch: RequestBatch, rows: NDArray[np.bool_], k: int
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        terms = batch.query_terms[rows]
        n, n_terms = len(terms), self.items.n_terms
        r, c = np.nonzero(terms >= 0)
        t = terms[r, c]
        if n * (n_terms + self.items.n_categories + len(self.campaign_item)) <= _DENSE_CELLS:
            return self._search_dense(n, r, t, k)
        query = sp.csr_matrix((self._idf[t], (r, t)), shape=(n, n_terms), dtype=np.float32)
        expanded = query @ self._term_category
        expanded = _normalise_rows(expanded.tocsr()) * _CATEGORY_WEIGHT
        scores = sp.hstack([query, expanded], format="csr") @ self._text_index
        return _top_k(scores.tocsr(), k, bonus=QUALITY_WEIGHT * self._quality, live=self._live)

    def _search_dense(
        self, n: int, r: NDArray[np.intp], t: NDArray[np.int32], k: int
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``_search`` for small batches (a server's), in dense arrays: the same scores and the
        same order (ties to the lower campaign), without the fixed cost of a dozen sparse-matrix
        constructions per call."""
        query = np.zeros((n, self.items.n_terms), dtype=np.float32)
        np.add.at(query, (r, t), self._idf[t])
        expanded = np.asarray(query @ self._term_category, dtype=np.float32)
        totals = expanded.sum(axis=1, keepdims=True)
        expanded = np.divide(expanded, totals, out=np.zeros_like(expanded), where=totals > 0)
        expanded *= np.float32(_CATEGORY_WEIGHT)
        scores = np.asarray(np.hstack([query, expanded]) @ self._text_index, dtype=np.float32)
        value = np.where(
            (scores > 0) & self._live[None, :],
            scores + QUALITY_WEIGHT * self._quality[None, :],
            -np.inf,
        ).astype(np.float32)
        depth = min(k, value.shape[1])
        order = np.argsort(-value, axis=1, kind="stable")[:, :depth]
        top = np.take_along_axis(value, order, axis=1)
        found = np.isfinite(top)
        campaign = np.full((n, k), -1, dtype=np.int32)
        score = np.zeros((n, k), dtype=np.float32)
        campaign[:, :depth] = np.where(found, order, -1)
        score[:, :depth] = np.where(found, top, 0.0)
        return campaign, score

    def _similar(
        self, batch: RequestBatch, rows: NDArray[np.bool_], interest: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        surface, context = batch.surface[rows], batch.context_item[rows]
        share = np.zeros(len(surface), dtype=np.float32)
        for s, value in _CONTEXT_SHARE.items():
            share[surface == s] = value
        share[context < 0] = 0.0
        profile = _unit_rows(interest @ self._vectors)
        on_screen = self._vectors[self.items.category[np.maximum(context, 0)]]
        query = (1.0 - share)[:, None] * profile + share[:, None] * on_screen
        return self._index.search(query.astype(np.float32), k)

    def _campaign_text_index(self) -> sp.csr_matrix:
        """``(terms + categories, campaigns)``: which campaign items carry which term, category."""
        titles = self.items.title_terms[self.campaign_item]
        r, c = np.nonzero(titles >= 0)
        n_terms, n_cat = self.items.n_terms, self.items.n_categories
        n = len(self.campaign_item)
        term_part = sp.csr_matrix(
            (np.ones(len(r), np.float32), (titles[r, c], r)), shape=(n_terms, n)
        )
        term_part.data[:] = 1.0  # a term repeated in a title counts once
        category_part = sp.csr_matrix(
            (np.ones(n, np.float32), (self._category, np.arange(n))), shape=(n_cat, n)
        )
        return sp.vstack([term_part, category_part], format="csr")

    def _vector_index(self) -> CategoryIndex:
        return CategoryIndex(
            cell=self._category.astype(np.int64),
            cell_vectors=self._vectors,
            quality=self._quality,
            live=self._live,
        )


def _unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: NDArray[np.float32] = matrix / np.maximum(norms, 1e-12)
    return out


def _term_categories(items: ItemTable) -> sp.csr_matrix:
    """``(terms, categories)``: the share of each term's uses in titles that fall in a category."""
    r, c = np.nonzero(items.title_terms >= 0)
    counts = sp.csr_matrix(
        (np.ones(len(r), np.float32), (items.title_terms[r, c], items.category[r])),
        shape=(items.n_terms, items.n_categories),
    )
    share = _normalise_rows(counts)
    share.data[share.data < _EXPANSION_FLOOR] = 0.0
    share.eliminate_zeros()
    return share


def _idf(items: ItemTable) -> NDArray[np.float32]:
    r, c = np.nonzero(items.title_terms >= 0)
    present = np.unique(items.title_terms[r, c].astype(np.int64) * len(items) + r)
    documents = np.bincount(present // len(items), minlength=items.n_terms)
    # BM25's idf: positive even for a term in every title, so a small catalog whose titles all
    # share a word still answers a search for it (log(N/df) would weigh that word zero).
    n = len(items)
    idf: NDArray[np.float32] = np.log1p((n - documents + 0.5) / (documents + 0.5)).astype(
        np.float32
    )
    return idf


def _normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)


def _top_k(
    scores: sp.csr_matrix, k: int, *, bonus: NDArray[np.float32], live: NDArray[np.bool_]
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Row-wise top ``k`` live columns of a sparse score matrix, as dense ``-1`` padded arrays.

    Ties go to the lower column. One sort of a single key (row, then score descending) instead
    of a three-key lexsort: the rows' entries are already grouped, only their order is needed.
    """
    scores = scores.multiply(live[None, :].astype(np.float32)).tocsr()
    scores.eliminate_zeros()
    scores.sort_indices()
    n = scores.shape[0]
    counts = np.diff(scores.indptr)
    row = np.repeat(np.arange(n), counts)
    value = scores.data + bonus[scores.indices]
    campaign = np.full((n, k), -1, dtype=np.int32)
    score = np.zeros((n, k), dtype=np.float32)
    if len(value) == 0:
        return campaign, score
    low, high = float(value.min()), float(value.max())
    # Scores squeezed into [0, 1), subtracted from the row number: one key orders both.
    squeezed = (value.astype(np.float64) - low) / ((high - low) * (1 + 1e-9) + 1e-12)
    order = np.argsort(row - squeezed + 1.0, kind="stable")
    rank = np.arange(len(order)) - scores.indptr[row[order]]
    keep = order[rank < k]
    slot = rank[rank < k]
    campaign[row[keep], slot] = scores.indices[keep]
    score[row[keep], slot] = value[keep]
    return campaign, score
