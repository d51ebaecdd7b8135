"""Hot counters shared by serving processes: today's spend per campaign, in Redis.

The database's ledger is the truth and is what charges are checked against; the board lets
every process learn within a few tens of milliseconds (its own poll, ``Runtime``) that a
campaign spent its budget, instead of at its next database refresh (half a second by default).
Either way, clicks on ads shown meanwhile are charged nothing past the budget. Redis being down
costs only that speed: the board logs it and reads as empty until Redis is back.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol

from quanzhan.errors import ConfigError

_TTL_SECONDS = 3 * 86_400

log = logging.getLogger("quanzhan.counters")


class SpendBoard(Protocol):
    def add(self, day: str, amounts: dict[int, float]) -> None: ...

    def read(self, day: str) -> dict[int, float]: ...

    def close(self) -> None: ...


class NoBoard:
    """No shared counters: processes learn spend from the database alone."""

    def add(self, day: str, amounts: dict[int, float]) -> None:
        return None

    def read(self, day: str) -> dict[int, float]:
        return {}

    def close(self) -> None:
        return None


class RedisBoard:
    """Today's spend per campaign in one Redis hash per day."""

    def __init__(self, url: str, *, prefix: str = "quanzhan") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._warned = False
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"cannot reach Redis at {url}: {exc}") from None

    def _key(self, day: str) -> str:
        return f"{self._prefix}:spend:{day}"

    def add(self, day: str, amounts: dict[int, float]) -> None:
        if not amounts:
            return
        pipe = self._redis.pipeline()
        for campaign_id, amount in amounts.items():
            pipe.hincrbyfloat(self._key(day), str(campaign_id), amount)
        pipe.expire(self._key(day), _TTL_SECONDS)
        try:
            pipe.execute()
        except self._errors as exc:  # the charge is committed; the board is only a hint
            self._unavailable(exc)

    def read(self, day: str) -> dict[int, float]:
        try:
            raw = self._redis.hgetall(self._key(day))
        except self._errors as exc:
            self._unavailable(exc)
            return {}
        self._warned = False
        return {int(k): float(v) for k, v in raw.items()}

    def _unavailable(self, exc: Exception) -> None:
        if not self._warned:  # once per outage, not at every poll
            log.warning(
                "redis unavailable; spend comes from the database", extra={"error": str(exc)}
            )
            self._warned = True

    def close(self) -> None:
        self._redis.close()


def make_spend_board(redis_url: str | None, *, scope: str = "") -> SpendBoard:
    """The board for ``redis_url``; its keys are kept apart per ``scope`` (the database URL), as
    campaign ids are only unique within one database: another database on the same Redis (a
    fresh one, or another deployment's) must not inherit the spend of its namesake campaigns."""
    if redis_url is None:
        return NoBoard()
    digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
    return RedisBoard(redis_url, prefix=f"quanzhan:{digest}")
