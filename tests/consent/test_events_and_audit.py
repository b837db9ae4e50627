"""consent.changed through the outbox and its dispatcher; the hash-chained audit trail."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from hallpass_consent.consents.service import sweep_expired
from hallpass_consent.models import kit_tables
from hallpass_kit.db import Database, new_metadata
from hallpass_kit.outbox import Dispatcher, Event, mark_consumed
from hallpass_kit.tables import define_kit_tables
from tests.conftest import TokenFactory
from tests.consent.builders import (
    SchoolBuilder,
    SchoolRecords,
    assert_problem,
    parse_time,
    restrict,
)

SECRET = "Subject of a non-molestation order; must not be locatable"


@pytest.fixture
def dispatcher(consent_app: FastAPI) -> Dispatcher:
    found: Dispatcher = consent_app.state.hallpass.dispatcher
    return found


def outbox(database: Database) -> list[dict[str, Any]]:
    """Every stored consent.changed event, oldest first, as plain rows."""
    t = kit_tables.outbox_event
    with database.session() as session:
        rows = (
            session.execute(
                select(t).where(t.c.type == "consent.changed").order_by(t.c.occurred_at)
            )
            .mappings()
            .all()
        )
        return [dict(row) for row in rows]


def payloads(database: Database) -> list[dict[str, Any]]:
    return [row["payload"] for row in outbox(database)]


# --- consent.changed in the outbox -------------------------------------------------------------


def test_grant_announces_consent_changed_c5(consent_db: Database, school: SchoolBuilder) -> None:
    family = school.family()

    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    [event] = outbox(consent_db)
    assert event["school"] == "oakfield"
    assert event["dispatched_at"] is None
    assert event["payload"] == {
        "pupil_id": family.pupil_id,
        "purpose": "website_photo",
        "allowed": True,
        "state": "granted",
        "record_id": grant["id"],
        "cause": "consent_recorded",
    }


def test_second_grant_by_another_carer_announces_nothing(
    consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family(carers=2)
    school.consent(family.pupil_id, family.guardian_ids[0])
    assert len(outbox(consent_db)) == 1

    school.consent(family.pupil_id, family.guardian_ids[1])

    assert len(outbox(consent_db)) == 1


def test_refusal_by_the_other_carer_announces_the_change_c11(
    consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family(carers=2)
    school.consent(family.pupil_id, family.guardian_ids[0])

    refusal = school.consent(family.pupil_id, family.guardian_ids[1], decision="refused")

    latest = payloads(consent_db)[-1]
    assert (latest["allowed"], latest["state"], latest["record_id"]) == (
        False,
        "refused",
        refusal["id"],
    )


def test_restriction_announces_restricted_for_every_consent_purpose_c12(
    client: TestClient, auth: TokenFactory, consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    before = len(outbox(consent_db))
    consent_purposes = {
        p["code"]
        for p in client.get("/v1/purposes", headers=auth("staff")).json()
        if p["requires_consent"]
    }

    restrict(client, auth, family.pupil_id, reason=SECRET)

    announced = payloads(consent_db)[before:]
    assert sorted(p["purpose"] for p in announced) == sorted(consent_purposes)
    for payload in announced:
        assert (payload["pupil_id"], payload["allowed"], payload["state"]) == (
            family.pupil_id,
            False,
            "restricted",
        )
        assert SECRET not in str(payload)


def test_refused_request_announces_nothing(
    client: TestClient, auth: TokenFactory, consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family()

    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": str(uuid.uuid4()),
            "method": "paper",
        },
        headers=auth("office"),
    )

    assert_problem(response, 422, "not_a_carer")
    assert outbox(consent_db) == []


# --- the dispatcher ----------------------------------------------------------------------------


def test_dispatcher_delivers_each_event_once(
    dispatcher: Dispatcher, consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    school.consent(family.pupil_id, family.guardian_ids[0], purpose="livestream")
    received: list[Event] = []
    dispatcher.subscribe("consent.changed", "media", received.append)

    first = dispatcher.dispatch_pending()
    second = dispatcher.dispatch_pending()

    assert (first, second) == (2, 0)
    assert sorted(e.payload["purpose"] for e in received) == ["livestream", "website_photo"]
    assert all(row["dispatched_at"] is not None for row in outbox(consent_db))
    assert {e.id for e in received} == {row["id"] for row in outbox(consent_db)}


def test_failing_subscriber_is_retried_later_until_it_succeeds(
    dispatcher: Dispatcher, consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    calls: list[uuid.UUID] = []

    def flaky(event: Event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise ConnectionError("media service unreachable")

    dispatcher.subscribe("consent.changed", "media", flaky)

    assert dispatcher.dispatch_pending() == 0
    [failed] = outbox(consent_db)
    assert (failed["attempts"], failed["dispatched_at"]) == (1, None)
    assert "media service unreachable" in failed["last_error"]
    assert failed["next_attempt_at"] > failed["occurred_at"]
    assert dispatcher.dispatch_pending() == 0  # not due yet: nothing is hammered
    assert len(calls) == 1

    assert dispatcher.dispatch_pending(now=failed["next_attempt_at"]) == 1

    [delivered] = outbox(consent_db)
    assert (delivered["attempts"], delivered["last_error"]) == (2, None)
    assert delivered["dispatched_at"] is not None
    assert calls == [failed["id"], failed["id"]]


@pytest.fixture
def consumer_db(tmp_path: Path) -> Iterator[tuple[Database, Any]]:
    """A consuming service's own database, holding its record of events already handled."""
    metadata = new_metadata()
    tables = define_kit_tables(metadata)
    database = Database(f"sqlite:///{tmp_path / 'media.db'}")
    metadata.create_all(database.engine)
    yield database, tables.consumed_event
    database.dispose()


def test_redelivered_event_is_consumed_once(
    dispatcher: Dispatcher, school: SchoolBuilder, consumer_db: tuple[Database, Any]
) -> None:
    database, consumed = consumer_db
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    takedowns: list[uuid.UUID] = []
    comms_calls = 0

    def media(event: Event) -> None:
        with database.session() as session:
            if mark_consumed(session, consumed, consumer="media", event_id=event.id):
                takedowns.append(event.id)

    def comms(event: Event) -> None:
        nonlocal comms_calls
        comms_calls += 1
        if comms_calls == 1:
            raise TimeoutError("mail relay timed out")

    dispatcher.subscribe("consent.changed", "media", media)
    dispatcher.subscribe("consent.changed", "comms", comms)

    dispatcher.dispatch_pending()
    dispatcher.dispatch_pending(now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))

    assert comms_calls == 2  # the event was delivered twice...
    assert len(takedowns) == 1  # ...and acted on once


def test_expiry_sweep_announces_a_lapsed_grant_once(
    client: TestClient, auth: TokenFactory, consent_db: Database, school: SchoolBuilder
) -> None:
    family = school.family()
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    grant = school.consent(family.pupil_id, family.guardian_ids[0], valid_until=ends.isoformat())
    before = len(outbox(consent_db))
    # The sweep is handed the time, as the app hands it its clock: a day on, the grant has lapsed.
    after_end = ends + dt.timedelta(minutes=1)

    with consent_db.session() as session:
        first = sweep_expired(session, now=after_end)
    with consent_db.session() as session:
        second = sweep_expired(session, now=after_end)

    assert (first, second) == (1, 0)
    announced = payloads(consent_db)[before:]
    assert announced == [
        {
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "allowed": False,
            "state": "expired",
            "record_id": grant["id"],
            "cause": "expired",
        }
    ]
    verdict = school.decide("website_photo", family.pupil_id, at=after_end.isoformat())
    assert verdict[family.pupil_id]["reason"] == "expired"


# --- audit -------------------------------------------------------------------------------------


def test_every_write_is_in_the_audit_trail_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    oak = school.school_class()
    family = school.family(class_id=oak)
    grant = school.consent(family.pupil_id, family.guardian_ids[0])
    withdrawal = client.post(
        f"/v1/consents/{grant['id']}:withdraw", json={"method": "paper"}, headers=auth("office")
    ).json()
    restrict(client, auth, family.pupil_id)

    trail = records.audit()

    assert [(e["action"], e["actor"], e["outcome"]) for e in reversed(trail)] == [
        ("school.created", "head@oakfield", "ok"),
        ("class.created", "office@oakfield", "ok"),
        ("pupil.created", "office@oakfield", "ok"),
        ("guardian.created", "office@oakfield", "ok"),
        ("consent.granted", "office@oakfield", "ok"),
        ("consent.withdrawn", "office@oakfield", "ok"),
        ("restriction.set", "dsl@oakfield", "ok"),
    ]
    targets = {e["action"]: e["target"] for e in trail}
    assert targets["consent.granted"] == grant["id"]
    assert targets["consent.withdrawn"] == withdrawal["id"]
    assert targets["pupil.created"] == family.pupil_id


def test_staff_reading_the_audit_trail_is_refused_and_audited_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    response = client.get("/v1/audit", headers=auth("staff"))

    assert_problem(response, 403, "forbidden")
    latest = records.audit()[0]
    assert (latest["actor"], latest["outcome"], latest["target"]) == (
        "staff@oakfield",
        "refused",
        "/v1/audit",
    )
    assert latest["action"].startswith("refused:")


def test_parent_asking_for_another_familys_child_is_refused_and_audited_a2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    ours = school.family()
    theirs = school.family("Bea", "Lind")

    response = client.get(
        f"/v1/me/children/{theirs.pupil_id}",
        headers=auth("parent", guardian=ours.guardian_ids[0], sub="grace@example.org"),
    )

    assert_problem(response, 404, "not_found")
    assert "Bea" not in response.text
    latest = records.audit()[0]
    assert (latest["actor"], latest["action"], latest["target"], latest["outcome"]) == (
        "grace@example.org",
        "refused:me.child",
        theirs.pupil_id,
        "refused",
    )


def test_audit_chain_verifies_intact(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.get("/v1/audit:verify", headers=auth("dsl"))

    assert response.status_code == 200
    assert response.json() == {
        "intact": True,
        "entries": len(records.audit()),
        "first_bad_seq": None,
        "reason": None,
        "finding": None,
        "checkpoints": 0,
        "latest_checkpoint_seq": None,
        "unsealed": 0,
    }


def audit_seq(records: SchoolRecords, action: str) -> int:
    return int(records.audit(action=action)[0]["seq"])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET details = '{}' WHERE seq = :seq",
        "DELETE FROM audit_entry WHERE seq = :seq",
    ],
)
def test_database_refuses_to_edit_or_delete_audit_entries_a1(
    consent_db: Database, school: SchoolBuilder, records: SchoolRecords, statement: str
) -> None:
    school.pupil()
    seq = audit_seq(records, "pupil.created")

    with pytest.raises(DBAPIError, match="append-only"), consent_db.engine.begin() as connection:
        connection.execute(text(statement), {"seq": seq})

    assert records.audit_entries() == 2


def test_tampered_audit_entry_breaks_the_chain_at_that_entry_a1(
    client: TestClient,
    auth: TokenFactory,
    consent_db: Database,
    school: SchoolBuilder,
    records: SchoolRecords,
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    seq = audit_seq(records, "pupil.created")
    tamper = text("UPDATE audit_entry SET details = :details WHERE seq = :seq")
    forged = {"details": '{"mis_id":"FORGED"}', "seq": seq}

    with consent_db.engine.begin() as connection:
        # Only someone with the database's owner rights can get past the trigger.
        if consent_db.dialect == "sqlite":
            connection.execute(text("DROP TRIGGER audit_entry_no_update"))
            connection.execute(tamper, forged)
        else:
            connection.execute(
                text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_no_update")
            )
            connection.execute(tamper, forged)
            connection.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_no_update"))

    response = client.get("/v1/audit:verify", headers=auth("head"))

    assert response.status_code == 200
    report = response.json()
    assert (report["intact"], report["first_bad_seq"], report["entries"]) == (False, seq, seq - 1)
    assert report["reason"] == "content differs from its hash"


def test_recorded_times_are_in_order_along_the_chain(
    school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])

    trail = list(reversed(records.audit()))

    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    times = [parse_time(e["recorded_at"]) for e in trail]
    assert times == sorted(times)


def test_switching_a_purpose_back_to_opt_in_announces_pupils_who_lose_it_c2(
    client: TestClient, auth: TokenFactory, consent_db: Database, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()
    client.patch(
        "/v1/purposes/print_publication", json={"basis": "objection"}, headers=auth("head")
    )
    assert school.decide("print_publication", pupil_id)[pupil_id]["allowed"] is True

    response = client.patch(
        "/v1/purposes/print_publication", json={"basis": "opt_in"}, headers=auth("head")
    )

    assert response.status_code == 200, response.text
    assert school.decide("print_publication", pupil_id)[pupil_id]["reason"] == "no_record"
    assert [(p["pupil_id"], p["purpose"], p["allowed"], p["state"]) for p in payloads(consent_db)][
        -1:
    ] == [(pupil_id, "print_publication", False, "no_record")]
