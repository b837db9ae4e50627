"""CSV import of pupils and carers from an MIS export (docs/import.md lists the columns).

Every row is checked before anything is written; one bad row stops the whole file, and every
problem found is reported with its row and column so the office can fix the export in one go.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from hallpass_consent.common import audit, require_school
from hallpass_consent.consents import service as consents
from hallpass_consent.events import ChangeCause
from hallpass_consent.models import Guardian, GuardianLink, Pupil, SchoolClass
from hallpass_consent.pupils import repository
from hallpass_consent.pupils.schemas import ImportSummary
from hallpass_consent.schools.repository import bump_roster_version
from hallpass_kit.db import Database, utcnow
from hallpass_kit.errors import ProblemDetail, Unprocessable

Progress = Callable[[str, int, int], None]
Clock = Callable[[], dt.datetime]

REQUIRED = ("mis_id", "given_name", "family_name", "year_group")
OPTIONAL = ("preferred_name", "class")
CARER_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "relationship",
    "parental_responsibility",
)
MAX_CARERS = 3
KNOWN = {
    *REQUIRED,
    *OPTIONAL,
    *(f"carer{n}_{f}" for n in range(1, MAX_CARERS + 1) for f in CARER_FIELDS),
}
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0"}
MAX_REPORTED = 200

_email = TypeAdapter(EmailStr)


@dataclass
class CarerRow:
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    relationship: str
    parental_responsibility: bool


@dataclass
class PupilRow:
    line: int
    mis_id: str
    given_name: str
    family_name: str
    preferred_name: str | None
    year_group: int
    class_name: str | None
    carers: list[CarerRow]


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


def parse(data: bytes, *, max_rows: int, progress: Progress = _quiet) -> list[PupilRow]:
    """Check every row; raise one problem listing all that is wrong, or return the rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            "The file is not UTF-8 text; export it as CSV UTF-8.", code="invalid_csv"
        ) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        raise Unprocessable("The file is empty.", code="invalid_csv")
    reader.fieldnames = header
    problems: list[ProblemDetail] = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in KNOWN]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    for column in missing:
        problems.append(
            ProblemDetail(
                code="missing_column",
                where=f"header.{column}",
                detail=f"The column '{column}' is required.",
            )
        )
    for column in unknown:
        problems.append(
            ProblemDetail(
                code="unknown_column",
                where=f"header.{column}",
                detail=f"'{column}' is not a documented column.",
            )
        )
    for column in duplicated:
        problems.append(
            ProblemDetail(
                code="duplicate_column",
                where=f"header.{column}",
                detail=f"'{column}' appears more than once.",
            )
        )
    if problems:
        raise Unprocessable(
            "The header row is not right; nothing was imported.",
            code="invalid_csv",
            problems=problems,
        )
    try:
        raw_rows = list(reader)
    except csv.Error as exc:
        raise Unprocessable(f"The file is not valid CSV: {exc}.", code="invalid_csv") from exc
    if not raw_rows:
        raise Unprocessable("The file has a header but no pupils.", code="invalid_csv")
    if len(raw_rows) > max_rows:
        raise Unprocessable(f"At most {max_rows} rows per file.", code="too_many_rows")

    rows: list[PupilRow] = []
    first_line_of: dict[str, int] = {}
    for index, raw in enumerate(raw_rows):
        line = index + 2  # the header is line 1
        row_problems: list[ProblemDetail] = []

        def bad(
            column: str,
            code: str,
            detail: str,
            line: int = line,
            out: list[ProblemDetail] = row_problems,
        ) -> None:
            out.append(
                ProblemDetail(code=code, where=f"row {line}, column {column}", detail=detail)
            )

        if None in raw:
            bad("-", "too_many_fields", "This row has more fields than the header.")
        values = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        for column in REQUIRED:
            if not values.get(column):
                bad(column, "required", f"'{column}' is empty.")
        for column in ("mis_id", "given_name", "family_name", "preferred_name", "class"):
            if len(values.get(column, "")) > (64 if column == "mis_id" else 100):
                bad(column, "too_long", f"'{column}' is too long.")
        year = values.get("year_group", "")
        year_group = 0
        if year:
            try:
                year_group = int(year)
                if not -1 <= year_group <= 14:
                    raise ValueError(year)
            except ValueError:
                bad(
                    "year_group",
                    "invalid_year_group",
                    "year_group must be a whole number from -1 (nursery) to 14.",
                )
        mis_id = values.get("mis_id", "")
        if mis_id:
            if mis_id in first_line_of:
                bad(
                    "mis_id",
                    "duplicate_mis_id",
                    f"MIS id '{mis_id}' is also on row {first_line_of[mis_id]}.",
                )
            else:
                first_line_of[mis_id] = line
        carers: list[CarerRow] = []
        for n in range(1, MAX_CARERS + 1):
            fields = {f: values.get(f"carer{n}_{f}", "") for f in CARER_FIELDS}
            if not any(fields.values()):
                continue
            for f in ("given_name", "family_name"):
                if not fields[f]:
                    bad(f"carer{n}_{f}", "required", f"carer{n} needs a {f}.")
            email: str | None = fields["email"] or None
            if email is not None:
                try:
                    email = str(_email.validate_python(email))
                except ValidationError:
                    bad(f"carer{n}_email", "invalid_email", f"'{email}' is not an email address.")
            pr = fields["parental_responsibility"].lower() or "yes"
            if pr not in YES | NO:
                bad(f"carer{n}_parental_responsibility", "invalid_flag", "Use yes or no.")
            carers.append(
                CarerRow(
                    fields["given_name"],
                    fields["family_name"],
                    email,
                    fields["phone"] or None,
                    fields["relationship"] or "parent",
                    pr in YES,
                )
            )
        if row_problems:
            problems.extend(row_problems)
        else:
            rows.append(
                PupilRow(
                    line,
                    mis_id,
                    values["given_name"],
                    values["family_name"],
                    values.get("preferred_name") or None,
                    year_group,
                    values.get("class") or None,
                    carers,
                )
            )
        progress("checking", index + 1, len(raw_rows))
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        raise Unprocessable(
            f"{len(problems)} problem(s) in the file; nothing was imported."
            + (f" The first {MAX_REPORTED} are listed." if more else ""),
            code="invalid_csv",
            problems=shown,
        )
    return rows


def import_csv(
    session: Session,
    school_id: str,
    data: bytes,
    *,
    actor: str,
    dry_run: bool,
    max_rows: int = 10_000,
    progress: Progress = _quiet,
    now: dt.datetime,
) -> ImportSummary:
    """Create or update every pupil in the file with their carers, in the caller's transaction."""
    require_school(session, school_id)
    rows = parse(data, max_rows=max_rows, progress=progress)
    existing = repository.pupils_by_mis_id(session, school_id, [r.mis_id for r in rows])
    emails = {c.email for r in rows for c in r.carers if c.email}
    guardians = repository.guardians_by_email(session, school_id, emails)
    classes = {c.name: c for c in repository.classes(session, school_id)}
    summary = ImportSummary(
        rows=len(rows),
        created=0,
        updated=0,
        guardians_created=0,
        links_created=0,
        classes_created=0,
        dry_run=dry_run,
    )
    # Carers' parental responsibility decides whose refusal counts (C11): a re-import that changes
    # it can change a pupil's consent, and publishers must hear of it.
    purposes = consents.consent_purposes(session, school_id)
    known_pupils = [p.id for p in existing.values()]
    before = {} if dry_run else consents.evaluate(session, school_id, purposes, known_pupils, now)
    for done, row in enumerate(rows, start=1):
        class_id = None
        if row.class_name:
            school_class = classes.get(row.class_name)
            if school_class is None:
                school_class = SchoolClass(
                    school_id=school_id,
                    name=row.class_name,
                    year_group=row.year_group,
                    created_at=now,
                )
                classes[row.class_name] = school_class
                summary.classes_created += 1
                if not dry_run:
                    session.add(school_class)
                    session.flush()
            class_id = school_class.id
        pupil = existing.get(row.mis_id)
        if pupil is None:
            summary.created += 1
            pupil = Pupil(school_id=school_id, mis_id=row.mis_id, created_at=now, archived_at=None)
            existing[row.mis_id] = pupil
            if not dry_run:
                session.add(pupil)
        else:
            summary.updated += 1
        if not dry_run:
            pupil.given_name, pupil.family_name = row.given_name, row.family_name
            pupil.preferred_name, pupil.year_group = row.preferred_name, row.year_group
            pupil.class_id, pupil.updated_at = class_id, now
            session.flush()
        for carer in row.carers:
            guardian = guardians.get(carer.email.lower()) if carer.email else None
            if guardian is None and carer.email is None and pupil.id is not None:
                # Without an email, the same names already linked to this pupil are this carer.
                guardian = next(
                    (
                        known
                        for _link, known in repository.guardians_of_pupils(
                            session, school_id, [pupil.id]
                        )
                        if known.given_name.casefold() == carer.given_name.casefold()
                        and known.family_name.casefold() == carer.family_name.casefold()
                    ),
                    None,
                )
            if guardian is not None and not dry_run:
                guardian.given_name, guardian.family_name = carer.given_name, carer.family_name
                guardian.phone = carer.phone or guardian.phone
                guardian.updated_at = now
            if guardian is None:
                guardian = Guardian(
                    school_id=school_id,
                    given_name=carer.given_name,
                    family_name=carer.family_name,
                    email=carer.email,
                    phone=carer.phone,
                    created_at=now,
                    updated_at=now,
                )
                summary.guardians_created += 1
                if carer.email:
                    guardians[carer.email.lower()] = guardian
                if not dry_run:
                    session.add(guardian)
                    session.flush()
            if dry_run:
                # Nothing new is flushed, so a new pupil or carer has no id yet: its link is new.
                new_link = pupil.id is None or guardian.id is None
                if new_link or repository.link(session, pupil.id, guardian.id) is None:
                    summary.links_created += 1
                continue
            link = repository.link(session, pupil.id, guardian.id)
            if link is None:
                session.add(
                    GuardianLink(
                        pupil_id=pupil.id,
                        guardian_id=guardian.id,
                        school_id=school_id,
                        relationship=carer.relationship,
                        parental_responsibility=carer.parental_responsibility,
                        created_at=now,
                    )
                )
                summary.links_created += 1
            else:
                link.relationship = carer.relationship
                link.parental_responsibility = carer.parental_responsibility
        progress("importing", done, len(rows))
    if not dry_run:
        session.flush()
        bump_roster_version(session, school_id)
        consents.announce_changes(
            session,
            school_id,
            purposes,
            known_pupils,
            before,
            cause=ChangeCause.pupils_imported,
            now=now,
        )
    return summary


def import_csv_file(
    database: Database,
    school: str,
    path: Path,
    actor: str,
    dry_run: bool,
    progress: Progress = _quiet,
    max_rows: int = 10_000,
    clock: Clock = utcnow,
) -> ImportSummary:
    """The CLI's way in: one transaction, audited like the HTTP import. The CLI is its own entry
    point, so it holds the clock here, as the app's context does for a request."""
    with database.session() as session:
        summary = import_csv(
            session,
            school,
            path.read_bytes(),
            actor=actor,
            dry_run=dry_run,
            max_rows=max_rows,
            progress=progress,
            now=clock(),
        )
        if not dry_run:
            audit.append(
                session,
                actor=actor,
                school=school,
                action="pupils.imported",
                details=summary.model_dump(),
            )
    return summary
