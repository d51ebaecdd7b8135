"""The migrations and the tables the code uses agree, on SQLite and on PostgreSQL, and a database
at an older revision is brought up to date at start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from quanzhan.errors import ConfigError
from quanzhan.store.database import MIGRATIONS, Database
from quanzhan.store.schema import metadata

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    from sqlalchemy import create_engine

    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        import os

        if os.environ.get("QUANZHAN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    schema = f"qz_mig_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _differences(database: Database) -> list[Any]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, metadata))


def test_the_migrations_build_exactly_the_tables_the_code_uses(url: str) -> None:
    database = Database(url)
    database.migrate()
    assert database.revision() == Database.head()
    assert _differences(database) == []
    database.migrate()  # again: a no-op at every later start
    assert database.revision() == Database.head()
    database.dispose()


def test_an_older_database_is_upgraded_at_start(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    database = Database(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    with database.write() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with database.engine.connect() as connection:
        before = {i["name"] for i in inspect(connection).get_indexes("clicks")}
    assert "ix_clicks_time" not in before
    database.migrate()
    with database.engine.connect() as connection:
        after = {i["name"] for i in inspect(connection).get_indexes("clicks")}
    assert "ix_clicks_time" in after
    assert database.revision() == Database.head()
    database.dispose()


def test_a_bad_url_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database"):
        Database("mysql://x@localhost/db")
    with pytest.raises(ConfigError, match="no such folder"):
        Database(f"sqlite:///{tmp_path / 'missing' / 'q.db'}")
