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

# Page positions told apart in the organic results' click rates; lower ones share the last.
POSITIONS = 64
# Organic results worked out together: bounds the temporaries of a day of them.
ROWS_AT_ONCE = 1 << 22


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
        if len(parts) == 1:  # no copy: a day of them can take gigabytes
            return parts[0]
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


@dataclass(frozen=True, slots=True)
class OrganicEvidence:
    """What the engine keeps of organic results until its next refresh, as columns ``(m,)``:
    the shopper (``-1`` unknown), the item's category, the surface, the page position (capped
    at ``MAX_POSITION``, past any the affinity tells apart), whether it was clicked and when it
    was shown (to a fraction of a second over weeks). Sixteen bytes a result against the
    events' twenty-six: a ``large`` day shows 70 million."""

    user: NDArray[np.int32]
    category: NDArray[np.int32]
    surface: NDArray[np.int8]
    position: NDArray[np.int16]
    clicked: NDArray[np.bool_]
    time: NDArray[np.float32]

    MAX_POSITION = 1 << 14

    def __len__(self) -> int:
        return len(self.user)

    @staticmethod
    def of(events: OrganicEvents, item_category: NDArray[np.integer]) -> OrganicEvidence:
        """The evidence of ``events``, given each item's category."""
        return OrganicEvidence(
            user=events.user.astype(np.int32, copy=False),
            category=item_category[events.item].astype(np.int32, copy=False),
            surface=events.surface.astype(np.int8, copy=False),
            position=np.minimum(events.position, OrganicEvidence.MAX_POSITION).astype(np.int16),
            clicked=events.clicked.astype(bool, copy=False),
            time=events.time.astype(np.float32),
        )

    @staticmethod
    def concat(parts: list[OrganicEvidence]) -> OrganicEvidence:
        if not parts:
            return OrganicEvidence.of(OrganicEvents.empty(), np.zeros(0, np.int32))
        if len(parts) == 1:  # no copy, as for the events
            return parts[0]
        return OrganicEvidence(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(OrganicEvidence)
            }
        )


class OrganicClickRates:
    """The organic results' click rates by surface and page position, over every one counted.

    Page positions past ``POSITIONS - 1`` share the last. The rates tell what the page alone
    draws: ``engine.affinity`` measures tastes against them.
    """

    def __init__(self) -> None:
        self.shown = np.zeros((N_SURFACES, POSITIONS))
        self.clicked = np.zeros((N_SURFACES, POSITIONS))

    def add(
        self,
        *,
        surface: NDArray[np.int8],
        position: NDArray[np.integer],
        clicked: NDArray[np.bool_],
    ) -> None:
        size = self.shown.size
        for at in range(0, len(surface), ROWS_AT_ONCE):  # a day's results, a part at a time
            part = slice(at, at + ROWS_AT_ONCE)
            stratum = stratum_of(surface[part], position[part])
            self.shown += np.bincount(stratum, minlength=size).reshape(self.shown.shape)
            clicks = np.bincount(stratum[clicked[part]], minlength=size)
            self.clicked += clicks.reshape(self.shown.shape)

    def rates(self) -> NDArray[np.float64]:
        """``(surfaces, POSITIONS)`` clicks per result shown (zero where none was shown)."""
        out: NDArray[np.float64] = self.clicked / np.maximum(self.shown, 1.0)
        return out


def stratum_of(surface: NDArray[np.int8], position: NDArray[np.integer]) -> NDArray[np.int64]:
    """Each result's index into a flattened ``(surfaces, POSITIONS)`` table."""
    out: NDArray[np.int64] = surface.astype(np.int64) * POSITIONS + np.minimum(
        position, POSITIONS - 1
    )
    return out
