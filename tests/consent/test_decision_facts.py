"""What one decision batch reads (``repository.decision_facts``): the same facts as the ORM
readers (``standings``, ``record_views``), the school's roster version read with them, and the
edges of the one statement: pupils not on roll, with no records, restricted, from another
school, asked twice, a thousand at once."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import update

from hallpass_consent.consents import repository
from hallpass_consent.models import Pupil
from hallpass_kit.db import Database
from tests.conftest import OTHER_SCHOOL, SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder, archive, restrict


def _facts(
    database: Database,
    pupil_ids: list[str] | list[uuid.UUID],
    *,
    purpose: str = "website_photo",
    school: str = SCHOOL,
    at: dt.datetime | None = None,
) -> repository.DecisionFacts:
    with database.reading() as connection:
        return repository.decision_facts(
            connection,
            school,
            purpose,
            [uuid.UUID(str(p)) for p in pupil_ids],
            at or dt.datetime.now(dt.UTC),
        )


def _roster(client: TestClient, auth: TokenFactory) -> tuple[int, str]:
    response = client.get("/v1/roster", headers=auth("office"))
    assert response.status_code == 200, response.text
    return int(response.json()["version"]), response.headers["ETag"]


def test_the_facts_carry_the_roster_version_the_roster_etag_is_built_from(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    pupil = school.pupil("Ada", "Ames")
    version, etag = _roster(client, auth)

    facts = _facts(consent_db, [pupil])

    assert facts.roster_version == version
    assert etag == f'W/"roster-{SCHOOL}-{facts.roster_version}"'

    # A change to the roll moves both on together.
    school.pupil("Ben", "Bose")
    moved, _ = _roster(client, auth)
    assert moved > version
    assert _facts(consent_db, [pupil]).roster_version == moved


def test_an_unknown_purpose_has_no_rule_and_no_roster_version(
    school: SchoolBuilder, consent_db: Database
) -> None:
    pupil = school.pupil()

    facts = _facts(consent_db, [pupil], purpose="no_such_purpose")

    assert facts.rule is None
    assert facts.roster_version == 0
    # The pupils are still read: the caller names the purpose as the problem, not them.
    assert uuid.UUID(pupil).int in facts.standing


def test_the_facts_are_what_the_orm_readers_see(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    granted = school.family("Ada", "Ames", carers=2)
    silent = school.family("Ben", "Bose")
    carerless = school.pupil("Cai", "Chen")
    leaver = school.family("Dee", "Dunn")
    restricted = school.family("Eve", "Eze", carers=2)
    school.consent(granted.pupil_id, granted.guardian_ids[0])
    school.consent(granted.pupil_id, granted.guardian_ids[1], decision="refused")
    school.consent(granted.pupil_id, granted.guardian_ids[0], purpose="social_media_photo")
    school.consent(leaver.pupil_id, leaver.guardian_ids[0])
    school.consent(restricted.pupil_id, restricted.guardian_ids[0])
    archive(client, auth, leaver.pupil_id)
    restrict(client, auth, restricted.pupil_id)
    asked = [granted.pupil_id, silent.pupil_id, carerless, leaver.pupil_id, restricted.pupil_id]
    ids = [uuid.UUID(p) for p in asked]
    now = dt.datetime.now(dt.UTC)

    facts = _facts(consent_db, asked, at=now)

    assert facts.rule is not None
    assert facts.rule.code == "website_photo"
    with consent_db.session(read_only=True) as session:
        standings = repository.standings(session, SCHOOL, ids, now)
        purpose_id = next(
            p.id for p in repository.consent_purposes(session, SCHOOL) if p.code == "website_photo"
        )
        views = repository.record_views(session, SCHOOL, [purpose_id], ids, now)
    assert facts.standing == {p.int: s for p, s in standings.items()}
    assert facts.records == {pupil.int: v for (pupil, _), v in views.items()}
    assert not facts.standing[uuid.UUID(leaver.pupil_id).int].on_roll
    assert facts.standing[uuid.UUID(restricted.pupil_id).int].restricted
    assert facts.standing[uuid.UUID(carerless).int].responsible_guardians == frozenset()
    assert uuid.UUID(silent.pupil_id).int not in facts.records
    # Only this purpose's records: the social media grant is not among them.
    assert len(facts.records[uuid.UUID(granted.pupil_id).int]) == 2


def test_pupils_of_another_school_and_strangers_are_not_known(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    ours = school.family("Ada", "Ames")
    school.consent(ours.pupil_id, ours.guardian_ids[0])
    elsewhere = SchoolBuilder(client, auth, school=OTHER_SCHOOL)
    elsewhere.set_up("Elm Academy")
    theirs = elsewhere.family("Ben", "Bose")
    elsewhere.consent(theirs.pupil_id, theirs.guardian_ids[0])
    stranger = str(uuid.uuid4())

    facts = _facts(consent_db, [ours.pupil_id, theirs.pupil_id, stranger])

    assert set(facts.standing) == {uuid.UUID(ours.pupil_id).int}
    assert set(facts.records) == {uuid.UUID(ours.pupil_id).int}
    # And the other school's own facts carry its own roster version.
    assert _facts(consent_db, [theirs.pupil_id], school=OTHER_SCHOOL).standing.keys() == {
        uuid.UUID(theirs.pupil_id).int
    }


def test_a_pupil_asked_twice_has_each_record_once(
    school: SchoolBuilder, consent_db: Database
) -> None:
    family = school.family("Ada", "Ames")
    school.consent(family.pupil_id, family.guardian_ids[0])

    facts = _facts(consent_db, [family.pupil_id, family.pupil_id, family.pupil_id])

    key = uuid.UUID(family.pupil_id).int
    assert len(facts.records[key]) == 1
    assert facts.standing[key].responsible_guardians == {uuid.UUID(family.guardian_ids[0])}


def test_an_empty_batch_reads_only_the_purpose(school: SchoolBuilder, consent_db: Database) -> None:
    facts = _facts(consent_db, [])

    assert facts.rule is not None
    assert facts.roster_version >= 1
    assert facts.standing == {}
    assert facts.records == {}


def test_records_made_after_the_instant_are_not_read(
    school: SchoolBuilder, consent_db: Database
) -> None:
    family = school.family("Ada", "Ames")
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    school.consent(family.pupil_id, family.guardian_ids[0])

    assert _facts(consent_db, [family.pupil_id], at=before).records == {}
    assert len(_facts(consent_db, [family.pupil_id]).records[uuid.UUID(family.pupil_id).int]) == 1


def test_a_thousand_pupils_are_read_in_one_go(school: SchoolBuilder, consent_db: Database) -> None:
    family = school.family("Ada", "Ames")
    school.consent(family.pupil_id, family.guardian_ids[0])
    now = dt.datetime.now(dt.UTC)
    with consent_db.session() as session:
        made = [
            Pupil(
                school_id=SCHOOL,
                mis_id=f"BULK{number}",
                given_name="Pupil",
                family_name=f"P{number}",
                year_group=4,
                created_at=now,
                updated_at=now,
            )
            for number in range(999)
        ]
        session.add_all(made)
        session.flush()
        bulk = [p.id for p in made]
        # Half the new pupils are leavers, to read a mixed roll.
        session.execute(update(Pupil).where(Pupil.id.in_(bulk[::2])).values(archived_at=now))

    asked = [*bulk, uuid.UUID(family.pupil_id)]
    facts = _facts(consent_db, asked)

    assert len(facts.standing) == 1000
    assert sum(not s.on_roll for s in facts.standing.values()) == 500
    assert set(facts.records) == {uuid.UUID(family.pupil_id).int}


def test_sqlite_ids_are_read_into_the_same_uuids_the_constructor_makes() -> None:
    for made in (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        read = repository._uuid_of_hex(made.hex)

        assert type(read) is uuid.UUID
        assert read == made
        assert hash(read) == hash(made)
        assert str(read) == str(made)
        assert read.bytes == made.bytes
        assert read.is_safe is made.is_safe
        assert {read: 1}[made] == 1
