from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_consent.common import record_audit, require_school
from hallpass_consent.consents import service as consents
from hallpass_consent.events import ChangeCause
from hallpass_consent.models import Guardian, GuardianLink, Pupil, Restriction, SchoolClass
from hallpass_consent.pupils import importer, repository
from hallpass_consent.pupils.schemas import (
    ChildLink,
    ClassCreate,
    ClassView,
    GuardianCreate,
    GuardianView,
    ImportSummary,
    PupilChange,
    PupilCreate,
    PupilView,
    RestrictionSet,
    RestrictionView,
)
from hallpass_consent.schools.repository import bump_roster_version
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import BadRequest, Conflict, NotFound, Unprocessable
from hallpass_kit.pagination import Page, decode_cursor, encode_cursor


def pupil_view(pupil: Pupil, restricted: bool) -> PupilView:
    return PupilView(
        id=pupil.id,
        mis_id=pupil.mis_id,
        given_name=pupil.given_name,
        family_name=pupil.family_name,
        preferred_name=pupil.preferred_name,
        year_group=pupil.year_group,
        class_id=pupil.class_id,
        archived_at=pupil.archived_at,
        restricted=restricted,
    )


def find_pupil(session: Session, school_id: str, pupil_id: uuid.UUID) -> Pupil:
    pupil = repository.get_pupil(session, school_id, pupil_id)
    if pupil is None:
        raise NotFound("No such pupil in this school.", code="unknown_pupil")
    return pupil


def _check_class(session: Session, school_id: str, class_id: uuid.UUID | None) -> None:
    if class_id is not None and repository.get_class(session, school_id, class_id) is None:
        raise Unprocessable("No such class in this school.", code="unknown_class")


def create_class(
    session: Session, principal: Principal, body: ClassCreate, *, now: dt.datetime
) -> ClassView:
    require_school(session, principal.school)
    if repository.class_by_name(session, principal.school, body.name) is not None:
        raise Conflict(f"A class called '{body.name}' already exists.", code="duplicate_class")
    school_class = SchoolClass(
        school_id=principal.school, name=body.name, year_group=body.year_group, created_at=now
    )
    repository.add(session, school_class)
    record_audit(session, principal, "class.created", str(school_class.id), {"name": body.name})
    return ClassView(id=school_class.id, name=school_class.name, year_group=school_class.year_group)


def list_classes(session: Session, principal: Principal) -> list[ClassView]:
    return [
        ClassView(id=c.id, name=c.name, year_group=c.year_group)
        for c in repository.classes(session, principal.school)
    ]


def create_pupil(
    session: Session, principal: Principal, body: PupilCreate, *, now: dt.datetime
) -> PupilView:
    require_school(session, principal.school)
    _check_class(session, principal.school, body.class_id)
    if repository.pupils_by_mis_id(session, principal.school, [body.mis_id]):
        raise Conflict(
            f"A pupil with MIS id '{body.mis_id}' already exists.", code="duplicate_mis_id"
        )
    pupil = Pupil(
        school_id=principal.school,
        created_at=now,
        updated_at=now,
        archived_at=None,
        **body.model_dump(),
    )
    repository.add(session, pupil)
    bump_roster_version(session, principal.school)
    record_audit(session, principal, "pupil.created", str(pupil.id), {"mis_id": pupil.mis_id})
    return pupil_view(pupil, restricted=False)


def get_pupil(session: Session, principal: Principal, pupil_id: uuid.UUID) -> PupilView:
    pupil = find_pupil(session, principal.school, pupil_id)
    restricted = bool(repository.restricted_pupil_ids(session, principal.school, [pupil.id]))
    return pupil_view(pupil, restricted)


def list_pupils(
    session: Session,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    class_id: uuid.UUID | None,
    include_archived: bool,
) -> Page[PupilView]:
    after = None
    if cursor is not None:
        family, given, raw_id = decode_cursor(cursor, 3)
        try:
            after = (str(family), str(given), uuid.UUID(str(raw_id)))
        except ValueError as exc:
            # Starting again from the first page would loop a client forever.
            raise BadRequest(
                "The cursor is not one this API issued.", code="invalid_cursor"
            ) from exc
    pupils = repository.page_pupils(
        session,
        principal.school,
        after=after,
        limit=limit + 1,
        class_id=class_id,
        include_archived=include_archived,
    )
    more = len(pupils) > limit
    pupils = pupils[:limit]
    restricted = repository.restricted_pupil_ids(session, principal.school, [p.id for p in pupils])
    last = pupils[-1] if pupils else None
    return Page[PupilView](
        items=[pupil_view(p, p.id in restricted) for p in pupils],
        next_cursor=encode_cursor(last.family_name, last.given_name, last.id)
        if more and last
        else None,
    )


def change_pupil(
    session: Session,
    principal: Principal,
    pupil_id: uuid.UUID,
    body: PupilChange,
    *,
    now: dt.datetime,
) -> PupilView:
    pupil = find_pupil(session, principal.school, pupil_id)
    changes = body.model_dump(exclude_unset=True)
    for required in ("given_name", "family_name", "year_group"):
        if required in changes and changes[required] is None:
            raise Unprocessable(f"{required} cannot be removed.", code="required_field")
    if "class_id" in changes:
        _check_class(session, principal.school, changes["class_id"])
    for field, value in changes.items():
        setattr(pupil, field, value)
    pupil.updated_at = now
    repository.save(session)
    bump_roster_version(session, principal.school)
    record_audit(session, principal, "pupil.changed", str(pupil.id), {"fields": sorted(changes)})
    return get_pupil(session, principal, pupil.id)


def archive_pupil(
    session: Session, principal: Principal, pupil_id: uuid.UUID, *, now: dt.datetime
) -> PupilView:
    pupil = find_pupil(session, principal.school, pupil_id)
    if pupil.archived_at is not None:
        raise Conflict("This pupil has already left.", code="already_archived")
    pupil.archived_at = now
    pupil.updated_at = pupil.archived_at
    repository.save(session)
    bump_roster_version(session, principal.school)
    record_audit(session, principal, "pupil.archived", str(pupil.id))
    return get_pupil(session, principal, pupil.id)


def guardian_view(session: Session, guardian: Guardian) -> GuardianView:
    return GuardianView(
        id=guardian.id,
        given_name=guardian.given_name,
        family_name=guardian.family_name,
        email=guardian.email,
        phone=guardian.phone,
        children=[
            ChildLink(
                pupil_id=link.pupil_id,
                relationship=link.relationship,
                parental_responsibility=link.parental_responsibility,
            )
            for link in repository.links_of_guardian(session, guardian.id)
        ],
    )


def create_guardian(
    session: Session, principal: Principal, body: GuardianCreate, *, now: dt.datetime
) -> GuardianView:
    require_school(session, principal.school)
    seen: set[uuid.UUID] = set()
    for child in body.children:
        if child.pupil_id in seen:
            raise Unprocessable("A child is listed twice.", code="duplicate_child")
        seen.add(child.pupil_id)
        if repository.get_pupil(session, principal.school, child.pupil_id) is None:
            raise Unprocessable(f"No pupil {child.pupil_id} in this school.", code="unknown_pupil")
    guardian = Guardian(
        school_id=principal.school,
        given_name=body.given_name,
        family_name=body.family_name,
        email=body.email,
        phone=body.phone,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, guardian)
    for child in body.children:
        repository.add(
            session,
            GuardianLink(
                pupil_id=child.pupil_id,
                guardian_id=guardian.id,
                school_id=principal.school,
                relationship=child.relationship,
                parental_responsibility=child.parental_responsibility,
                created_at=now,
            ),
        )
    record_audit(
        session,
        principal,
        "guardian.created",
        str(guardian.id),
        {"children": [str(c.pupil_id) for c in body.children]},
    )
    return guardian_view(session, guardian)


def get_guardian(session: Session, principal: Principal, guardian_id: uuid.UUID) -> GuardianView:
    guardian = repository.get_guardian(session, principal.school, guardian_id)
    if guardian is None:
        raise NotFound("No such carer in this school.", code="unknown_guardian")
    return guardian_view(session, guardian)


def link_child(
    session: Session,
    principal: Principal,
    guardian_id: uuid.UUID,
    body: ChildLink,
    *,
    now: dt.datetime,
) -> GuardianView:
    guardian = repository.get_guardian(session, principal.school, guardian_id)
    if guardian is None:
        raise NotFound("No such carer in this school.", code="unknown_guardian")
    if repository.get_pupil(session, principal.school, body.pupil_id) is None:
        raise Unprocessable(f"No pupil {body.pupil_id} in this school.", code="unknown_pupil")
    purposes = consents.consent_purposes(session, principal.school)
    before = consents.evaluate(session, principal.school, purposes, [body.pupil_id], now)
    existing = repository.link(session, body.pupil_id, guardian_id)
    if existing is None:
        repository.add(
            session,
            GuardianLink(
                pupil_id=body.pupil_id,
                guardian_id=guardian_id,
                school_id=principal.school,
                relationship=body.relationship,
                parental_responsibility=body.parental_responsibility,
                created_at=now,
            ),
        )
    else:
        existing.relationship = body.relationship
        existing.parental_responsibility = body.parental_responsibility
    repository.save(session)
    # Parental responsibility decides whose refusal counts (C11), so a change can change consent.
    consents.announce_changes(
        session,
        principal.school,
        purposes,
        [body.pupil_id],
        before,
        cause=ChangeCause.guardian_link,
        now=now,
    )
    record_audit(
        session, principal, "guardian.linked", str(guardian_id), body.model_dump(mode="json")
    )
    return guardian_view(session, guardian)


def guardians_of_pupil(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> list[GuardianView]:
    find_pupil(session, principal.school, pupil_id)
    return [
        guardian_view(session, guardian)
        for _link, guardian in repository.guardians_of_pupils(session, principal.school, [pupil_id])
    ]


def set_restriction(
    session: Session,
    principal: Principal,
    pupil_id: uuid.UUID,
    body: RestrictionSet,
    *,
    now: dt.datetime,
) -> RestrictionView:
    pupil = find_pupil(session, principal.school, pupil_id)
    purposes = consents.consent_purposes(session, principal.school)
    before = consents.evaluate(session, principal.school, purposes, [pupil.id], now)
    current = repository.active_restriction(session, principal.school, pupil.id)
    if current is not None:
        current.lifted_at, current.lifted_by = now, principal.actor
    restriction = Restriction(
        school_id=principal.school,
        pupil_id=pupil.id,
        kind=body.kind,
        reason=body.reason,
        set_by=principal.actor,
        set_at=now,
    )
    repository.add(session, restriction)
    consents.announce_changes(
        session,
        principal.school,
        purposes,
        [pupil.id],
        before,
        cause=ChangeCause.restriction,
        now=now,
    )
    # The reason stays out of the audit details: the chain is readable by the head too.
    record_audit(session, principal, "restriction.set", str(pupil.id), {"kind": body.kind.value})
    return _restriction_view(restriction)


def _restriction_view(restriction: Restriction) -> RestrictionView:
    return RestrictionView(
        pupil_id=restriction.pupil_id,
        kind=restriction.kind,
        reason=restriction.reason,
        set_by=restriction.set_by,
        set_at=restriction.set_at,
    )


def _active_restriction(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> tuple[Pupil, Restriction]:
    pupil = find_pupil(session, principal.school, pupil_id)
    restriction = repository.active_restriction(session, principal.school, pupil.id)
    if restriction is None:
        raise NotFound("This pupil has no safeguarding restriction.", code="not_restricted")
    return pupil, restriction


def get_restriction(session: Session, principal: Principal, pupil_id: uuid.UUID) -> RestrictionView:
    _pupil, restriction = _active_restriction(session, principal, pupil_id)
    assert Role.dsl in principal.roles
    return _restriction_view(restriction)


def lift_restriction(
    session: Session, principal: Principal, pupil_id: uuid.UUID, *, now: dt.datetime
) -> None:
    pupil, restriction = _active_restriction(session, principal, pupil_id)
    purposes = consents.consent_purposes(session, principal.school)
    before = consents.evaluate(session, principal.school, purposes, [pupil.id], now)
    restriction.lifted_at, restriction.lifted_by = now, principal.actor
    repository.save(session)
    consents.announce_changes(
        session,
        principal.school,
        purposes,
        [pupil.id],
        before,
        cause=ChangeCause.restriction_lifted,
        now=now,
    )
    record_audit(session, principal, "restriction.lifted", str(pupil.id))


def import_pupils(
    session: Session,
    principal: Principal,
    data: bytes,
    *,
    dry_run: bool,
    max_rows: int,
    now: dt.datetime,
) -> ImportSummary:
    """Import an MIS export in the request's transaction; a real import is audited."""
    summary = importer.import_csv(
        session,
        principal.school,
        data,
        actor=principal.actor,
        dry_run=dry_run,
        max_rows=max_rows,
        now=now,
    )
    if not dry_run:
        record_audit(session, principal, "pupils.imported", None, summary.model_dump())
    return summary
