"""Unit tests of the kit every service is built on: settings, errors, paging, request ids,
timestamps and the audit chain."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import DatabaseError, StatementError

from hallpass_kit.app import RequestIdMiddleware
from hallpass_kit.audit import AuditChain, append_only_triggers, entry_hash
from hallpass_kit.db import Database, UTCDateTime, new_metadata
from hallpass_kit.errors import BadRequest, install_error_handlers
from hallpass_kit.pagination import (
    Page,
    decode_cursor,
    decode_position,
    encode_cursor,
    encode_position,
)
from hallpass_kit.settings import CommonSettings, Environment, InsecureSettingsError
from hallpass_kit.tables import define_kit_tables
from tests.conftest import TokenFactory

PROBLEM_JSON = "application/problem+json"

# --- settings ----------------------------------------------------------------------------------

IDP = {
    "auth_issuer": "https://login.microsoftonline.com/school-tenant/v2.0",
    "auth_jwks_url": "https://login.microsoftonline.com/school-tenant/discovery/v2.0/keys",
}


def production(**values: Any) -> CommonSettings:
    return CommonSettings(env=Environment.production, **values)


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENV", "AUTH_ISSUER", "AUTH_JWKS_URL", "WEBHOOK_SECRET", "AUTH_AUDIENCE"):
        monkeypatch.delenv(f"HALLPASS_{name}", raising=False)


@pytest.mark.parametrize(
    "values",
    [
        {},  # no identity provider at all: the dev key would sign production tokens
        {"auth_jwks_url": IDP["auth_jwks_url"]},  # the provider's keys, but the dev issuer name
        {"auth_issuer": IDP["auth_issuer"]},  # an issuer name, but no keys: the dev key again
    ],
    ids=["no-idp", "dev-issuer-name", "no-jwks"],
)
def test_production_refuses_the_dev_issuer(values: dict[str, str]) -> None:
    with pytest.raises((InsecureSettingsError, ValidationError), match="dev signing key"):
        production(webhook_secret=secrets.token_urlsafe(32), **values)


@pytest.mark.parametrize("secret", ["changeme", "  CHANGEME  ", "secret", "", "x" * 31])
def test_production_refuses_a_placeholder_webhook_secret(secret: str) -> None:
    with pytest.raises((InsecureSettingsError, ValidationError), match="HALLPASS_WEBHOOK_SECRET"):
        production(webhook_secret=secret, **IDP)


def test_production_refuses_the_default_webhook_secret() -> None:
    with pytest.raises((InsecureSettingsError, ValidationError), match="placeholder"):
        production(**IDP)


def test_a_proper_production_configuration_is_accepted() -> None:
    secret = secrets.token_urlsafe(32)

    settings = production(webhook_secret=secret, **IDP)

    assert settings.env is Environment.production
    assert not settings.uses_dev_issuer
    assert settings.webhook_secret == secret


def test_development_may_use_the_dev_issuer_and_placeholders() -> None:
    settings = CommonSettings(env=Environment.development)
    assert settings.uses_dev_issuer
    assert settings.webhook_secret == "changeme"


# --- problem+json, paging and request ids, on a small app made with the kit ------------------


class Ask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    pupil_ids: list[uuid.UUID] = Field(min_length=1)


NAMES = ["Aoife", "Arlo", "Chloé", "Freya", "Isla", "Jack", "Kai", "Leo", "Noah"]


@pytest.fixture
def kit_client() -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/decisions")
    def decide(body: Ask) -> dict[str, int]:
        return {"pupils": len(body.pupil_ids)}

    @app.get("/v1/names")
    def names(
        cursor: Annotated[str | None, Query()] = None, limit: Annotated[int, Query(ge=1)] = 4
    ) -> Page[str]:
        after = str(decode_cursor(cursor, 1)[0]) if cursor is not None else ""
        rest = [n for n in NAMES if n > after]
        more = len(rest) > limit
        page = rest[:limit]
        return Page[str](items=page, next_cursor=encode_cursor(page[-1]) if more else None)

    @app.get("/v1/fails")
    def fails() -> None:
        raise BadRequest("Nope.", code="nope", rule="A1")

    app.add_middleware(RequestIdMiddleware)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_body_that_breaks_the_schema_is_a_422_problem_naming_where(
    kit_client: TestClient,
) -> None:
    response = kit_client.post(
        "/v1/decisions", json={"purpose": "website_photo", "pupil_ids": [], "extra": 1}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"] == "https://hallpass.school/problems/invalid_request"
    assert (problem["status"], problem["code"], problem["title"]) == (
        422,
        "invalid_request",
        "Invalid request",
    )
    assert problem["instance"] == "/v1/decisions"
    where = {p["where"]: p["code"] for p in problem["problems"]}
    assert where == {"body.pupil_ids": "too_short", "body.extra": "extra_forbidden"}
    assert all(p["detail"] for p in problem["problems"])


def test_a_query_parameter_out_of_range_is_named_as_query(kit_client: TestClient) -> None:
    response = kit_client.get("/v1/names", params={"limit": "0"})

    assert response.status_code == 422
    assert [(p["where"], p["code"]) for p in response.json()["problems"]] == [
        ("query.limit", "greater_than_equal")
    ]


def test_a_malformed_id_in_a_list_names_its_index(kit_client: TestClient) -> None:
    response = kit_client.post(
        "/v1/decisions", json={"purpose": "x", "pupil_ids": [str(uuid.uuid4()), "nope"]}
    )

    assert response.status_code == 422
    assert [p["where"] for p in response.json()["problems"]] == ["body.pupil_ids.1"]


def test_a_missing_body_is_a_422_problem_at_body(kit_client: TestClient) -> None:
    response = kit_client.post("/v1/decisions")

    assert response.status_code == 422
    assert [p["where"] for p in response.json()["problems"]] == ["body"]


def test_an_unknown_route_is_a_404_problem(kit_client: TestClient) -> None:
    response = kit_client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["status"], problem["code"], problem["instance"]) == (
        404,
        "not_found",
        "/v1/nothing-here",
    )


def test_a_wrong_method_is_a_405_problem_listing_the_allowed_ones(kit_client: TestClient) -> None:
    response = kit_client.delete("/v1/decisions")

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["allow"] == "POST"
    assert response.json()["code"] == "method_not_allowed"


def test_a_domain_error_keeps_its_code_and_rule(kit_client: TestClient) -> None:
    response = kit_client.get("/v1/fails")

    assert response.status_code == 400
    assert response.json()["code"] == "nope"
    assert response.json()["rule"] == "A1"
    assert "www-authenticate" not in response.headers


def test_a_cursor_survives_the_round_trip() -> None:
    pupil = uuid.uuid4()
    cursor = encode_cursor("O'Brien", "Emily-Rose", pupil, 3)

    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor, 4) == ["O'Brien", "Emily-Rose", str(pupil), 3]


def test_paging_with_the_cursor_visits_every_item_once(kit_client: TestClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(NAMES)):
        params = {"cursor": cursor} if cursor else {}
        page = kit_client.get("/v1/names", params=params).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == NAMES


@pytest.mark.parametrize(
    "cursor",
    ["not base64 at all!", "%%%", encode_cursor("a", "b"), "bnVsbA", "e30", "////"],
    ids=["garbage", "symbols", "wrong-arity", "json-null", "json-object", "bad-bytes"],
)
def test_a_cursor_the_api_did_not_issue_is_a_400_invalid_cursor(
    cursor: str, kit_client: TestClient
) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_cursor(cursor, 1)
    assert refused.value.code == "invalid_cursor"

    response = kit_client.get("/v1/names", params={"cursor": cursor})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "invalid_cursor"


def test_a_sane_request_id_is_kept(kit_client: TestClient) -> None:
    response = kit_client.get("/v1/nothing-here", headers={"X-Request-ID": "cms-2026.11_04-a"})

    assert response.headers["x-request-id"] == "cms-2026.11_04-a"
    assert response.json()["request_id"] == "cms-2026.11_04-a"


@pytest.mark.parametrize(
    "incoming",
    ["has spaces", "x" * 101, "<script>alert(1)</script>", "a\tb", "", "id;rm -rf"],
    ids=["spaces", "too-long", "markup", "tab", "empty", "semicolon"],
)
def test_an_insane_request_id_is_replaced(incoming: str, kit_client: TestClient) -> None:
    response = kit_client.get("/v1/nothing-here", headers={"X-Request-ID": incoming})

    replaced = response.headers["x-request-id"]
    assert replaced != incoming
    assert len(replaced) == 32
    assert int(replaced, 16) >= 0
    assert response.json()["request_id"] == replaced  # the app saw the replacement too


def test_a_request_without_an_id_gets_a_fresh_one_each_time(kit_client: TestClient) -> None:
    first = kit_client.get("/v1/names").headers["x-request-id"]
    second = kit_client.get("/v1/names").headers["x-request-id"]

    assert first != second
    assert len(first) == len(second) == 32


# --- timestamps --------------------------------------------------------------------------------


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'kit.db'}")
    yield database
    database.dispose()


def test_utc_datetime_round_trip_keeps_the_zone_on_sqlite(sqlite: Database) -> None:
    metadata = MetaData()
    table = Table(
        "moment", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
    )
    metadata.create_all(sqlite.engine)
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    sent = dt.datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=india)

    with sqlite.session() as session:
        session.execute(insert(table).values(id=1, at=sent))
        session.execute(insert(table).values(id=2, at=None))
    with sqlite.session() as session:
        read = session.execute(select(table.c.at).where(table.c.id == 1)).scalar_one()
        missing = session.execute(select(table.c.at).where(table.c.id == 2)).scalar_one()
        stored = session.execute(text("SELECT at FROM moment WHERE id = 1")).scalar_one()

    assert read == sent
    assert read.tzinfo is not None
    assert read.utcoffset() == dt.timedelta(0)
    assert read.isoformat() == "2026-03-28T20:00:15.123456+00:00"
    assert missing is None
    assert str(stored).startswith("2026-03-28 20:00:15.123456")  # stored as UTC


def test_utc_datetime_refuses_a_naive_datetime(sqlite: Database) -> None:
    metadata = MetaData()
    table = Table(
        "moment", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
    )
    metadata.create_all(sqlite.engine)

    with pytest.raises(StatementError, match="naive datetime"), sqlite.session() as session:
        session.execute(insert(table).values(id=1, at=dt.datetime(2026, 1, 1)))  # noqa: DTZ001


# --- the audit chain ---------------------------------------------------------------------------


@pytest.fixture
def chain(sqlite: Database) -> AuditChain:
    metadata = new_metadata()
    tables = define_kit_tables(metadata)
    metadata.create_all(sqlite.engine)
    with sqlite.engine.begin() as connection:
        for statement in append_only_triggers("sqlite"):
            connection.exec_driver_sql(statement)
    return AuditChain(tables.audit_entry)


def _append(database: Database, chain: AuditChain, count: int) -> None:
    for n in range(count):
        with database.session() as session:
            chain.append(
                session,
                actor="office@oakfield",
                school="oakfield",
                action="consent.granted",
                target=f"record-{n}",
                details={"n": n, "name": "Siobhán"},
            )


def test_an_untouched_chain_verifies(sqlite: Database, chain: AuditChain) -> None:
    _append(sqlite, chain, 5)

    with sqlite.session() as session:
        verdict = chain.verify(session, batch_size=2)  # crosses batch boundaries

    assert (verdict.intact, verdict.entries, verdict.first_bad_seq, verdict.reason) == (
        True,
        5,
        None,
        None,
    )


def test_the_database_refuses_to_delete_or_edit_an_entry(
    sqlite: Database, chain: AuditChain
) -> None:
    _append(sqlite, chain, 2)

    with pytest.raises(DatabaseError, match="append-only"), sqlite.session() as session:
        session.execute(text("DELETE FROM audit_entry WHERE seq = 1"))
    with pytest.raises(DatabaseError, match="append-only"), sqlite.session() as session:
        session.execute(text("UPDATE audit_entry SET actor = 'someone' WHERE seq = 1"))
    with sqlite.session() as session:
        assert chain.verify(session).intact


def test_verify_names_a_removed_entry(sqlite: Database, chain: AuditChain) -> None:
    _append(sqlite, chain, 5)
    with sqlite.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_entry_no_delete")
        connection.exec_driver_sql("DELETE FROM audit_entry WHERE seq = 3")

    with sqlite.session() as session:
        verdict = chain.verify(session)

    assert verdict.intact is False
    assert verdict.first_bad_seq == 3
    assert verdict.reason == "entry 3 is missing"
    assert verdict.entries == 2


def test_verify_names_an_edited_entry(sqlite: Database, chain: AuditChain) -> None:
    _append(sqlite, chain, 4)
    with sqlite.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_entry_no_update")
        connection.exec_driver_sql("UPDATE audit_entry SET outcome = 'refused' WHERE seq = 2")

    with sqlite.session() as session:
        verdict = chain.verify(session)

    assert (verdict.intact, verdict.first_bad_seq, verdict.reason) == (
        False,
        2,
        "content differs from its hash",
    )


def test_verify_names_the_entry_after_one_rewritten_with_a_fresh_hash(
    sqlite: Database, chain: AuditChain
) -> None:
    """Someone who knows the hash recipe can rewrite an entry and its own hash; the next entry
    still points at the old hash."""
    _append(sqlite, chain, 3)
    t = chain.table
    with sqlite.session() as session:
        second = session.execute(select(t).where(t.c.seq == 2)).one()
    forged = entry_hash(
        seq=2,
        recorded_at=second.recorded_at,
        actor=second.actor,
        school=second.school,
        action=second.action,
        target=second.target,
        outcome="refused",
        details=second.details,
        prev_hash=second.prev_hash,
    )
    with sqlite.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_entry_no_update")
        connection.execute(t.update().where(t.c.seq == 2).values(outcome="refused", hash=forged))

    with sqlite.session() as session:
        verdict = chain.verify(session)

    assert (verdict.intact, verdict.first_bad_seq, verdict.reason) == (
        False,
        3,
        "does not follow the entry before it",
    )


def test_a_query_parameter_given_twice_is_refused_where_one_value_is_taken(
    client: TestClient, auth: TokenFactory
) -> None:
    response = client.get("/v1/renewals?within_days=7&within_days=365", headers=auth("office"))

    assert response.status_code == 422
    assert response.json()["code"] == "repeated_query_parameter"


def test_a_query_parameter_given_once_is_taken(client: TestClient, auth: TokenFactory) -> None:
    assert client.get("/v1/renewals?within_days=7", headers=auth("office")).status_code == 200


def _fail_half_way(database: Database) -> None:
    with database.session() as session:
        session.execute(text("INSERT INTO turn_probe VALUES (0)"))
        raise RuntimeError("the request failed")


def _commits_from_another_thread(database: Database) -> bool:
    done = threading.Event()

    def write() -> None:
        with database.session() as session:
            session.execute(text("INSERT INTO turn_probe VALUES (1)"))
        done.set()

    worker = threading.Thread(target=write)
    worker.start()
    worker.join(20)
    return done.is_set()


@pytest.mark.parametrize("ending", ["commit", "error", "abandoned"])
def test_sqlite_writer_turn_is_handed_on_however_a_transaction_ends(
    tmp_path: Path, ending: str
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'turn.db'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE turn_probe (n INTEGER)"))

    if ending == "commit":
        with database.session() as session:
            session.execute(text("INSERT INTO turn_probe VALUES (0)"))
    elif ending == "error":
        with pytest.raises(RuntimeError):
            _fail_half_way(database)
    else:
        session = database.sessionmaker()
        session.execute(text("INSERT INTO turn_probe VALUES (0)"))
        session.close()  # never committed: the pool rolls it back on return

    assert _commits_from_another_thread(database)
    with database.session() as session:
        kept = session.execute(text("SELECT count(*) FROM turn_probe WHERE n = 0")).scalar()
    assert kept == (1 if ending == "commit" else 0)
    database.dispose()


def test_a_newest_first_position_survives_its_cursor() -> None:
    position = (dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC), uuid.uuid4())

    assert decode_position(encode_position(*position)) == position
    assert decode_position(None) is None


@pytest.mark.parametrize(
    "values",
    [("2026-11-21T09:30:00", str(uuid.UUID(int=1))), ("yesterday", str(uuid.UUID(int=1)))],
)
def test_a_position_cursor_the_api_never_issued_is_refused(values: tuple[str, str]) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_position(encode_cursor(*values))
    assert refused.value.code == "invalid_cursor"
