"""Background CSV imports (POST /v1/imports, GET /v1/imports/{id}): the same importer, all rows
or none, with progress the office's progress bar reads while it runs.

The job is run step by step: ``dispatch_pending`` hands the queued import to the service's own
runner, or a test drives an ``ImportRunner`` and watches each committed progress write."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from hallpass_consent.imports.service import ImportRunner
from hallpass_consent.imports.worker import ImportWorker
from hallpass_consent.models import PupilImport
from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Dispatcher
from tests.conftest import OTHER_SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem
from tests.consent.test_import import AMARA, LENA, TOBI, csv_bytes, pupils_by_mis

SUMMARY_OF_THREE = {
    "rows": 3,
    "created": 3,
    "updated": 0,
    "guardians_created": 2,
    "links_created": 3,
    "classes_created": 2,
    "dry_run": False,
}


@pytest.fixture
def dispatcher(consent_app: FastAPI) -> Dispatcher:
    found: Dispatcher = consent_app.state.hallpass.dispatcher
    return found


def queue(
    client: TestClient,
    auth: TokenFactory,
    data: bytes,
    *,
    dry_run: bool = False,
    role: str = "office",
    school: str | None = None,
    key: str | None = None,
) -> Any:
    headers = {**(auth(role, school=school) if school else auth(role)), "Content-Type": "text/csv"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        "/v1/imports",
        content=data,
        params={"dry_run": "true"} if dry_run else {},
        headers=headers,
    )


def queued(client: TestClient, auth: TokenFactory, data: bytes, **options: Any) -> str:
    response = queue(client, auth, data, **options)
    assert response.status_code == 202, response.text
    assert response.headers["location"].endswith(f"/v1/imports/{response.json()['id']}")
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


def read(client: TestClient, auth: TokenFactory, import_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/imports/{import_id}", headers=auth("office"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_file(database: Database, import_id: str) -> bytes | None:
    with database.session() as session:
        content = session.scalars(
            select(PupilImport.content).where(PupilImport.id == uuid.UUID(import_id))
        ).one()
    return content


def test_good_file_ends_done_with_its_summary_and_every_row_counted(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    dispatcher: Dispatcher,
    consent_db: Database,
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA, TOBI, LENA]))
    assert pupils_by_mis(client, auth) == {}  # queued, not yet imported

    dispatcher.dispatch_pending()

    finished = read(client, auth, import_id)
    assert finished["status"] == "done"
    assert finished["summary"] == SUMMARY_OF_THREE
    assert (finished["stage"], finished["done"], finished["total"]) == ("finished", 3, 3)
    assert finished["problems"] == []
    assert set(pupils_by_mis(client, auth)) == {"UPN001", "UPN002", "UPN003"}
    assert stored_file(consent_db, import_id) is None  # carers' details are not kept


def test_background_import_is_audited_like_the_request_import(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, dispatcher: Dispatcher
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA]))

    dispatcher.dispatch_pending()

    records = SchoolRecords(client, auth)
    assert records.audit(action="pupils.import_queued")[0]["actor"] == "office@oakfield"
    entry = records.audit(action="pupils.imported")[0]
    assert (entry["actor"], entry["target"]) == ("office@oakfield", f"import:{import_id}")
    assert entry["details"]["created"] == 1


def test_bad_file_fails_with_every_bad_row_and_writes_nothing(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    dispatcher: Dispatcher,
    consent_db: Database,
) -> None:
    bad = [AMARA, {**TOBI, "year_group": "twelve"}, {**LENA, "given_name": ""}]
    import_id = queued(client, auth, csv_bytes(bad))

    dispatcher.dispatch_pending()

    failed = read(client, auth, import_id)
    assert failed["status"] == "failed"
    assert failed["summary"] is None
    assert sorted(p["where"] for p in failed["problems"]) == [
        "row 3, column year_group",
        "row 4, column given_name",
    ]
    assert pupils_by_mis(client, auth) == {}
    assert client.get("/v1/classes", headers=auth("office")).json() == []
    assert stored_file(consent_db, import_id) is None


def test_progress_is_seen_moving_while_the_rows_are_checked(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    rows = [
        {**LENA, "mis_id": f"UPN{n:04d}", "given_name": f"Pupil{chr(65 + n % 26)}"}
        for n in range(120)
    ]
    import_id = queued(client, auth, csv_bytes(rows))
    seen: list[tuple[str, int, int]] = []

    def look() -> None:
        now = read(client, auth, import_id)
        assert now["status"] == "running"
        seen.append((now["stage"], now["done"], now["total"]))

    ImportRunner(consent_db, max_rows=10_000, clock=utcnow, observe=look).run(uuid.UUID(import_id))

    checking = [done for stage, done, total in seen if stage == "checking" and total == 120]
    assert len(checking) > 2
    assert checking == sorted(checking)
    assert checking[-1] == 120
    assert ("importing", 0, 120) in seen
    assert read(client, auth, import_id)["summary"]["rows"] == 120


def test_an_import_runs_in_its_own_lane_ahead_of_waiting_events(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    consent_db: Database,
    dispatcher: Dispatcher,
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])  # a consent.changed now waits
    import_id = queued(client, auth, csv_bytes([AMARA]))
    lane = ImportWorker(
        consent_db, ImportRunner(consent_db, max_rows=100, clock=utcnow), clock=utcnow
    )

    assert lane.run_pending() == 1

    assert read(client, auth, import_id)["status"] == "done"
    assert lane.run_pending() == 0  # done once, not again
    assert dispatcher.dispatch_pending() >= 1  # the event still waited for the dispatcher
    assert read(client, auth, import_id)["summary"]["created"] == 1


def test_dry_run_reports_what_would_change_and_writes_nothing(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, dispatcher: Dispatcher
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA, TOBI, LENA]), dry_run=True)

    dispatcher.dispatch_pending()

    finished = read(client, auth, import_id)
    assert finished["status"] == "done"
    assert finished["dry_run"] is True
    assert finished["summary"] == {**SUMMARY_OF_THREE, "dry_run": True}
    assert pupils_by_mis(client, auth) == {}


def test_a_killed_import_ends_failed_and_never_stays_running(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    dispatcher: Dispatcher,
    consent_db: Database,
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA, TOBI, LENA]))
    lane = ImportWorker(
        consent_db, ImportRunner(consent_db, max_rows=100, clock=utcnow), clock=utcnow
    )
    claim = lane.jobs.claim(1)  # the worker takes the job...

    class Killed(BaseException):
        pass

    def die() -> None:
        raise Killed

    with pytest.raises(Killed):  # ...and dies part way, leaving its claim's lease behind
        ImportRunner(consent_db, max_rows=10_000, clock=utcnow, observe=die).run(
            uuid.UUID(import_id)
        )
    assert read(client, auth, import_id)["status"] == "running"

    # Its lease lapses; the next claim, by either lane, ends the import.
    dispatcher.dispatch_pending(now=claim[0].claimed_until + dt.timedelta(seconds=1))

    failed = read(client, auth, import_id)
    assert failed["status"] == "failed"
    assert [p["code"] for p in failed["problems"]] == ["import_interrupted"]
    assert pupils_by_mis(client, auth) == {}
    assert stored_file(consent_db, import_id) is None


def test_an_import_is_seen_only_in_its_own_school(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA]))

    response = client.get(f"/v1/imports/{import_id}", headers=auth("office", school=OTHER_SCHOOL))

    assert_problem(response, 404, "unknown_import")


@pytest.mark.parametrize("role", ["staff", "dsl", "social_media", "pastoral"])
def test_only_the_office_and_leadership_import(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, role: str
) -> None:
    import_id = queued(client, auth, csv_bytes([AMARA]))

    assert queue(client, auth, csv_bytes([AMARA]), role=role).status_code == 403
    assert client.get(f"/v1/imports/{import_id}", headers=auth(role)).status_code == 403


def test_a_retried_upload_with_the_same_key_queues_one_import(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    key = str(uuid.uuid4())
    first = queue(client, auth, csv_bytes([AMARA]), key=key)
    second = queue(client, auth, csv_bytes([AMARA]), key=key)

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]


def test_a_file_that_is_not_csv_is_refused_and_nothing_queued(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    response = client.post(
        "/v1/imports",
        content=b"{}",
        headers={**auth("office"), "Content-Type": "application/json"},
    )

    assert_problem(response, 415, "unsupported_media_type")
    with consent_db.session() as session:
        assert session.scalars(select(PupilImport)).all() == []
