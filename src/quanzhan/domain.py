"""Value types every layer shares.

Surfaces, campaign modes and ROI bases are small integer enums so that columnar batches can
hold them in ``int8`` arrays; their lower-case names are the public spelling (API, JSON, CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray


class Surface(IntEnum):
    """Where a page view happens. The value is the index used in every per-surface array."""

    SEARCH = 0
    HOME_FEED = 1
    CART_FEED = 2
    POST_PURCHASE = 3
    DETAIL = 4
    OFFSITE = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Surface:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(SURFACE_NAMES)
            raise ValueError(f"unknown surface {name!r}; known: {known}") from None


SURFACE_NAMES: tuple[str, ...] = tuple(s.label for s in Surface)
DAY_SECONDS = 86_400.0
N_SURFACES = len(Surface)


class CampaignMode(IntEnum):
    """How a campaign bids: automatically towards a full-site ROI, or at a fixed manual CPC."""

    FULL_SITE = 0
    MANUAL_CPC = 1

    @property
    def label(self) -> str:
        return self.name.lower()


class RoiBasis(IntEnum):
    """Which GMV counts towards a campaign's ROI: ad and organic (``full_site``) or ad only."""

    FULL_SITE = 0
    AD_ONLY = 1

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class CampaignTable:
    """All campaigns as columns; campaign ``c`` is row ``c`` of every array.

    ``manual_cpc`` is the fixed bid per click of manual campaigns and 0 for the others.
    """

    item: NDArray[np.int32]
    mode: NDArray[np.int8]
    budget: NDArray[np.float64]
    target_roi: NDArray[np.float64]
    roi_basis: NDArray[np.int8]
    manual_cpc: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.item)
        for name in ("mode", "budget", "target_roi", "roi_basis", "manual_cpc"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"campaign column {name!r} has a length other than {n}")
        for name in ("budget", "target_roi"):
            values = getattr(self, name)
            if n and not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError(f"campaign {name} values must be finite and positive")

    def __len__(self) -> int:
        return len(self.item)


@dataclass(frozen=True, slots=True)
class ItemTable:
    """What the marketplace publicly knows of every item: row ``i`` describes item ``i``.

    ``title_terms`` holds term ids of the item's title, ``-1`` padded, shape ``(n_items, t)``.
    """

    category: NDArray[np.int32]
    merchant: NDArray[np.int32]
    price: NDArray[np.float64]
    title_terms: NDArray[np.int32]
    n_categories: int
    n_terms: int

    def __len__(self) -> int:
        return len(self.category)
