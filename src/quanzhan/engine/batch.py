"""Columnar batches that flow through the decision path.

A ``RequestBatch`` of length ``n`` holds one page view per row. ``user`` is ``-1`` where the
viewer is unknown (unmatched off-site traffic); ``query_terms`` is ``-1`` padded, shape
``(n, q)``; ``context_item`` is the item on screen (detail), just bought (post-purchase) or in the
basket (cart feed), else ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class RequestBatch:
    """``n`` page views as columns."""

    request_id: NDArray[np.int64]
    time: NDArray[np.float64]  # seconds since the start of the first simulated day
    surface: NDArray[np.int8]
    user: NDArray[np.int32]
    query_terms: NDArray[np.int32]
    context_item: NDArray[np.int32]
    n_slots: NDArray[np.int16]

    def __post_init__(self) -> None:
        n = len(self.request_id)
        for name in ("time", "surface", "user", "context_item", "n_slots"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"request column {name!r} must have shape ({n},)")
        if self.query_terms.ndim != 2 or self.query_terms.shape[0] != n:
            raise ValueError(f"query_terms must have shape ({n}, q)")

    def __len__(self) -> int:
        return len(self.request_id)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Top-k campaigns per request, ``-1`` padded: ``campaign``, ``score`` and ``rank`` are
    ``(n, k)``.

    ``score`` is the retrieval relevance (text match on search, similarity elsewhere), a feature
    of the models; ``rank`` what retrieval ranked the candidates by, the log of the value it
    expects of each (``-inf`` on padding).
    """

    campaign: NDArray[np.int32]
    score: NDArray[np.float32]
    rank: NDArray[np.float32]

    @property
    def valid(self) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = self.campaign >= 0
        return mask


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for a batch: per request and slot, ``(n, s)``, ``-1`` where empty.

    ``pctr`` is the predicted click probability at that slot (position factor included) and
    ``pcvr`` the predicted purchase probability per click; ``price`` is the price per click.
    The landscape holds the top ``s + 1`` eCPMs of each auction and their campaigns.
    """

    campaign: NDArray[np.int32]
    item: NDArray[np.int32]
    price: NDArray[np.float64]
    bid: NDArray[np.float64]
    pctr: NDArray[np.float64]
    pcvr: NDArray[np.float64]
    landscape_ecpm: NDArray[np.float64]
    landscape_campaign: NDArray[np.int32]
