"""Concurrent writers on PostgreSQL: two carers answering at once (C11) and a crowd of audit
appenders. SQLite serialises every writer, so only PostgreSQL can show these races."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hallpass_consent.models import ConsentRecord, kit_tables
from hallpass_kit.audit import AuditChain
from hallpass_kit.db import Database
from tests.conftest import TokenFactory
from tests.consent.builders import Family, SchoolBuilder
from tests.databases import POSTGRES_URL

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(POSTGRES_URL is None, reason="HALLPASS_TEST_POSTGRES_URL is not set"),
    # The shared consent_db fixture, on its PostgreSQL side only.
    pytest.mark.parametrize("consent_db", ["postgresql"], indirect=True),
]

ROUNDS = 20
APPENDERS = 8
APPENDS_EACH = 25
T = TypeVar("T")


def run_together(*jobs: Callable[[], T]) -> list[T]:
    """Run every job in its own thread; all start once all are ready."""
    ready = threading.Barrier(len(jobs), timeout=30)

    def start(job: Callable[[], T]) -> T:
        ready.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(start, job) for job in jobs]
        return [future.result(timeout=60) for future in futures]


@pytest.fixture
def clients(consent_app: FastAPI) -> Iterator[tuple[TestClient, TestClient]]:
    """Two clients of one app: one per carer, as two phones would be."""
    with TestClient(consent_app) as first, TestClient(consent_app) as second:
        yield first, second


def test_two_carers_answering_at_once_leave_the_refusal_in_force_c11(
    client: TestClient,
    clients: tuple[TestClient, TestClient],
    auth: TokenFactory,
    consent_db: Database,
) -> None:
    school = SchoolBuilder(client, auth)
    school.set_up()
    families: list[Family] = [
        school.family(f"Pupil{n:02d}", f"Family{n:02d}", carers=2) for n in range(ROUNDS)
    ]
    head = auth("head")
    entries_before = client.get("/v1/audit:verify", headers=head).json()["entries"]

    def answer(
        http: TestClient, guardian: str, pupil: str, decision: str
    ) -> Callable[[], dict[str, Any]]:
        def job() -> dict[str, Any]:
            response = http.post(
                f"/v1/me/children/{pupil}/consents",
                json={"purpose": "website_photo", "decision": decision},
                headers=auth("parent", guardian=guardian, sub=f"carer-{guardian}"),
            )
            assert response.status_code == 201, response.text
            record: dict[str, Any] = response.json()
            return record

        return job

    answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for family in families:
        granting, refusing = family.guardian_ids
        grant, refusal = run_together(
            answer(clients[0], granting, family.pupil_id, "granted"),
            answer(clients[1], refusing, family.pupil_id, "refused"),
        )
        answers[family.pupil_id] = (grant, refusal)

    # C11: whoever came second, the refusal is what applies, and it names its record.
    decided = school.decide("website_photo", *answers)
    for pupil_id, (grant, refusal) in answers.items():
        assert decided[pupil_id]["allowed"] is False, decided[pupil_id]
        assert decided[pupil_id]["reason"] == "refused"
        assert decided[pupil_id]["record_id"] == refusal["id"]
        assert (grant["decision"], refusal["decision"]) == ("granted", "refused")

    # Every answer is one record, kept once, in the pupil's history.
    office = auth("office")
    for family in families:
        history = client.get(f"/v1/pupils/{family.pupil_id}/consents", headers=office).json()
        grant, refusal = answers[family.pupil_id]
        assert sorted(r["id"] for r in history["history"]) == sorted([grant["id"], refusal["id"]])
        assert {(r["guardian_id"], r["decision"]) for r in history["history"]} == {
            (family.guardian_ids[0], "granted"),
            (family.guardian_ids[1], "refused"),
        }
    with consent_db.session() as session:
        stored = session.execute(select(func.count()).select_from(ConsentRecord)).scalar_one()
        distinct = session.execute(select(func.count(func.distinct(ConsentRecord.id)))).scalar_one()
    assert stored == distinct == 2 * ROUNDS

    # One audit entry per answer, and the chain still holds together.
    verdict = client.get("/v1/audit:verify", headers=head).json()
    assert (verdict["intact"], verdict["entries"], verdict["first_bad_seq"], verdict["reason"]) == (
        True,
        entries_before + 2 * ROUNDS,
        None,
        None,
    )


def test_concurrent_audit_appends_make_one_gapless_chain(consent_db: Database) -> None:
    chain = AuditChain(kit_tables.audit_entry)

    def appender(worker: int) -> Callable[[], list[int]]:
        def job() -> list[int]:
            seqs = []
            for n in range(APPENDS_EACH):
                with consent_db.session() as session:
                    seqs.append(
                        chain.append(
                            session,
                            actor=f"worker-{worker}",
                            school="oakfield",
                            action="test.appended",
                            target=f"{worker}:{n}",
                            details={"worker": worker, "n": n},
                        )
                    )
            return seqs

        return job

    handed_out = run_together(*(appender(w) for w in range(APPENDERS)))

    total = APPENDERS * APPENDS_EACH
    assert sorted(s for seqs in handed_out for s in seqs) == list(range(1, total + 1))
    for seqs in handed_out:
        assert seqs == sorted(seqs)  # each writer's own appends stay in its order
    t = kit_tables.audit_entry
    with consent_db.session() as session:
        stored = session.execute(select(t.c.seq, t.c.target).order_by(t.c.seq)).all()
        verdict = chain.verify(session, batch_size=37)
    assert [row.seq for row in stored] == list(range(1, total + 1))
    assert sorted(row.target for row in stored) == sorted(
        f"{w}:{n}" for w in range(APPENDERS) for n in range(APPENDS_EACH)
    )
    assert (verdict.intact, verdict.entries, verdict.first_bad_seq) == (True, total, None)
