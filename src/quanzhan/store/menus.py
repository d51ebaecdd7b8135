"""The queue of slot menus from the serving processes to the control loop (``menu_samples``).

Each serving process samples the menus its auctions offered (``api.menus``) and appends them
here; the process holding the control lease reads them all at a tick and deletes what it read
in the transaction that stores the policies' new state, so a failed tick leaves them for the
next. A row is one auction a campaign took part in: what each slot would have brought and cost
it in the engine's predicted terms, and how many auctions the row stands for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, delete, insert, select

from quanzhan.store.schema import menu_samples

# Ids per DELETE statement: well under every driver's limit on bound parameters.
_DELETE_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class MenuRows:
    """``m`` sampled menus: ``value``/``cost`` ``(m, s)`` per slot (``nan`` where the page had
    no such slot), each row standing for ``weight`` auctions of campaign ``campaign_id`` at
    ``time`` (seconds since the epoch)."""

    campaign_id: NDArray[np.int64]
    time: NDArray[np.float64]
    weight: NDArray[np.float64]
    value: NDArray[np.float64]
    cost: NDArray[np.float64]

    def __post_init__(self) -> None:
        m = len(self.campaign_id)
        if self.value.ndim != 2 or self.value.shape != self.cost.shape or len(self.value) != m:
            raise ValueError("menu value and cost need the same (rows, slots) shape")
        if self.time.shape != (m,) or self.weight.shape != (m,):
            raise ValueError("menus need one time and one weight per row")
        if not np.all(np.isfinite(self.weight) & (self.weight > 0)):
            raise ValueError("menu weights must be finite and positive")

    def __len__(self) -> int:
        return len(self.campaign_id)

    @staticmethod
    def empty() -> MenuRows:
        return MenuRows(
            campaign_id=np.zeros(0, np.int64),
            time=np.zeros(0),
            weight=np.zeros(0),
            value=np.zeros((0, 1)),
            cost=np.zeros((0, 1)),
        )

    @staticmethod
    def concat(parts: Sequence[MenuRows]) -> MenuRows:
        """The rows of every part in order, slots widened to the widest (``nan`` beyond)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return MenuRows.empty()
        width = max(p.value.shape[1] for p in parts)
        return MenuRows(
            campaign_id=np.concatenate([p.campaign_id for p in parts]),
            time=np.concatenate([p.time for p in parts]),
            weight=np.concatenate([p.weight for p in parts]),
            value=np.concatenate([_nan_padded(p.value, width) for p in parts]),
            cost=np.concatenate([_nan_padded(p.cost, width) for p in parts]),
        )

    def take(self, index: NDArray[np.int64]) -> MenuRows:
        return MenuRows(
            self.campaign_id[index],
            self.time[index],
            self.weight[index],
            self.value[index],
            self.cost[index],
        )


def add_menu_samples(connection: Connection, rows: MenuRows) -> None:
    """Append ``rows`` to the queue, each row's slots up to its page's last one."""
    if not len(rows):
        return
    width = _page_width(rows.value)
    connection.execute(
        insert(menu_samples),
        [
            {
                "campaign_id": campaign,
                "time": time,
                "weight": weight,
                "value": rows.value[i, : width[i]].astype("<f8").tobytes(),
                "cost": rows.cost[i, : width[i]].astype("<f8").tobytes(),
            }
            for i, (campaign, time, weight) in enumerate(
                zip(
                    rows.campaign_id.tolist(),
                    rows.time.tolist(),
                    rows.weight.tolist(),
                    strict=True,
                )
            )
        ],
    )


def read_menu_samples(connection: Connection) -> tuple[list[int], MenuRows]:
    """Every queued row: their ids (to delete once used) and the rows, in id order."""
    found = connection.execute(
        select(
            menu_samples.c.id,
            menu_samples.c.campaign_id,
            menu_samples.c.time,
            menu_samples.c.weight,
            menu_samples.c.value,
            menu_samples.c.cost,
        ).order_by(menu_samples.c.id)
    ).all()
    if not found:
        return [], MenuRows.empty()
    values = [np.frombuffer(r[4], dtype="<f8") for r in found]
    costs = [np.frombuffer(r[5], dtype="<f8") for r in found]
    width = max(1, max(len(v) for v in values))
    value, cost = np.full((len(found), width), np.nan), np.full((len(found), width), np.nan)
    for i, (v, c) in enumerate(zip(values, costs, strict=True)):
        value[i, : len(v)], cost[i, : len(c)] = v, c
    rows = MenuRows(
        campaign_id=np.array([r[1] for r in found], dtype=np.int64),
        time=np.array([r[2] for r in found], dtype=np.float64),
        weight=np.array([r[3] for r in found], dtype=np.float64),
        value=value,
        cost=cost,
    )
    return [int(r[0]) for r in found], rows


def delete_menu_samples(connection: Connection, ids: Sequence[int]) -> None:
    """Remove the rows read (by id: a row another process committed meanwhile stays)."""
    for start in range(0, len(ids), _DELETE_CHUNK):
        chunk = list(ids[start : start + _DELETE_CHUNK])
        connection.execute(delete(menu_samples).where(menu_samples.c.id.in_(chunk)))


def _page_width(value: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per row, the number of slots up to its last one that is not ``nan`` (at least one)."""
    present = ~np.isnan(value)
    last = value.shape[1] - np.argmax(present[:, ::-1], axis=1)
    width: NDArray[np.int64] = np.where(present.any(axis=1), last, 1).astype(np.int64)
    return width


def _nan_padded(menu: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    padded: NDArray[np.float64] = np.pad(
        menu, ((0, 0), (0, width - menu.shape[1])), constant_values=np.nan
    )
    return padded
