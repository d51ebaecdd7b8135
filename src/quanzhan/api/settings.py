"""How a service process is set up: from ``quanzhan serve``'s options or the environment."""

from __future__ import annotations

import hashlib
import hmac
import os

from pydantic import BaseModel, ConfigDict, Field

from quanzhan.engine.config import EngineConfig
from quanzhan.errors import ConfigError

OPERATOR_KEY_ENV = "QUANZHAN_OPERATOR_KEY"
_MIN_KEY = 16


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    database_url: str = "sqlite:///quanzhan.db"
    operator_key: str = Field(min_length=_MIN_KEY)
    # Shared by every process of one deployment; derived from the operator key unless given.
    token_secret: str | None = Field(default=None, min_length=_MIN_KEY)
    token_ttl_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    # The simulator's control tick: the policies' gains and memories are tuned per tick of it.
    tick_seconds: float = Field(default=900.0, gt=0, le=3600)
    refresh_seconds: float = Field(default=0.5, gt=0, le=60)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # A request's body must arrive within this (a trickling client holds a buffer and a socket).
    body_seconds: float = Field(default=10.0, gt=0, le=300)
    # The benchmark's default: sampling the menus it plans over costs the decision path about a
    # tenth of its rate (benchmarks/RESULTS.md, HTTP decisions), far less than `dual` costs in
    # ROI attainment.
    policy: str = "landscape"
    redis_url: str | None = None
    # The service does not yet learn its models from its own log, so nothing would price an ad
    # off the query: its search keeps to ads that answer the query.
    engine: EngineConfig = Field(default_factory=lambda: EngineConfig(search_requires_match=True))

    def token_key(self) -> bytes:
        if self.token_secret is not None:
            return self.token_secret.encode()
        return hmac.new(
            self.operator_key.encode(), b"quanzhan click tokens", hashlib.sha256
        ).digest()

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        """Settings from ``QUANZHAN_*`` variables (how ``serve`` hands them to its workers)."""
        key = os.environ.get(OPERATOR_KEY_ENV)
        if not key:
            raise ConfigError(f"{OPERATOR_KEY_ENV} is not set: the server needs an operator key")
        if len(key) < _MIN_KEY:
            raise ConfigError(f"{OPERATOR_KEY_ENV} must be at least {_MIN_KEY} characters")
        values: dict[str, object] = {"operator_key": key}
        for name, env in (
            ("database_url", "QUANZHAN_DATABASE_URL"),
            ("token_secret", "QUANZHAN_TOKEN_SECRET"),
            ("redis_url", "QUANZHAN_REDIS_URL"),
            ("policy", "QUANZHAN_POLICY"),
        ):
            if os.environ.get(env):
                values[name] = os.environ[env]
        for name, env in (
            ("tick_seconds", "QUANZHAN_TICK_SECONDS"),
            ("token_ttl_seconds", "QUANZHAN_TOKEN_TTL_SECONDS"),
            ("refresh_seconds", "QUANZHAN_REFRESH_SECONDS"),
            ("body_seconds", "QUANZHAN_BODY_SECONDS"),
        ):
            if os.environ.get(env):
                try:
                    values[name] = float(os.environ[env])
                except ValueError:
                    raise ConfigError(f"{env} must be a number") from None
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            raise ConfigError(f"bad service settings: {exc}") from None
