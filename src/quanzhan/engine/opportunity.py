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
    n = len(campaign)
    s = landscape_ecpm.shape[1] - 1
    # Worked out for the eligible candidates alone: most candidates of an auction have no menu
    # (another policy steers them, or their pCTR is under the floor).
    row, col = np.nonzero(eligible)
    in_landscape = landscape_col[row] == col[:, None]  # (m, s + 1)
    rank = np.where(in_landscape.any(axis=1), in_landscape.argmax(axis=1), s + 1)
    padded = np.hstack([landscape_ecpm, np.zeros((n, 1))])[row]
    slot = np.arange(s)
    # The others' j-th best eCPM: the landscape's j-th above the candidate, its (j + 1)-th below.
    threshold = np.where(slot[None, :] < rank[:, None], padded[:, :s], padded[:, 1 : s + 1])
    price = np.maximum(reserve[row, None], threshold / pctr[row, col, None])
    price[slot[None, :] >= n_slots[row, None]] = np.nan
    won = winner[row] == col[:, None]
    won_slot = np.where(won.any(axis=1), won.argmax(axis=1), -1)
    return Opportunities(
        request_id=request_id[row],
        row=row.astype(np.int64),
        column=col.astype(np.int64),
        campaign=campaign[row, col],
        surface=surface[row],
        pctr=pctr[row, col],
        pcvr=pcvr[row, col],
        price=price,
        won_slot=won_slot.astype(np.int64),
    )
