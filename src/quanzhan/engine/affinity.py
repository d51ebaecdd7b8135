"""How shoppers of one category take to the items of another, learned from the engine's log.

A shopper's taste is more than the categories they click: someone who buys running shoes may
click sports watches far more than a random shopper does. ``CategoryAffinity`` learns a
``(categories, categories)`` matrix of click lifts: row ``a``, column ``j`` is how much more (log)
often shoppers whose clicks fall in ``a`` click an ad of category ``j`` than ads click on average,
after the slot's position effect. Each impression spreads its weight over its shopper's click
profile; the impression's own click is left out of that profile (leave-one-out), so a click
never explains itself. Cells are smoothed towards no lift and the matrix is cut to its leading
eigen-components: ten thousand noisy cells become a few dozen well-measured directions.

A shopper's affinity for category ``j`` is then their profile times column ``j``
(``affinities``); it is both a feature of the click and purchase models and what retrieval ranks
categories by.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from quanzhan.engine.organic import ROWS_AT_ONCE, OrganicClickRates, stratum_of
from quanzhan.engine.profiles import UserProfiles

# Pseudo-exposure behind each cell's lift, at the platform's average click rate.
_PSEUDO_EXPOSURE = 20.0
# Leading eigen-components kept; the rest of the spectrum is mostly sampling noise.
_RANK = 24
# Rows whose affinities ``of_rows`` works out together: bounds its memory on long logs.
_ROWS_AT_ONCE = 1 << 17


class CategoryAffinity:
    """A ``(categories, categories)`` click-lift matrix; zero (no lift) until fitted."""

    def __init__(self, *, n_categories: int, rank: int = _RANK) -> None:
        if n_categories < 1 or rank < 1:
            raise ValueError("n_categories and rank must be at least 1")
        self.n_categories = n_categories
        self.rank = min(rank, n_categories)
        # ``lift = left @ right`` (``(categories, rank)`` and ``(rank, categories)``, unused
        # components zero): two thin products per batch instead of a square one (400
        # categories: 8 times fewer operations).
        self.left = np.zeros((n_categories, self.rank), dtype=np.float32)
        self.right = np.zeros((self.rank, n_categories), dtype=np.float32)
        # Organic evidence (``observe_organic``): clicks and expected clicks per cell, and the
        # organic results shown and clicked per surface and page position.
        self._organic_clicks = np.zeros((n_categories, n_categories))
        self._organic_expected = np.zeros((n_categories, n_categories))
        self._organic_rates = OrganicClickRates()

    @property
    def lift(self) -> NDArray[np.float32]:
        """The ``(categories, categories)`` click-lift matrix."""
        out: NDArray[np.float32] = self.left @ self.right
        return out

    def affinities(self, interest: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(n, categories)``: each shopper's expected lift per category, for ``(n,
        categories)`` interest distributions (rows summing to one)."""
        if not self.left.any():
            return np.zeros((len(interest), self.n_categories), dtype=np.float32)
        thin = np.asarray(interest, dtype=np.float32) @ self.left
        out: NDArray[np.float32] = np.asarray(thin @ self.right, dtype=np.float32)
        return out

    def of_rows(
        self, profiles: UserProfiles, *, user: NDArray[np.int32], category: NDArray[np.integer]
    ) -> NDArray[np.float32]:
        """``(m,)``: each row's affinity, its shopper's profile in ``profiles`` times this
        lift's column for the row's category: what ``affinities`` serves, row by row."""
        out = np.zeros(len(user), dtype=np.float32)
        if not self.left.any():
            return out
        for start in range(0, len(user), _ROWS_AT_ONCE):
            part = slice(start, start + _ROWS_AT_ONCE)
            thin = profiles.project(user[part], self.left)
            out[part] = np.einsum("nr,nr->n", thin, self.right.T[category[part]])
        return out

    def observe_organic(
        self,
        *,
        counts: sp.csr_matrix,
        user: NDArray[np.int32],
        category: NDArray[np.integer],
        surface: NDArray[np.int8],
        position: NDArray[np.integer],
        clicked: NDArray[np.bool_],
    ) -> None:
        """Keep the evidence of organic results shown (``engine.organic``): the shopper, the
        item's category, the surface, the page position and whether it was clicked; ``counts``
        as in ``fit``. Each result is expected to draw the click rate of its surface and
        position over every organic result seen so far, so cells compare clicks with what the
        page alone would have drawn. The evidence is kept and counts at every later ``fit``."""
        # The rates over all of them first, then each part's cells at those rates: in parts,
        # so a day of results never takes a temporary per result.
        self._organic_rates.add(surface=surface, position=position, clicked=clicked)
        rate = self._organic_rates.rates().ravel()
        for at in range(0, len(user), ROWS_AT_ONCE):
            part = slice(at, at + ROWS_AT_ONCE)
            clicks, expected = self._cells(
                counts=counts,
                user=user[part],
                category=category[part],
                clicked=clicked[part],
                expected=rate[stratum_of(surface[part], position[part])],
            )
            self._organic_clicks += clicks
            self._organic_expected += expected

    def fit(
        self,
        *,
        counts: sp.csr_matrix,
        user: NDArray[np.int32],
        category: NDArray[np.integer],
        clicked: NDArray[np.bool_],
        exposure: NDArray[np.float64],
    ) -> None:
        """Relearn from impressions of ads (the shopper, the ad's category, whether it was
        clicked and its exposure, the position factor of its slot) and the organic evidence
        kept so far. ``counts`` is ``(users, categories)``: every shopper's clicks per category,
        the impressions' own clicks included (they are taken out here). Unknown shoppers
        (``-1``) carry no profile and are skipped."""
        clicks, exposed = self._cells(
            counts=counts, user=user, category=category, clicked=clicked, expected=exposure
        )
        organic_clicks = float(self._organic_clicks.sum())
        if clicks.sum() > 0 and exposed.sum() > 0:
            # An ad's exposure counts in its slot's position factors; at the ads' click rate
            # it is in expected clicks, as the organic evidence is.
            rate = clicks.sum() / exposed.sum()
        elif organic_clicks > 0:
            rate = organic_clicks / float(self._organic_rates.shown.sum())
        else:
            return
        clicks = clicks + self._organic_clicks
        expected = exposed * rate + self._organic_expected
        pseudo = _PSEUDO_EXPOSURE * rate
        lift = np.log((clicks + pseudo) / (expected + pseudo))
        self._set(0.5 * (lift + lift.T))

    def _cells(
        self,
        *,
        counts: sp.csr_matrix,
        user: NDArray[np.int32],
        category: NDArray[np.integer],
        clicked: NDArray[np.bool_],
        expected: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(categories, categories)`` clicks and ``expected`` summed per cell: row ``a``,
        column ``j`` over the rows of category ``j``, each spread over its shopper's click
        profile with its own click left out. Rows without a click share their shopper's whole
        profile, so they are summed per shopper and category first: a day of organic results
        costs a product per shopper, not per row."""
        c = self.n_categories
        known = user >= 0
        user, category = user[known], category[known].astype(np.int64)
        clicked, expected = clicked[known], expected[known]
        plain = ~clicked
        shoppers, index = np.unique(user[plain], return_inverse=True)
        per_shopper = sp.csr_matrix(
            (expected[plain], (index, category[plain])), shape=(len(shoppers), c)
        )
        exposed = np.asarray((_spread(counts[shoppers]).T @ per_shopper).todense())
        hit = np.flatnonzero(clicked)
        shown = sp.csr_matrix((np.ones(len(hit)), (np.arange(len(hit)), category[hit])),
                              shape=(len(hit), c))  # fmt: skip
        # A click not yet in ``counts`` removes nothing.
        without_own = (counts[user[hit]].astype(np.float64) - shown).maximum(0.0)
        spread = _spread(without_own)
        clicks = np.asarray((spread.T @ shown).todense())
        exposed += np.asarray((spread.T @ sp.diags(expected[hit]) @ shown).todense())
        return clicks, exposed

    def _set(self, symmetric: NDArray[np.float64]) -> None:
        """Keep the leading ``rank`` eigen-components of a symmetric matrix."""
        values, vectors = np.linalg.eigh(symmetric)
        top = np.argsort(-np.abs(values), kind="stable")[: self.rank]
        self.left = np.zeros_like(self.left)
        self.right = np.zeros_like(self.right)
        self.left[:, : len(top)] = vectors[:, top] * values[top]
        self.right[: len(top)] = vectors[:, top].T

    def state(self) -> dict[str, NDArray[np.float32]]:
        return {"left": self.left, "right": self.right}

    def load_state(self, state: dict[str, NDArray[np.float32]]) -> None:
        """Take what ``state`` gave; ``ValueError``, changing nothing, unless the names and
        shapes are this model's and the values finite."""
        if set(state) != set(self.state()):
            raise ValueError(f"affinity state holds {sorted(state)}, expected ['left', 'right']")
        for name, mine in self.state().items():
            given = state[name]
            if np.shape(given) != mine.shape or not np.all(np.isfinite(given)):
                raise ValueError(f"affinity state {name!r} has the wrong shape or bad values")
        self.left = np.asarray(state["left"], dtype=np.float32).copy()
        self.right = np.asarray(state["right"], dtype=np.float32).copy()


def _spread(profile: sp.csr_matrix) -> sp.csr_matrix:
    """Each row of click counts as shares summing to one (a row without clicks stays empty)."""
    profile = sp.csr_matrix(profile, dtype=np.float64)
    totals = np.asarray(profile.sum(axis=1)).ravel()
    scale = np.where(totals > 0, 1.0 / np.maximum(totals, 1e-12), 0.0)
    out: sp.csr_matrix = (sp.diags(scale) @ profile).tocsr()
    return out
