"""An inverted-file (IVF) index over campaigns whose cells are the item categories.

A campaign's worth to a page view is scored as ``cell_score[request, category] + value[campaign]``
(plus small per-campaign terms the caller adds): how much this viewer takes to the category, and
how good the campaign is on its own (its item's learned click and purchase rates, its price).
Every campaign sits in its category's cell, cells list their campaigns best value first, and
each cell knows its best value, so ``cell_score + best`` bounds what any campaign of the cell can
score. A query probes the cells of highest bound and hands back, cell after cell, the first
``budget`` campaigns of those cells; the caller scores these exactly and keeps the best ``k``.

It is approximate in the usual IVF way (a strong campaign in a cell never probed is missed, and
a long cell is cut at ``budget``), and exact when the budget covers every campaign. Only live
campaigns (budget left, not paused) are listed, so no candidate goes to a campaign that cannot
bid; building is one sort of the campaigns, cheap enough for every refresh.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Extra cells probed beyond those needed to fill the budget at the average cell size.
_EXTRA_PROBES = 4


class CategoryIndex:
    """Campaign lists per category cell, best ``value`` first."""

    def __init__(
        self,
        *,
        cell: NDArray[np.int64],
        n_cells: int,
        value: NDArray[np.float32],
        live: NDArray[np.bool_],
    ) -> None:
        if len(cell) != len(value) or len(cell) != len(live):
            raise ValueError("cell, value and live need one entry per campaign")
        listed = np.flatnonzero(live)
        order = np.lexsort((listed, -value[listed], cell[listed]))
        self.members = listed[order].astype(np.int32)
        self.cell_of = cell
        self.sizes = np.bincount(cell[self.members], minlength=n_cells).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        best = np.full(n_cells, -np.inf, dtype=np.float32)
        nonempty = self.sizes > 0
        best[nonempty] = value[self.members[self.starts[nonempty]]]
        self.best = best

    def __len__(self) -> int:
        return len(self.members)

    def candidates(self, cell_score: NDArray[np.float32], budget: int) -> NDArray[np.int32]:
        """``(n, budget)`` campaigns, ``-1`` padded, from the cells of highest bound for each
        row of ``cell_score`` (``(n, cells)``), taken cell after cell, best bound first."""
        n = len(cell_score)
        out = np.full((n, budget), -1, dtype=np.int32)
        if n == 0 or len(self.members) == 0 or budget < 1:
            return out
        probes = self._probes(budget)
        # Empty cells bound at -inf and rank last, so that no probe is spent on them.
        bound = cell_score + self.best[None, :]
        if probes < bound.shape[1]:
            top = np.argpartition(-bound, probes - 1, axis=1)[:, :probes]
        else:
            top = np.broadcast_to(np.arange(bound.shape[1]), (n, bound.shape[1])).copy()
        rank = np.argsort(-np.take_along_axis(bound, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, rank, axis=1)
        # The probed cells' member lists laid end to end, row after row, each row cut at
        # ``budget``: every run of members is copied with two offsets (where it comes from,
        # where it goes), built by one ``repeat`` each.
        length = self.sizes[top]  # (n, probes)
        before = np.cumsum(length, axis=1) - length
        length = np.clip(budget - before, 0, length)  # cells past the budget give nothing
        runs = length.ravel()
        total = int(runs.sum())
        run_start = np.cumsum(runs) - runs
        destination = (np.arange(n)[:, None] * budget + before).ravel()
        step = np.arange(total)
        source = step + np.repeat(self.starts[top].ravel() - run_start, runs)
        out.ravel()[step + np.repeat(destination - run_start, runs)] = self.members[source]
        return out

    def _probes(self, budget: int) -> int:
        """Cells to probe: enough to fill ``budget`` at the average cell size, and a few more."""
        filled = max(int((self.sizes > 0).sum()), 1)
        average = max(len(self.members) / filled, 1.0)
        return int(min(len(self.sizes), np.ceil(budget / average) + _EXTRA_PROBES))
