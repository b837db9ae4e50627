"""CSV import of pupils and carers from an MIS export (docs/import.md lists the columns).

Every row is checked before anything is written; one bad row stops the whole file, and every
problem found is reported with its row and column so the office can fix the export in one go.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
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
# Longest value each named column may hold (the columns' sizes in the database).
MAX_LENGTH = {
    "mis_id": 64,
    "given_name": 100,
    "family_name": 100,
    "preferred_name": 100,
    "class": 100,
}

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


# --- checking the file --------------------------------------------------------------------------


@dataclass
class RowCheck:
    """The problems found on one line of the file, each placed by row and column."""

    line: int
    problems: list[ProblemDetail] = field(default_factory=list)

    def bad(self, column: str, code: str, detail: str) -> None:
        self.problems.append(
            ProblemDetail(code=code, where=f"row {self.line}, column {column}", detail=detail)
        )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            "The file is not UTF-8 text; export it as CSV UTF-8.", code="invalid_csv"
        ) from exc


def _header_problem(column: str, code: str, detail: str) -> ProblemDetail:
    return ProblemDetail(code=code, where=f"header.{column}", detail=detail)


def _check_header(header: list[str]) -> None:
    if not header:
        raise Unprocessable("The file is empty.", code="invalid_csv")
    problems = [
        *(
            _header_problem(c, "missing_column", f"The column '{c}' is required.")
            for c in REQUIRED
            if c not in header
        ),
        *(
            _header_problem(c, "unknown_column", f"'{c}' is not a documented column.")
            for c in header
            if c not in KNOWN
        ),
        *(
            _header_problem(c, "duplicate_column", f"'{c}' appears more than once.")
            for c in sorted({c for c in header if header.count(c) > 1})
        ),
    ]
    if problems:
        raise Unprocessable(
            "The header row is not right; nothing was imported.",
            code="invalid_csv",
            problems=problems,
        )


def _read_rows(reader: csv.DictReader[str], max_rows: int) -> list[dict[str | None, str]]:
    try:
        raw_rows = list(reader)
    except csv.Error as exc:
        raise Unprocessable(f"The file is not valid CSV: {exc}.", code="invalid_csv") from exc
    if not raw_rows:
        raise Unprocessable("The file has a header but no pupils.", code="invalid_csv")
    if len(raw_rows) > max_rows:
        raise Unprocessable(f"At most {max_rows} rows per file.", code="too_many_rows")
    return raw_rows


def _check_required(check: RowCheck, values: dict[str, str]) -> None:
    for column in REQUIRED:
        if not values.get(column):
            check.bad(column, "required", f"'{column}' is empty.")


def _check_lengths(check: RowCheck, values: dict[str, str]) -> None:
    for column, longest in MAX_LENGTH.items():
        if len(values.get(column, "")) > longest:
            check.bad(column, "too_long", f"'{column}' is too long.")


def _whole_number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _year_group(check: RowCheck, values: dict[str, str]) -> int:
    year = values.get("year_group", "")
    if not year:
        return 0  # already reported as required
    number = _whole_number(year)
    if number is not None and -1 <= number <= 14:
        return number
    check.bad(
        "year_group",
        "invalid_year_group",
        "year_group must be a whole number from -1 (nursery) to 14.",
    )
    return 0


def _check_mis_id(check: RowCheck, mis_id: str, first_line_of: dict[str, int]) -> None:
    if not mis_id:
        return  # already reported as required
    if mis_id in first_line_of:
        check.bad(
            "mis_id",
            "duplicate_mis_id",
            f"MIS id '{mis_id}' is also on row {first_line_of[mis_id]}.",
        )
    else:
        first_line_of[mis_id] = check.line


def _carer_email(check: RowCheck, n: int, given: str) -> str | None:
    if not given:
        return None
    try:
        return str(_email.validate_python(given))
    except ValidationError:
        check.bad(f"carer{n}_email", "invalid_email", f"'{given}' is not an email address.")
        return given


def _carer(check: RowCheck, n: int, values: dict[str, str]) -> CarerRow | None:
    fields = {f: values.get(f"carer{n}_{f}", "") for f in CARER_FIELDS}
    if not any(fields.values()):
        return None
    for f in ("given_name", "family_name"):
        if not fields[f]:
            check.bad(f"carer{n}_{f}", "required", f"carer{n} needs a {f}.")
    email = _carer_email(check, n, fields["email"])
    responsibility = fields["parental_responsibility"].lower() or "yes"
    if responsibility not in YES | NO:
        check.bad(f"carer{n}_parental_responsibility", "invalid_flag", "Use yes or no.")
    return CarerRow(
        fields["given_name"],
        fields["family_name"],
        email,
        fields["phone"] or None,
        fields["relationship"] or "parent",
        responsibility in YES,
    )


def _check_row(
    raw: dict[str | None, str], line: int, first_line_of: dict[str, int]
) -> tuple[PupilRow | None, list[ProblemDetail]]:
    """One line of the file as a pupil with carers, or every problem on it."""
    check = RowCheck(line)
    if None in raw:
        check.bad("-", "too_many_fields", "This row has more fields than the header.")
    values = {k: (v or "").strip() for k, v in raw.items() if k is not None}
    _check_required(check, values)
    _check_lengths(check, values)
    year_group = _year_group(check, values)
    mis_id = values.get("mis_id", "")
    _check_mis_id(check, mis_id, first_line_of)
    carers = [
        carer for n in range(1, MAX_CARERS + 1) if (carer := _carer(check, n, values)) is not None
    ]
    if check.problems:
        return None, check.problems
    row = PupilRow(
        line,
        mis_id,
        values["given_name"],
        values["family_name"],
        values.get("preferred_name") or None,
        year_group,
        values.get("class") or None,
        carers,
    )
    return row, []


def _refuse(problems: list[ProblemDetail]) -> Unprocessable:
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    return Unprocessable(
        f"{len(problems)} problem(s) in the file; nothing was imported."
        + (f" The first {MAX_REPORTED} are listed." if more else ""),
        code="invalid_csv",
        problems=shown,
    )


def parse(data: bytes, *, max_rows: int, progress: Progress = _quiet) -> list[PupilRow]:
    """Check every row; raise one problem listing all that is wrong, or return the rows."""
    reader = csv.DictReader(io.StringIO(_decode(data), newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    _check_header(header)
    reader.fieldnames = header
    raw_rows = _read_rows(reader, max_rows)
    rows: list[PupilRow] = []
    problems: list[ProblemDetail] = []
    first_line_of: dict[str, int] = {}
    for index, raw in enumerate(raw_rows):
        row, row_problems = _check_row(raw, index + 2, first_line_of)  # the header is line 1
        problems.extend(row_problems)
        if row is not None:
            rows.append(row)
        progress("checking", index + 1, len(raw_rows))
    if problems:
        raise _refuse(problems)
    return rows


# --- writing what the file says -----------------------------------------------------------------


@dataclass
class Import:
    """One import under way: what is already known of the school, and what has been done.

    In a dry run nothing is written; new classes, pupils and carers are still made (unsaved, so
    without ids) to be counted as a real run would count them.
    """

    session: Session
    school_id: str
    dry_run: bool
    now: dt.datetime
    summary: ImportSummary
    pupils: dict[str, Pupil]
    guardians: dict[str, Guardian]
    classes: dict[str, SchoolClass]


def _class_id(run: Import, row: PupilRow) -> uuid.UUID | None:
    if not row.class_name:
        return None
    school_class = run.classes.get(row.class_name)
    if school_class is None:
        school_class = SchoolClass(
            school_id=run.school_id,
            name=row.class_name,
            year_group=row.year_group,
            created_at=run.now,
        )
        run.classes[row.class_name] = school_class
        run.summary.classes_created += 1
        if not run.dry_run:
            repository.add(run.session, school_class)
    return school_class.id


def _pupil(run: Import, row: PupilRow, class_id: uuid.UUID | None) -> Pupil:
    pupil = run.pupils.get(row.mis_id)
    if pupil is None:
        run.summary.created += 1
        pupil = Pupil(
            school_id=run.school_id, mis_id=row.mis_id, created_at=run.now, archived_at=None
        )
        run.pupils[row.mis_id] = pupil
        new = True
    else:
        run.summary.updated += 1
        new = False
    if run.dry_run:
        return pupil
    pupil.given_name, pupil.family_name = row.given_name, row.family_name
    pupil.preferred_name, pupil.year_group = row.preferred_name, row.year_group
    pupil.class_id, pupil.updated_at = class_id, run.now
    if new:
        repository.add(run.session, pupil)
    else:
        repository.save(run.session)
    return pupil


def _known_carer(run: Import, pupil: Pupil, carer: CarerRow) -> Guardian | None:
    if carer.email:
        return run.guardians.get(carer.email.lower())
    if pupil.id is None:
        return None
    # Without an email, the same names already linked to this pupil are this carer.
    return next(
        (
            known
            for _link, known in repository.guardians_of_pupils(
                run.session, run.school_id, [pupil.id]
            )
            if known.given_name.casefold() == carer.given_name.casefold()
            and known.family_name.casefold() == carer.family_name.casefold()
        ),
        None,
    )


def _guardian(run: Import, pupil: Pupil, carer: CarerRow) -> Guardian:
    guardian = _known_carer(run, pupil, carer)
    if guardian is not None:
        if not run.dry_run:
            guardian.given_name, guardian.family_name = carer.given_name, carer.family_name
            guardian.phone = carer.phone or guardian.phone
            guardian.updated_at = run.now
        return guardian
    guardian = Guardian(
        school_id=run.school_id,
        given_name=carer.given_name,
        family_name=carer.family_name,
        email=carer.email,
        phone=carer.phone,
        created_at=run.now,
        updated_at=run.now,
    )
    run.summary.guardians_created += 1
    if carer.email:
        run.guardians[carer.email.lower()] = guardian
    if not run.dry_run:
        repository.add(run.session, guardian)
    return guardian


def _count_link(run: Import, pupil: Pupil, guardian: Guardian) -> None:
    # Nothing new is saved in a dry run, so a new pupil or carer has no id yet: its link is new.
    new = pupil.id is None or guardian.id is None
    if new or repository.link(run.session, pupil.id, guardian.id) is None:
        run.summary.links_created += 1


def _link(run: Import, pupil: Pupil, guardian: Guardian, carer: CarerRow) -> None:
    if run.dry_run:
        _count_link(run, pupil, guardian)
        return
    link = repository.link(run.session, pupil.id, guardian.id)
    if link is None:
        # Saved with the next statement: links need no id, and many are written together.
        repository.add(
            run.session,
            flush=False,
            row=GuardianLink(
                pupil_id=pupil.id,
                guardian_id=guardian.id,
                school_id=run.school_id,
                relationship=carer.relationship,
                parental_responsibility=carer.parental_responsibility,
                created_at=run.now,
            ),
        )
        run.summary.links_created += 1
    else:
        link.relationship = carer.relationship
        link.parental_responsibility = carer.parental_responsibility


def _import_row(run: Import, row: PupilRow) -> None:
    pupil = _pupil(run, row, _class_id(run, row))
    for carer in row.carers:
        _link(run, pupil, _guardian(run, pupil, carer), carer)


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
    return import_rows(session, school_id, rows, dry_run=dry_run, progress=progress, now=now)


def import_rows(
    session: Session,
    school_id: str,
    rows: list[PupilRow],
    *,
    dry_run: bool,
    progress: Progress = _quiet,
    now: dt.datetime,
) -> ImportSummary:
    """Write rows that ``parse`` passed, in the caller's transaction (a background import checks
    the file first, outside any transaction, and writes in a second step)."""
    require_school(session, school_id)
    run = Import(
        session=session,
        school_id=school_id,
        dry_run=dry_run,
        now=now,
        summary=ImportSummary(
            rows=len(rows),
            created=0,
            updated=0,
            guardians_created=0,
            links_created=0,
            classes_created=0,
            dry_run=dry_run,
        ),
        pupils=repository.pupils_by_mis_id(session, school_id, [r.mis_id for r in rows]),
        guardians=repository.guardians_by_email(
            session, school_id, {c.email for r in rows for c in r.carers if c.email}
        ),
        classes={c.name: c for c in repository.classes(session, school_id)},
    )
    # Carers' parental responsibility decides whose refusal counts (C11): a re-import that changes
    # it can change a pupil's consent, and publishers must hear of it.
    purposes = consents.consent_purposes(session, school_id)
    known_pupils = [p.id for p in run.pupils.values()]
    before = {} if dry_run else consents.evaluate(session, school_id, purposes, known_pupils, now)
    for done, row in enumerate(rows, start=1):
        _import_row(run, row)
        progress("importing", done, len(rows))
    if not dry_run:
        repository.save(session)
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
    return run.summary


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
