"""Database access: one engine per service, sessions that only the request boundary commits."""

from __future__ import annotations

import datetime as dt
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def enum_column(enum: type[StrEnum], name: str) -> SAEnum:
    """A string column holding a StrEnum's values (no native enum type: adding a value later is
    a code change, not a schema migration on PostgreSQL)."""
    return SAEnum(
        enum,
        name=name,
        native_enum=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite forgets the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a timezone-aware one is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


AfterCommitHook = Callable[[], None]


@dataclass(frozen=True)
class DatabaseOptions:
    """How a service talks to its database; from ``CommonSettings.database_options``.

    Every wait is bounded so a request is answered (served, or 503) in bounded time: a writer
    waits at most ``lock_timeout`` for SQLite's write lock or a PostgreSQL row/advisory lock, a
    request at most ``pool_timeout`` for a pooled connection, a statement at most
    ``statement_timeout`` (PostgreSQL; ``None`` for migrations and maintenance).
    """

    pool_size: int = 10
    max_overflow: int = 5
    pool_timeout: float = 3.0
    pre_ping: bool = True
    lock_timeout: float = 3.0
    statement_timeout: float | None = 5.0
    connect_timeout: int = 5


# Migrations and maintenance commands may run long statements on big tables.
MAINTENANCE = DatabaseOptions(statement_timeout=None, lock_timeout=60.0, pool_timeout=30.0)

_READ_ONLY = "hallpass_read_only"


class Database:
    """An engine plus a session factory for one service's own database."""

    def __init__(self, url: str, options: DatabaseOptions | None = None) -> None:
        self.url = make_url(url)
        self.options = options = options or DatabaseOptions()
        self._after_commit: list[AfterCommitHook] = []
        if self.url.get_backend_name() == "sqlite":
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": options.lock_timeout},
                poolclass=NullPool if database in (None, "", ":memory:") else None,
            )
            _serialise_sqlite_writers(self.engine, options.lock_timeout)
        else:
            server_options = [f"-c lock_timeout={int(options.lock_timeout * 1000)}"]
            if options.statement_timeout is not None:
                server_options.append(
                    f"-c statement_timeout={int(options.statement_timeout * 1000)}"
                )
            self.engine = create_engine(
                self.url,
                pool_size=options.pool_size,
                max_overflow=options.max_overflow,
                pool_timeout=options.pool_timeout,
                # Not SQLAlchemy's pre-ping (a round trip on every checkout): _check_alive below.
                pool_pre_ping=False,
                pool_recycle=3600,
                connect_args={
                    "connect_timeout": options.connect_timeout,
                    "options": " ".join(server_options),
                },
            )
            if options.pre_ping:
                _check_alive(self.engine)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Commit hooks wake background workers to new work; a transaction that only looked (a
        # worker finding its queue empty) must not wake the others, or idle workers keep
        # waking each other for ever.
        event.listen(self.sessionmaker, "after_flush", _mark_written)
        event.listen(self.sessionmaker, "do_orm_execute", _mark_written_unless_select)
        # Same pool and events; its transactions only read, so on SQLite they never queue for
        # the write lock (WAL readers see the last commit while a writer works).
        self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self.read_sessionmaker = sessionmaker(self._read_engine, expire_on_commit=False)
        # PostgreSQL runs a lone statement as its own transaction with its own snapshot, so a
        # read of one statement needs no BEGIN and COMMIT round trips around it.
        self._autocommit_engine = (
            None
            if self.dialect == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def on_commit(self, hook: AfterCommitHook) -> None:
        """Run ``hook`` after every successful commit of a session from this database."""
        self._after_commit.append(hook)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back otherwise.

        A ``read_only`` session may not write (SQLite refuses it); it never waits for writers.
        """
        session = (self.read_sessionmaker if read_only else self.sessionmaker)()
        try:
            yield session
            wrote = bool(session.info.get(_WROTE))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        if wrote and not read_only:
            for hook in self._after_commit:
                hook()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads that need one statement only (a decision batch): it sees one
        snapshot, may not write, and waits for no writer.

        PostgreSQL runs it in autocommit (the statement is its own transaction); SQLite in a
        read-only transaction (WAL readers see the last commit and take no lock). Several
        statements that must agree with each other belong in ``session(read_only=True)``.
        """
        if self._autocommit_engine is None:
            with self._read_engine.begin() as connection:
                yield connection
            return
        with self._autocommit_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


_WROTE = "hallpass.wrote"


def _mark_written(session: Session, _flush_context: Any) -> None:
    session.info[_WROTE] = True


def _mark_written_unless_select(state: ORMExecuteState) -> None:
    # Core inserts, updates and deletes and raw SQL all count; only a SELECT (locking or not)
    # leaves the database as it was.
    if not state.is_select:
        state.session.info[_WROTE] = True


# A pooled connection idle longer than this is pinged before use (see _check_alive).
IDLE_PING_SECONDS = 10.0
_RETURNED_AT = "hallpass.returned_at"


def _check_alive(engine: Engine) -> None:
    """Turn a connection the server dropped (restart, failover, a killed backend) into a fresh
    one on checkout, instead of a failed request, without a round trip on every checkout.

    A server that ends a connection says so (an error message, then the socket's end) and the
    socket of an idle connection becomes readable: nothing else arrives unasked on a connection
    sitting in the pool (no LISTEN here). One poll of the socket, a system call, finds that; a
    ping round trip (what pool_pre_ping does every time) cost more PostgreSQL CPU and a trip
    through the network per request. A connection idle for IDLE_PING_SECONDS or longer is
    pinged all the same, for what a socket cannot show: a path that dropped it silently.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None:
            return  # opened for this checkout
        if dbapi_connection.closed or _socket_readable(dbapi_connection.fileno()):
            # This connection only, not the pool: after a restart every other one's socket says
            # so too when its turn comes, and anything else that made a socket readable (nothing
            # should) costs one new connection, never a pool's worth.
            raise DisconnectionError("the server ended the connection")
        # The ping SQLAlchemy's pre-ping sends: False on a disconnect (its handle_error events
        # included), any other error raised.
        if time.monotonic() - returned_at >= IDLE_PING_SECONDS and not cast(
            DefaultDialect, engine.dialect
        )._do_ping_w_event(dbapi_connection):
            raise DisconnectionError("the connection did not answer a ping")


def _socket_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _serialise_sqlite_writers(engine: Engine, lock_timeout: float) -> None:
    # pysqlite's deferred BEGIN lets two writers read the same audit-chain head and then race
    # for the lock; BEGIN IMMEDIATE takes the write lock first, so appends are serialised.
    # Read-only transactions begin deferred and take no lock at all (WAL).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cursor.close()

    # Within this process, writers also queue on a lock of our own: SQLite's busy handler polls
    # with sleeps of up to 100 ms, so under contention a waiting writer could sleep long after
    # the lock was free. The lock hands over at once; other processes still meet busy_timeout.
    turn = _WriterTurn(lock_timeout)
    readers: set[int] = set()
    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def end_reading(dbapi_connection: Any) -> None:
        raw = _raw_id(dbapi_connection)
        if raw in readers:
            readers.discard(raw)
            dbapi_connection.execute("PRAGMA query_only=0")

    def do_commit(dbapi_connection: Any) -> None:
        try:
            plain_commit(dbapi_connection)
        finally:
            turn.give_back(dbapi_connection)
            end_reading(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            plain_rollback(dbapi_connection)
        finally:
            turn.give_back(dbapi_connection)
            end_reading(dbapi_connection)

    # The dialect instance belongs to this engine alone.
    setattr(dialect, "do_commit", do_commit)  # noqa: B010
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if connection.get_execution_options().get(_READ_ONLY):
            # query_only makes a stray write in a read session fail loudly instead of
            # silently upgrading to the write lock mid-transaction.
            connection.exec_driver_sql("PRAGMA query_only=1")
            readers.add(_raw_id(dbapi_connection))
            connection.exec_driver_sql("BEGIN")
            return
        turn.take(dbapi_connection)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turn.give_back(dbapi_connection)
            raise

    @event.listens_for(engine, "close", named=True)
    def _on_close(**kw: Any) -> None:
        # A connection closed mid-transaction (invalidated) must not keep the turn.
        turn.give_back(kw["dbapi_connection"])
        readers.discard(_raw_id(kw["dbapi_connection"]))


def _raw_id(connection: Any) -> int:
    # The dialect is handed the pool's proxy, pool events the DBAPI connection itself.
    return id(getattr(connection, "dbapi_connection", connection))


class _WriterTurn:
    """One transaction at a time per database in this process, handed over without polling."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._timeout = timeout

    def take(self, connection: Any) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked")
        self._holder = _raw_id(connection)

    def give_back(self, connection: Any) -> None:
        if self._holder is not None and self._holder == _raw_id(connection):
            self._holder = None
            self._lock.release()
