"""What each full-site campaign could have bought in each auction, the competitors' bids fixed.

For a candidate campaign ``c`` in an auction, slot ``j`` goes to ``c`` when its eCPM beats the
``j``-th best eCPM among the *other* candidates, ``e_j(-c)``; under the generalised second price
it then pays ``max(reserve, e_j(-c) / pctr_c)`` per click. From the auction's landscape (its top
``s + 1`` eCPMs) those thresholds are exact for every slot: where ``c`` itself sits in the
landscape at rank ``r``, the others' ``j``-th best is ``landscape[j]`` for ``j < r`` and
``landscape[j + 1]`` from there on.

These menus (slot -> price per click) are what the online-LP policy re-solves and what the
hindsight optimum is computed over.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Opportunities:
    """``m`` (request, campaign) menus: ``price`` is ``(m, s)``, ``nan`` where the slot does not
    exist on that page. ``row`` indexes the request in its batch, ``column`` the candidate."""

    request_id: NDArray[np.int64]
    row: NDArray[np.int64]
    column: NDArray[np.int64]
    campaign: NDArray[np.int32]
    surface: NDArray[np.int8]
    pctr: NDArray[np.float64]
    pcvr: NDArray[np.float64]
    price: NDArray[np.float64]
    won_slot: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.campaign)

    def take(self, index: NDArray[np.int64]) -> Opportunities:
        """Just the menus at ``index``, in its order."""
        return Opportunities(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Opportunities], *, offsets: list[int]) -> Opportunities:
        """Join per-chunk menus; ``offsets`` shift each chunk's ``row`` to the whole batch."""
        merged = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(Opportunities)
        }
        merged["row"] = np.concatenate([p.row + o for p, o in zip(parts, offsets, strict=True)])
        return Opportunities(**merged)


def slot_menus(
    *,
    request_id: NDArray[np.int64],
    surface: NDArray[np.int8],
    campaign: NDArray[np.int32],
    eligible: NDArray[np.bool_],
    pctr: NDArray[np.float64],
    pcvr: NDArray[np.float64],
    landscape_ecpm: NDArray[np.float64],
    landscape_col: NDArray[np.int32],
    winner: NDArray[np.int32],
    n_slots: NDArray[np.int16],
    reserve: NDArray[np.float64],
) -> Opportunities:
    """Menus of every ``eligible`` ``(n, k)`` candidate; landscapes are ``(n, s + 1)``."""
    n, k = campaign.shape
    s = landscape_ecpm.shape[1] - 1
    # Worked out for the eligible candidates alone: most candidates of an auction have no menu
    # (another policy steers them, or their pCTR is under the floor). Where each candidate sits
    # in the landscape and which slot it won are set on the ``(n, k)`` grid, a column of the
    # landscape at a time (a candidate appears at most once in each), and read per menu.
    row, col = np.nonzero(eligible)
    rows = np.arange(n)
    rank = np.full((n, k), s + 1, dtype=np.int64)
    for j in range(s + 1):
        listed = landscape_col[:, j] >= 0
        rank[rows[listed], landscape_col[listed, j]] = j
    won_slot = np.full((n, k), -1, dtype=np.int64)
    for j in range(winner.shape[1]):
        filled = winner[:, j] >= 0
        won_slot[rows[filled], winner[filled, j]] = j
    rank, won_slot = rank[row, col], won_slot[row, col]
    menu_pctr, menu_reserve, menu_slots = pctr[row, col], reserve[row], n_slots[row]
    price = np.empty((len(row), s))
    above = landscape_ecpm[row, 0]
    for j in range(s):
        below = landscape_ecpm[row, j + 1]
        # The others' j-th best eCPM: the landscape's j-th above the candidate, its (j + 1)-th
        # below it.
        threshold = np.where(j < rank, above, below)
        price[:, j] = np.where(
            j < menu_slots, np.maximum(menu_reserve, threshold / menu_pctr), np.nan
        )
        above = below
    return Opportunities(
        request_id=request_id[row],
        row=row.astype(np.int64),
        column=col.astype(np.int64),
        campaign=campaign[row, col],
        surface=surface[row],
        pctr=menu_pctr,
        pcvr=pcvr[row, col],
        price=price,
        won_slot=won_slot,
    )
