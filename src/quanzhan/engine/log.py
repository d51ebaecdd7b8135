"""The engine's own log of what it showed and what came of it: all its models learn from."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Impressions:
    """Shown ads as columns ``(m,)``; ``x_ctr``, ``x_cvr`` are the features as served, ``(m, f)``,
    and ``pctr`` (at the slot shown) and ``pcvr`` the predictions as served.

    ``click_id`` is ``-1`` for impressions that were not clicked.
    """

    request_id: NDArray[np.int64]
    time: NDArray[np.float64]
    surface: NDArray[np.int8]
    slot: NDArray[np.int64]
    campaign: NDArray[np.int32]
    user: NDArray[np.int32]
    click_id: NDArray[np.int64]
    click_time: NDArray[np.float64]
    x_ctr: NDArray[np.float32]
    x_cvr: NDArray[np.float32]
    pctr: NDArray[np.float64]
    pcvr: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.request_id)

    @staticmethod
    def empty() -> Impressions:
        empty_x = np.zeros((0, 0), np.float32)
        return Impressions(
            request_id=np.zeros(0, np.int64),
            time=np.zeros(0),
            surface=np.zeros(0, np.int8),
            slot=np.zeros(0, np.int64),
            campaign=np.zeros(0, np.int32),
            user=np.zeros(0, np.int32),
            click_id=np.zeros(0, np.int64),
            click_time=np.zeros(0),
            x_ctr=empty_x,
            x_cvr=empty_x,
            pctr=np.zeros(0),
            pcvr=np.zeros(0),
        )

    def take(self, index: NDArray[np.int64] | NDArray[np.bool_]) -> Impressions:
        return Impressions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def clicked(self) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = self.click_id >= 0
        return mask


@dataclass(frozen=True, slots=True)
class Landscape:
    """The top eCPMs of every auction: ``(m, s + 1)`` eCPMs and their campaigns (``-1`` padded),
    with each auction's request id, time, surface and slot count. With the competitors' bids
    fixed, this is what any campaign would have had to beat, slot by slot."""

    request_id: NDArray[np.int64]
    time: NDArray[np.float64]
    surface: NDArray[np.int8]
    n_slots: NDArray[np.int16]
    ecpm: NDArray[np.float64]
    campaign: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.request_id)


class EventLog:
    """Append-only log of impressions (with their clicks) and of orders attributed to clicks."""

    def __init__(self) -> None:
        self._chunks: list[Impressions] = []
        self._merged: Impressions | None = None
        self._orders: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
        self._landscapes: list[Landscape] = []

    def add_impressions(self, impressions: Impressions) -> None:
        if len(impressions):
            self._chunks.append(impressions)
            self._merged = None

    def add_landscape(self, landscape: Landscape) -> None:
        if len(landscape):
            self._landscapes.append(landscape)

    def landscape(self) -> Landscape:
        """Every auction logged so far, in order."""
        if not self._landscapes:
            raise LookupError("the log holds no auctions yet")
        names = [f.name for f in fields(Landscape)]
        merged = Landscape(
            **{n: np.concatenate([getattr(c, n) for c in self._landscapes]) for n in names}
        )
        self._landscapes = [merged]
        return merged

    def add_attributed_orders(self, click_id: NDArray[np.int64], time: NDArray[np.float64]) -> None:
        """Orders attributed to clicks (an order of the clicked item by the clicker): the click
        each was attributed to and when it was placed (``nan`` where that is not known).
        ``ValueError`` where the two differ in length."""
        click_id = np.asarray(click_id, dtype=np.int64)
        time = np.asarray(time, dtype=np.float64)
        if click_id.shape != time.shape or click_id.ndim != 1:
            raise ValueError("click_id and time need one entry per order")
        keep = click_id >= 0
        self._orders.append((click_id[keep], time[keep]))

    def impressions(self) -> Impressions:
        if self._merged is None:
            if not self._chunks:
                raise LookupError("the log holds no impressions yet")
            names = [f.name for f in fields(Impressions)]
            merged = Impressions(
                **{n: np.concatenate([getattr(c, n) for c in self._chunks]) for n in names}
            )
            self._chunks = [merged]
            self._merged = merged
        return self._merged

    def ordered_clicks(self) -> NDArray[np.int64]:
        """Every click an order was attributed to, once each, in order of id."""
        return self.orders()[0]

    def orders(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Every click an order was attributed to, once each, in order of id, and when its
        first order was placed (``nan`` where no time is known)."""
        if not self._orders:
            return np.zeros(0, np.int64), np.zeros(0)
        click_id = np.concatenate([c for c, _ in self._orders])
        time = np.concatenate([t for _, t in self._orders])
        order = np.lexsort((time, click_id))  # by click, its earliest known time first
        click_id, time = click_id[order], time[order]
        first = np.ones(len(click_id), dtype=bool)
        first[1:] = click_id[1:] != click_id[:-1]
        merged = (click_id[first], time[first])
        self._orders = [merged]
        return merged

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)
