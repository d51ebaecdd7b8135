"""Hot counters shared by serving processes: today's spend per campaign, in Redis.

The database's ledger is the truth and is what charges are checked against; the board only lets
every process learn within milliseconds that a campaign spent its budget, so none keeps showing
its ads until its next database refresh. Without Redis the board is empty and processes learn it
from the database every refresh (half a second by default): those late clicks are charged
nothing, never more than the budget.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from quanzhan.errors import ConfigError

_TTL_SECONDS = 3 * 86_400


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

        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix
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
        pipe.execute()

    def read(self, day: str) -> dict[int, float]:
        raw = self._redis.hgetall(self._key(day))
        return {int(k): float(v) for k, v in raw.items()}

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
