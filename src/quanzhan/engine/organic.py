"""The platform's own results: what shoppers were shown outside the ads and what they clicked.

A marketplace logs every result it shows, not only its ads: on a `default` day the organic
results drew about twice the ad clicks, on every category a shopper browses and on the odd one
they stray to. The engine learns shoppers' tastes from them (``engine.profiles``,
``engine.affinity``); it never bids on them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES


@dataclass(frozen=True, slots=True)
class OrganicEvents:
    """Organic results shown, as columns ``(m,)``: when, on which surface, to whom (``-1``
    unknown), which item, at which page position (0 is the top of the page, ads included) and
    whether it was clicked."""

    time: NDArray[np.float64]
    surface: NDArray[np.int8]
    user: NDArray[np.int32]
    item: NDArray[np.int32]
    position: NDArray[np.int64]
    clicked: NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.time)
        for field in fields(self):
            if np.shape(getattr(self, field.name)) != (n,):
                raise ValueError(f"organic events: {field.name} must be one value per event")
        if n and (self.surface.min() < 0 or self.surface.max() >= N_SURFACES):
            raise ValueError("organic events: surface out of range")
        if n and self.position.min() < 0:
            raise ValueError("organic events: position must be non-negative")

    def __len__(self) -> int:
        return len(self.time)

    @staticmethod
    def concat(parts: list[OrganicEvents]) -> OrganicEvents:
        if not parts:
            return OrganicEvents.empty()
        return OrganicEvents(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(parts[0])
            }
        )

    @staticmethod
    def empty() -> OrganicEvents:
        return OrganicEvents(
            time=np.zeros(0),
            surface=np.zeros(0, np.int8),
            user=np.zeros(0, np.int32),
            item=np.zeros(0, np.int32),
            position=np.zeros(0, np.int64),
            clicked=np.zeros(0, bool),
        )
