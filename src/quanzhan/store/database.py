"""The service's database: a SQLite file by default, PostgreSQL by URL; schema by Alembic.

Writes that move money run in transactions that lock what they change: on PostgreSQL with
``SELECT ... FOR UPDATE`` on the rows they touch, on SQLite by taking the database's write lock at
``BEGIN IMMEDIATE``, so a read-then-write cannot interleave with another writer. SQLite runs in
WAL mode with ``synchronous=FULL``: a transaction that committed survives the process being
killed, and the service acknowledges nothing before it commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from quanzhan.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed number: the PostgreSQL advisory lock that lets one process migrate at a time.
_MIGRATION_LOCK = 0x5175616E
_RETRIES = 8

T = TypeVar("T")


class Database:
    """One database, by SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"not a database URL: {url!r}") from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ConfigError("SQLite needs a file (sqlite:///path.db), not memory")
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ConfigError(f"no such folder for the database file: {folder}")
            self.engine = _sqlite_engine(url)
        elif self.dialect == "postgresql":
            self.engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        else:
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading, on one consistent snapshot of the database (a report's
        figures agree with each other; SQLite's read transactions are snapshots already)."""
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with connection.begin():
                yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; on SQLite it holds the write lock from its first statement."""
        with self.engine.connect() as connection:
            connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                yield connection

    def retrying(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, again if the database gave up on it (deadlock,
        serialization failure, SQLite busy): the transaction rolled back, so nothing happened."""
        for attempt in range(_RETRIES):
            try:
                with self.write() as connection:
                    return work(connection)
            except OperationalError as exc:
                if attempt == _RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    def migrate(self) -> None:
        """Bring the schema to the newest migration (at every start; a no-op when current)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.write() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        with self.read() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head() -> str | None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    # One connection per checkout: SQLite connections are cheap, and a pool of them shared
    # across threads buys nothing once every writer queues for the same lock.
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's events emit BEGIN, so a writer can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock time-out
        return True
    return "database is locked" in str(exc.orig)
