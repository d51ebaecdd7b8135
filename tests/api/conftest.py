"""Fixtures for the service: real server processes over HTTP, on SQLite always and on the
machine's PostgreSQL and Redis when they are there.

Where PostgreSQL or Redis is absent, the tests that need it skip, unless
``QUANZHAN_REQUIRE_SERVICES=1`` (as in CI), where an absent service fails them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import OPERATOR_KEY, POSTGRES_ADMIN, REDIS_URL, Api, Server, absent


@pytest.fixture(scope="session")
def postgres_admin() -> Any:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        engine = sqlalchemy.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        absent("PostgreSQL at 127.0.0.1:5432", exc)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A fresh, empty schema in the ``test`` database, dropped afterwards."""
    from sqlalchemy import text

    schema = f"qz_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_ADMIN}?options=-csearch_path%3D{schema}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def redis_url() -> str:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        absent("Redis at 127.0.0.1:6379", exc)
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes it runs once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'quanzhan.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    running = Server(database_url, log=tmp_path / "server.log").start()
    yield running
    running.stop()


@pytest.fixture
def operator(server: Server) -> Iterator[Api]:
    api = Api(server.url, OPERATOR_KEY)
    yield api
    api.close()


@pytest.fixture
def ops(shared: Server) -> Iterator[Api]:
    """The operator's client of the module's ``shared`` server (modules that use it define
    ``shared``)."""
    api = Api(shared.url, OPERATOR_KEY)
    yield api
    api.close()


@pytest.fixture
def database(database_url: str) -> Iterator[Any]:
    """A migrated database: a SQLite file, then PostgreSQL (``database_url``)."""
    from quanzhan.store.database import Database

    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()
