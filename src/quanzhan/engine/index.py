"""An inverted-file (IVF) nearest-neighbour index whose cells are the item categories.

Every campaign sits in the cell of its item's category; cells carry a learned vector each
(``UserProfiles.category_vectors``) and list their campaigns best first by quality. A query
probes its nearest non-empty cells by inner product and takes campaigns cell after cell, in
cell order, until it has ``k``. It is approximate in the usual IVF way: a strong campaign in a
far cell can be missed, and within the probed cells quality only orders a cell's own list.

Only live campaigns (budget left, not paused) are listed, so no candidate slot goes to a
campaign that cannot bid; rebuilding is a sort of the campaigns, cheap enough for every tick.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Extra cells probed beyond those needed to fill k at the average cell size.
_EXTRA_PROBES = 4
# Weight of a campaign's quality score against a perfect cell match (1.0), in every ranking.
QUALITY_WEIGHT = 0.05


class CategoryIndex:
    """Campaign lists per category cell; ``search`` answers ``(n, k)`` campaigns and scores."""

    def __init__(
        self,
        *,
        cell: NDArray[np.int64],
        cell_vectors: NDArray[np.float32],
        quality: NDArray[np.float32],
        live: NDArray[np.bool_],
    ) -> None:
        n_cells = len(cell_vectors)
        self.cell_vectors = cell_vectors
        self.quality = quality
        listed = np.flatnonzero(live)
        order = np.lexsort((listed, -quality[listed], cell[listed]))
        self.members = listed[order].astype(np.int32)
        self.sizes = np.bincount(cell[self.members], minlength=n_cells)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Best ``k`` campaigns per query row, ``-1`` padded, with score = cell similarity +
        a small quality lean."""
        n = len(queries)
        campaign = np.full((n, k), -1, dtype=np.int32)
        score = np.zeros((n, k), dtype=np.float32)
        if n == 0 or len(self.members) == 0:
            return campaign, score
        cell_score = queries @ self.cell_vectors.T
        probes = self._probes(k)
        # Empty cells rank last so that no probe is spent on them.
        ranked = np.where(self.sizes > 0, cell_score, -np.inf)
        top = np.argpartition(-ranked, probes - 1, axis=1)[:, :probes]
        top_score = np.take_along_axis(ranked, top, axis=1)
        rank = np.argsort(-top_score, axis=1, kind="stable")
        top = np.take_along_axis(top, rank, axis=1)
        filled = np.cumsum(self.sizes[top], axis=1)  # (n, probes)
        slot = np.arange(k)
        which = (filled[:, None, :] <= slot[None, :, None]).sum(axis=2)  # probe holding each slot
        found = which < probes
        which = np.minimum(which, probes - 1)
        before = np.where(
            which > 0, np.take_along_axis(filled, np.maximum(which - 1, 0), axis=1), 0
        )
        chosen_cell = np.take_along_axis(top, which, axis=1)
        position = self.starts[chosen_cell] + slot[None, :] - before
        member = self.members[np.minimum(position, len(self.members) - 1)]
        campaign[found] = member[found]
        similarity = np.take_along_axis(cell_score, chosen_cell, axis=1)
        score[found] = (similarity + QUALITY_WEIGHT * self.quality[member])[found]
        return campaign, score

    def _probes(self, k: int) -> int:
        """Cells to probe: enough to fill ``k`` at the average cell size, and a few more."""
        filled = max(int((self.sizes > 0).sum()), 1)
        average = max(len(self.members) / filled, 1.0)
        return int(min(filled, np.ceil(k / average) + _EXTRA_PROBES))
