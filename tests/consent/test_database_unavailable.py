"""A database that cannot answer is a 503 with Retry-After that changes nothing, and recovers by
itself: PostgreSQL connections killed or unreachable, SQLite's write lock held too long."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hallpass_consent.models import Base
from hallpass_kit import db as db_module
from hallpass_kit.auth import DevIssuer
from hallpass_kit.db import Database, DatabaseOptions
from hallpass_kit.settings import CommonSettings
from tests import databases
from tests.conftest import TokenFactory, build_consent_app
from tests.consent.builders import SchoolBuilder, assert_problem
from tests.databases import POSTGRES_URL

SHORT_WAITS = DatabaseOptions(
    pool_size=2, max_overflow=0, pool_timeout=1.0, lock_timeout=0.3, statement_timeout=5.0
)


# --- SQLite: the write lock held by someone else -------------------------------------------------


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "consent.db"
    shutil.copyfile(sqlite_template, path)
    return path


def test_sqlite_write_lock_held_elsewhere_is_503_and_reads_go_on(
    sqlite_path: Path, issuer: DevIssuer, common_settings: CommonSettings, auth: TokenFactory
) -> None:
    database = Database(f"sqlite:///{sqlite_path}", SHORT_WAITS)
    with TestClient(build_consent_app(database, issuer, common_settings)) as client:
        school = SchoolBuilder(client, auth)
        school.set_up()
        school.school_class("Year 3 Oak", 3)
        # Another process (a maintenance script, a second worker) holds the write lock.
        holder = sqlite3.connect(sqlite_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            refused = client.post(
                "/v1/classes", json={"name": "Year 4 Elm", "year_group": 4}, headers=auth("office")
            )
            problem = assert_problem(refused, 503, "database_unavailable")
            assert refused.headers["Retry-After"].isdigit()
            assert "nothing was changed" in problem["detail"]
            # WAL: a read needs no lock and sees the last commit while the writer works.
            listed = client.get("/v1/classes", headers=auth("staff"))
            assert listed.status_code == 200
            assert [c["name"] for c in listed.json()] == ["Year 3 Oak"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        created = client.post(
            "/v1/classes", json={"name": "Year 4 Elm", "year_group": 4}, headers=auth("office")
        )
        assert created.status_code == 201
    database.dispose()


def test_a_read_only_session_cannot_write(sqlite_path: Path) -> None:
    database = Database(f"sqlite:///{sqlite_path}", SHORT_WAITS)
    with pytest.raises(Exception, match="readonly"), database.session(read_only=True) as session:
        session.execute(text("INSERT INTO consumed_event VALUES ('x', 'y', '2026-01-01')"))
    # The connection goes back to the pool able to write again.
    with database.session() as session:
        session.execute(
            text(
                "INSERT INTO consumed_event VALUES "
                "('x', '00000000000000000000000000000001', '2026-01-01')"
            )
        )
    database.dispose()


# --- PostgreSQL: connections killed, server unreachable ------------------------------------------


class TcpRelay:
    """A loopback relay in front of PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a failed server would."""
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def relayed_postgres(postgres_database: str) -> Iterator[tuple[str, TcpRelay]]:
    url = make_url(postgres_database)
    relay = TcpRelay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    yield relayed, relay
    relay.close()


postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="HALLPASS_TEST_POSTGRES_URL is not set")


@postgres
@pytest.mark.postgres_only
def test_postgres_connections_killed_are_replaced_without_an_error(
    postgres_database: str, issuer: DevIssuer, common_settings: CommonSettings, auth: TokenFactory
) -> None:
    databases.emptied(postgres_database, Base.metadata).dispose()
    database = Database(postgres_database, SHORT_WAITS)
    with TestClient(build_consent_app(database, issuer, common_settings)) as client:
        SchoolBuilder(client, auth).set_up()
        assert client.get("/v1/classes", headers=auth("staff")).status_code == 200
        admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        # Pre-ping finds the pooled connection dead and opens a new one.
        assert client.get("/v1/classes", headers=auth("staff")).status_code == 200
    database.dispose()


def _backend_pid(database: Database) -> int:
    with database.reading() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@postgres
@pytest.mark.postgres_only
def test_postgres_checkout_of_a_live_connection_costs_no_round_trip(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(postgres_database, SHORT_WAITS)
    pings: list[object] = []
    dialect = database.engine.dialect
    plain_ping = dialect.do_ping

    def counted_ping(connection: Any) -> bool:
        pings.append(connection)
        return plain_ping(connection)

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    try:
        first = _backend_pid(database)
        assert [_backend_pid(database) for _ in range(5)] == [first] * 5
        assert pings == []  # checked by polling its socket, not by asking the server
        # Idle longer than the socket can vouch for (a path that dropped it silently): pinged.
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
        assert _backend_pid(database) == first
        assert len(pings) == 1
    finally:
        database.dispose()


@postgres
@pytest.mark.postgres_only
def test_postgres_connection_ended_by_the_server_is_replaced_on_checkout(
    postgres_database: str,
) -> None:
    database = Database(postgres_database, SHORT_WAITS)
    try:
        killed = _backend_pid(database)
        admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
            # The server has ended it once it is gone from pg_stat_activity.
            for _ in range(200):
                gone = connection.execute(
                    text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": killed},
                ).scalar_one()
                if gone:
                    break
                time.sleep(0.01)
        admin.dispose()
        assert _backend_pid(database) != killed
    finally:
        database.dispose()


@postgres
@pytest.mark.postgres_only
def test_postgres_unreachable_is_503_then_recovers_by_itself(
    relayed_postgres: tuple[str, TcpRelay],
    issuer: DevIssuer,
    common_settings: CommonSettings,
    auth: TokenFactory,
) -> None:
    url, relay = relayed_postgres
    databases.emptied(url, Base.metadata).dispose()
    database = Database(url, SHORT_WAITS)
    with TestClient(build_consent_app(database, issuer, common_settings)) as client:
        SchoolBuilder(client, auth).set_up()
        relay.cut()
        read = client.get("/v1/classes", headers=auth("staff"))
        write = client.post(
            "/v1/classes", json={"name": "Year 3 Oak", "year_group": 3}, headers=auth("office")
        )
        for response in (read, write):
            assert_problem(response, 503, "database_unavailable")
            assert response.headers["Retry-After"].isdigit()
        relay.restore()
        created = client.post(
            "/v1/classes", json={"name": "Year 3 Oak", "year_group": 3}, headers=auth("office")
        )
        assert created.status_code == 201
        names = [c["name"] for c in client.get("/v1/classes", headers=auth("staff")).json()]
        assert names == ["Year 3 Oak"]
    database.dispose()
