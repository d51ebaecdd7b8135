"""The platform's promotion calendar as the service keeps it (``promotions``): dated windows of
busier traffic, announced by the operator, which the control loop hands to the policies and the
traffic forecast (``api.calendar``)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text

from quanzhan.store.catalog import ConflictError
from quanzhan.store.schema import promotions

# Beyond this a factor is a typing slip, not a promotion.
MAX_TRAFFIC_FACTOR = 100.0
# PostgreSQL advisory lock taken while a window is checked against its day's and stored.
_CALENDAR_LOCK = 0x70726F6D


def add_promotion(
    connection: Connection,
    *,
    day: str,
    start_hour: float,
    end_hour: float,
    traffic_factor: float,
    now: float,
) -> dict[str, Any]:
    """A new window on ``day`` (UTC ``YYYY-MM-DD``) from ``start_hour`` to ``end_hour`` (0 to
    24); ``ValueError``, storing nothing, where it is not one, and ``ConflictError`` where it
    overlaps a window already on that day (a request sent twice would otherwise count twice).
    """
    check_promotion(day=day, start_hour=start_hour, end_hour=end_hour, factor=traffic_factor)
    if connection.dialect.name == "postgresql":  # SQLite's writers take turns already
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CALENDAR_LOCK})
    clash = connection.execute(
        select(promotions.c.id, promotions.c.start_hour, promotions.c.end_hour).where(
            promotions.c.day == day,
            promotions.c.start_hour < end_hour,
            promotions.c.end_hour > start_hour,
        )
    ).first()
    if clash is not None:
        raise ConflictError(
            f"promotion {clash.id} already covers {clash.start_hour:g}-{clash.end_hour:g} h on"
            f" {day}: withdraw it first, or announce the hours around it"
        )
    values = {
        "day": day,
        "start_hour": float(start_hour),
        "end_hour": float(end_hour),
        "traffic_factor": float(traffic_factor),
        "created_at": now,
    }
    new_id = connection.execute(insert(promotions).values(**values)).inserted_primary_key
    assert new_id is not None
    return {"id": int(new_id[0]), **values}


def check_promotion(*, day: str, start_hour: float, end_hour: float, factor: float) -> None:
    """``ValueError`` unless this is a window within one UTC day with a sensible factor."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"a promotion's day is a date, YYYY-MM-DD, not {day!r}") from None
    if parsed.isoformat() != day:
        raise ValueError(f"a promotion's day is a date, YYYY-MM-DD, not {day!r}")
    if not (0.0 <= start_hour < end_hour <= 24.0):
        raise ValueError(
            f"a promotion runs within its day, from 0 to 24 h, start before end: not"
            f" {start_hour}-{end_hour}"
        )
    if not (math.isfinite(factor) and 0.0 < factor <= MAX_TRAFFIC_FACTOR):
        raise ValueError(
            f"a promotion's traffic factor lies in (0, {MAX_TRAFFIC_FACTOR:g}], not {factor}"
        )


def list_promotions(
    connection: Connection, *, first_day: str | None = None, last_day: str | None = None
) -> list[dict[str, Any]]:
    """Windows on days from ``first_day`` to ``last_day`` (both included; open where
    ``None``), by day and start."""
    query = select(promotions)
    if first_day is not None:
        query = query.where(promotions.c.day >= first_day)
    if last_day is not None:
        query = query.where(promotions.c.day <= last_day)
    query = query.order_by(promotions.c.day, promotions.c.start_hour, promotions.c.id)
    return [dict(r._mapping) for r in connection.execute(query)]


def delete_promotion(connection: Connection, promotion_id: int) -> bool:
    """Remove a window; whether there was one."""
    gone = connection.execute(delete(promotions).where(promotions.c.id == promotion_id))
    return bool(gone.rowcount)
