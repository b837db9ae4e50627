"""A demo school for `make run`: seven classes, about 200 pupils with carers, mixed consents and
one pupil under a safeguarding restriction. Deterministic, so the README tour always matches."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, select

from hallpass_consent.common import audit
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.schemas import ConsentCreate
from hallpass_consent.models import (
    ConsentRecord,
    ExpiryNotice,
    Guardian,
    GuardianLink,
    Method,
    Pupil,
    Purpose,
    PurposeWording,
    Restriction,
    RestrictionKind,
    School,
    SchoolClass,
)
from hallpass_consent.pupils import service as pupils
from hallpass_consent.pupils.schemas import (
    ChildLink,
    ClassCreate,
    GuardianCreate,
    PupilCreate,
    RestrictionSet,
)
from hallpass_consent.schools import service as schools
from hallpass_consent.schools.schemas import SchoolSettings
from hallpass_kit.auth import Principal, Role
from hallpass_kit.db import Database, utcnow

GIVEN = [
    "Amara",
    "Oliver",
    "Isla",
    "Mohammed",
    "Freya",
    "Jack",
    "Zofia",
    "Noah",
    "Aoife",
    "Leo",
    "Priya",
    "Harry",
    "Siobhán",
    "Arlo",
    "Chloé",
    "Kai",
    "Emily-Rose",
    "Yusuf",
    "Maja",
    "Ewan",
    "Nia",
    "Theo",
    "Ava",
    "Rhys",
    "Lily",
    "Oscar",
    "Grace",
    "Dylan",
    "Ruby",
    "Finley",
]
FAMILY = [
    "Okafor",
    "Smith",
    "O'Brien",
    "Khan",
    "Jones",
    "Nowak",
    "MacLeod",
    "Patel",
    "Williams",
    "Brown",
    "Ní Bhriain",
    "Taylor",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Roberts",
    "Ahmed",
    "Wright",
    "Walker",
    "Hughes",
    "Green",
    "Lewis",
    "Kowalski",
    "Hall",
    "Clarke",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Hill",
    "Moore",
    "Baker",
    "Harris",
    "Cooper",
]
CARER_GIVEN = [
    "Grace",
    "Daniel",
    "Sarah",
    "Tom",
    "Aisha",
    "Marek",
    "Claire",
    "Imran",
    "Joanne",
    "Kwame",
    "Helen",
    "Pawel",
    "Rachel",
    "Gareth",
    "Niamh",
    "Samir",
]
CLASSES = [
    ("Reception Robins", 0),
    ("Year 1 Wrens", 1),
    ("Year 2 Owls", 2),
    ("Year 3 Oak", 3),
    ("Year 4 Ash", 4),
    ("Year 5 Elm", 5),
    ("Year 6 Willow", 6),
]
PUPILS_PER_CLASS = 29


# The methods the demo's records were drawn from; fixed so a method added to the API does not
# reshuffle the seeded school the README tour walks through.
_DEMO_METHODS = (Method.paper, Method.electronic, Method.app, Method.email)


@dataclass(frozen=True)
class DemoSummary:
    school: str
    classes: int
    pupils: int
    guardians: int
    consent_records: int
    restricted_pupil: str
    sample_pupil: str
    sample_guardian: str
    created: bool


def _wipe(database: Database, school: str) -> None:
    with database.session() as session:
        pupil_ids = select(Pupil.id).where(Pupil.school_id == school)
        record_ids = select(ConsentRecord.id).where(ConsentRecord.school_id == school)
        purpose_ids = select(Purpose.id).where(Purpose.school_id == school)
        session.execute(delete(ExpiryNotice).where(ExpiryNotice.record_id.in_(record_ids)))
        session.execute(delete(ConsentRecord).where(ConsentRecord.school_id == school))
        session.execute(delete(Restriction).where(Restriction.pupil_id.in_(pupil_ids)))
        session.execute(delete(GuardianLink).where(GuardianLink.school_id == school))
        session.execute(delete(Guardian).where(Guardian.school_id == school))
        session.execute(delete(Pupil).where(Pupil.school_id == school))
        session.execute(delete(SchoolClass).where(SchoolClass.school_id == school))
        session.execute(delete(PurposeWording).where(PurposeWording.purpose_id.in_(purpose_ids)))
        session.execute(delete(Purpose).where(Purpose.school_id == school))
        session.execute(delete(School).where(School.id == school))


def _summary(database: Database, school: str, created: bool) -> DemoSummary:
    with database.session() as session:

        def count(model: type, column: Any) -> int:
            return int(
                session.execute(
                    select(func.count()).select_from(model).where(column == school)
                ).scalar_one()
            )

        restricted = session.execute(
            select(Restriction.pupil_id).where(
                Restriction.school_id == school, Restriction.lifted_at.is_(None)
            )
        ).scalar_one()
        sample_pupil, sample_guardian = session.execute(
            select(GuardianLink.pupil_id, GuardianLink.guardian_id)
            .join(Pupil, Pupil.id == GuardianLink.pupil_id)
            .where(GuardianLink.school_id == school, Pupil.mis_id == "DEMO0001")
        ).first() or (uuid.UUID(int=0), uuid.UUID(int=0))
        return DemoSummary(
            school=school,
            classes=count(SchoolClass, SchoolClass.school_id),
            pupils=count(Pupil, Pupil.school_id),
            guardians=count(Guardian, Guardian.school_id),
            consent_records=count(ConsentRecord, ConsentRecord.school_id),
            restricted_pupil=str(restricted),
            sample_pupil=str(sample_pupil),
            sample_guardian=str(sample_guardian),
            created=created,
        )


def seed_demo(
    database: Database,
    school: str = "demo",
    reset: bool = False,
    clock: Callable[[], dt.datetime] = utcnow,
) -> DemoSummary:
    """Create the demo school once; a second call leaves it as it is (unless ``reset``).

    A command of its own, so it holds the clock the services are handed, as an app does.
    """
    if reset:
        _wipe(database, school)
    with database.session() as session:
        exists = session.get(School, school) is not None
    if exists:
        return _summary(database, school, created=False)
    rng = random.Random(20261121)  # noqa: S311 - demo data, not security
    head = Principal(sub="demo-seed", school=school, roles=frozenset({Role.head}))
    office = Principal(sub="demo-seed", school=school, roles=frozenset({Role.office}))
    dsl = Principal(sub="demo-seed", school=school, roles=frozenset({Role.dsl}))
    purposes = [
        "website_photo",
        "social_media_photo",
        "print_publication",
        "newspaper_named",
        "livestream",
        "video_recording_publish",
        "external_agency",
    ]
    with database.session() as session:
        schools.put_school(session, head, SchoolSettings(name="Hallpass Demo Primary"), now=clock())
        number = 0
        restricted: uuid.UUID | None = None
        for class_name, year in CLASSES:
            school_class = pupils.create_class(
                session, office, ClassCreate(name=class_name, year_group=year), now=clock()
            )
            for _ in range(PUPILS_PER_CLASS):
                number += 1
                family = rng.choice(FAMILY)
                pupil = pupils.create_pupil(
                    session,
                    office,
                    PupilCreate(
                        mis_id=f"DEMO{number:04d}",
                        given_name=rng.choice(GIVEN),
                        family_name=family,
                        year_group=year,
                        class_id=school_class.id,
                    ),
                    now=clock(),
                )
                carers = []
                for index in range(1 if rng.random() < 0.35 else 2):
                    given = rng.choice(CARER_GIVEN)
                    carers.append(
                        pupils.create_guardian(
                            session,
                            office,
                            GuardianCreate(
                                given_name=given,
                                family_name=family,
                                email=f"{given.lower()}.{number:04d}.{index}@parents.example.org",
                                children=[
                                    ChildLink(
                                        pupil_id=pupil.id,
                                        relationship="parent",
                                        parental_responsibility=True,
                                    )
                                ],
                            ),
                            now=clock(),
                        )
                    )
                for purpose in purposes:
                    roll = rng.random()
                    if roll < 0.15:
                        continue  # no answer yet: opt-in means no (C2)
                    decision: Literal["granted", "refused"] = (
                        "refused" if roll < 0.30 else "granted"
                    )
                    for carer in carers[: 1 if roll < 0.8 else 2]:
                        consents.record_consent(
                            session,
                            office,
                            ConsentCreate(
                                pupil_id=pupil.id,
                                purpose=purpose,
                                decision=decision,
                                guardian_id=carer.id,
                                method=rng.choice(_DEMO_METHODS),
                                evidence_ref=f"admission-pack-{number:04d}",
                            ),
                            now=clock(),
                        )
                if number == 42:
                    restricted = pupil.id
        assert restricted is not None
        pupils.set_restriction(
            session,
            dsl,
            restricted,
            RestrictionSet(
                kind=RestrictionKind.court_order, reason="Demo: court order, must not be locatable."
            ),
            now=clock(),
        )
        audit.append(session, actor="demo-seed", school=school, action="demo.seeded")
    return _summary(database, school, created=True)
