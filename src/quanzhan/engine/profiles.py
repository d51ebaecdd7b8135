"""Shopper profiles learned from logged behaviour: how each one's clicks spread over categories."""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

# Pseudo-clicks spread over the platform-wide mix, so a new shopper starts from the average.
_PRIOR_CLICKS = 2.0


class UserProfiles:
    """Per-user click counts by category, smoothed towards the platform's category mix."""

    def __init__(self, *, n_users: int, n_categories: int) -> None:
        self.n_users = n_users
        self.n_categories = n_categories
        self._counts = sp.csr_matrix((n_users, n_categories), dtype=np.float32)
        self._mix = np.full(n_categories, 1.0 / n_categories)

    def add(self, *, user: NDArray[np.int32], category: NDArray[np.int32]) -> None:
        """Count one click per ``(user, category)`` entry; unknown users (``-1``) are skipped."""
        known = user >= 0
        if not known.any():
            return
        shape = (self.n_users, self.n_categories)
        ones = np.ones(int(known.sum()), dtype=np.float32)
        added = sp.csr_matrix((ones, (user[known], category[known])), shape=shape)
        self._counts = (self._counts + added).tocsr()
        totals = np.asarray(self._counts.sum(axis=0)).ravel() + 1.0
        self._mix = totals / totals.sum()

    def snapshot(self) -> UserProfiles:
        """The profiles as they stand, unmoved by later ``add`` (which replaces its arrays and
        never writes into them, so the snapshot shares them and costs nothing)."""
        return copy.copy(self)

    def distribution(self, user: NDArray[np.int32]) -> NDArray[np.float32]:
        """``(n, categories)`` smoothed share of each user's clicks per category."""
        counts = np.zeros((len(user), self.n_categories), dtype=np.float32)
        known = user >= 0
        if known.any():
            counts[known] = self._counts[user[known]].toarray()
        counts += (_PRIOR_CLICKS * self._mix).astype(np.float32)
        out: NDArray[np.float32] = counts / counts.sum(axis=1, keepdims=True)
        return out

    def project(self, user: NDArray[np.int32], basis: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(n, r)``: ``distribution(user) @ basis`` (``basis`` is ``(categories, r)``), at a
        thin product per distinct shopper rather than a dense profile per row."""
        basis = np.asarray(basis, dtype=np.float64)
        prior = _PRIOR_CLICKS * (self._mix @ basis)
        numerator = np.repeat(prior[None, :], len(user), axis=0)
        denominator = np.full(len(user), _PRIOR_CLICKS)
        known = user >= 0
        if known.any():
            shoppers, index = np.unique(user[known], return_inverse=True)
            rows = self._counts[shoppers]
            numerator[known] += np.asarray(rows @ basis)[index]
            denominator[known] += np.asarray(rows.sum(axis=1)).ravel()[index]
        out: NDArray[np.float32] = (numerator / denominator[:, None]).astype(np.float32)
        return out

    @property
    def counts(self) -> sp.csr_matrix:
        """``(users, categories)`` clicks counted so far (without the smoothing)."""
        return self._counts
