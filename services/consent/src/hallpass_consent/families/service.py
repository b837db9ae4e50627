"""Who the carers of a set of pupils are, for the comms service to write to (E9)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.orm import Session

from hallpass_consent.families import repository
from hallpass_consent.families.schemas import FamiliesQuery, Family, FamilyCarer
from hallpass_consent.models import Guardian, Pupil, SchoolClass
from hallpass_kit.auth import Principal
from hallpass_kit.errors import ProblemDetail, Unprocessable


def _unknown(
    session: Session,
    school_id: str,
    model: type[Pupil | Guardian | SchoolClass],
    ids: Collection[uuid.UUID],
    field: str,
    code: str,
) -> list[ProblemDetail]:
    known = repository.existing_ids(session, school_id, model, ids)
    return [
        ProblemDetail(
            code=code,
            detail=f"No such {field.removesuffix('_ids')} in this school: {i}.",
            where=f"body.{field}",
        )
        for i in dict.fromkeys(ids)
        if i not in known
    ]


def resolve(session: Session, principal: Principal, query: FamiliesQuery) -> list[Family]:
    """Every pupil the query names and all their carers; an unknown id refuses the whole query.

    Classes and year groups give the pupils on roll; pupils and carers named by id are given
    whether on roll or not, with ``on_roll`` saying which, so the caller decides.
    """
    school = principal.school
    problems = [
        *_unknown(session, school, Pupil, query.pupil_ids, "pupil_ids", "unknown_pupil"),
        *_unknown(
            session, school, Guardian, query.guardian_ids, "guardian_ids", "unknown_guardian"
        ),
        *_unknown(session, school, SchoolClass, query.class_ids, "class_ids", "unknown_class"),
    ]
    if problems:
        raise Unprocessable(
            "Some of these ids are not in this school; nothing was resolved.",
            code=problems[0].code,
            problems=problems,
        )
    pupils = repository.matching_pupils(
        session,
        school,
        pupil_ids=set(query.pupil_ids),
        guardian_ids=set(query.guardian_ids),
        class_ids=set(query.class_ids),
        year_groups=set(query.year_groups),
    )
    carers: dict[uuid.UUID, list[FamilyCarer]] = {p.id: [] for p in pupils}
    for link, guardian in repository.carers_of(session, school, carers.keys()):
        carers[link.pupil_id].append(
            FamilyCarer(
                guardian_id=guardian.id,
                given_name=guardian.given_name,
                family_name=guardian.family_name,
                email=guardian.email,
                relationship=link.relationship,
                parental_responsibility=link.parental_responsibility,
            )
        )
    return [
        Family(
            pupil_id=pupil.id,
            pupil_given_name=pupil.preferred_name or pupil.given_name,
            pupil_family_name=pupil.family_name,
            class_id=pupil.class_id,
            year_group=pupil.year_group,
            on_roll=pupil.archived_at is None,
            carers=carers[pupil.id],
        )
        for pupil in pupils
    ]
