"""The school office's pages: find pupils and carers, record a decision given on paper, on the
telephone or by email, import the MIS export, see which grants lapse soon, and issue a carer's
invitation code.

Every page is built from the consent API's own answers, as the signed-in person, so the API's
role rules (only the office, an admin, the head or a deputy register decisions) hold here too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from hallpass_gateway.web.api import Answer, PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.pages import as_uuid, long_date, pupil_name, trouble
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Principal, Role, TokenVerifier

# The consent API's registrars: who may record a decision, import and issue codes (A1).
OFFICE_ROLES = frozenset({Role.office, Role.admin, Role.head, Role.deputy})
# How a decision reached the office: the consent API's methods that a member of staff records
# (the parent app records its own answers).
STAFF_METHODS = ("paper", "phone", "email", "electronic")
# Every year group the consent API knows (-1 nursery, 0 reception, 1 to 14): "the whole school".
ALL_YEAR_GROUPS = list(range(-1, 15))
# The import's own ceiling is 5 MB; a little more is read so an oversized file still reaches
# the API and is refused there with its own words.
_MAX_UPLOAD = 5 * 1024 * 1024 + 1
# A search lists at most this many pupils; a narrower name or a class finds the rest.
MAX_RESULTS = 200
RENEWAL_WINDOWS = (7, 30, 60, 90)
# A scan is read up to the largest size a deployment may allow, plus one byte: the consent API
# applies the school's own limit and says so in its own words.
_MAX_SCAN = 100 * 1024 * 1024 + 1
# The API's refusals of a scan, shown next to the file field rather than above the form.
_SCAN_PROBLEMS = frozenset(
    {"unsupported_scan_type", "scan_too_large", "empty_scan", "too_many_scans", "payload_too_large"}
)

SECTIONS.append(Section("/app/office", "office.title", OFFICE_ROLES))


def not_allowed(request: Request) -> Response:
    t = Translator(language_of(request))
    return render(
        request,
        "message.html",
        status=403,
        title=t("site.error_title"),
        message=t("site.not_allowed"),
    )


def field_errors(answer: Answer, fields: Sequence[str]) -> tuple[dict[str, str], str]:
    """The API's problems placed next to the form's fields; the rest said above the form."""
    placed: dict[str, str] = {}
    body = answer.body if isinstance(answer.body, dict) else {}
    for problem in body.get("problems") or []:
        where = str(problem.get("where") or "")
        for name in fields:
            if where.endswith(name) and name not in placed:
                placed[name] = str(problem.get("detail") or "")
    general = "" if placed else answer.detail
    return placed, general


def _placed(problem: Mapping[str, Any]) -> dict[str, str]:
    """An import problem as its table shows it: row, column, problem (the API says where as
    ``row 3, column year_group``; a problem with the whole file has no row)."""
    where = str(problem.get("where") or "")
    row, column = "", where
    if where.startswith("row ") and ", column " in where:
        row, _, column = where[len("row ") :].partition(", column ")
    return {"row": row, "column": column, "detail": str(problem.get("detail") or "")}


def office_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def office_viewer(request: Request) -> Principal | None:
        principal = await viewer(request, verifier)
        return principal if principal.has_any(OFFICE_ROLES) else None

    @router.get("/app/office", response_class=HTMLResponse)
    async def find(request: Request) -> Response:
        """Find pupils and their carers by a name (the pupil's or a carer's) and by class."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        query = request.query_params.get("q", "").strip()[:100]
        chosen = request.query_params.get("class_id", "")
        class_id = as_uuid(chosen) if chosen else None
        async with PageApi(request.app, request) as api:
            classes = await api.get("/consent/v1/classes")
            if not classes.ok:
                return trouble(request, classes.status, classes.detail)
            class_names = {c["id"]: c["name"] for c in classes.body}
            searched = bool(query or chosen)
            error = ""
            families: list[dict[str, Any]] = []
            if chosen and (class_id is None or class_id not in class_names):
                error = t("office.find.no_such_class")
            elif searched:
                asked = {"class_ids": [class_id]} if class_id else {"year_groups": ALL_YEAR_GROUPS}
                found = await api.post("/consent/v1/families:resolve", json=asked)
                if not found.ok:
                    return trouble(request, found.status, found.detail)
                families = [f for f in found.body if _matches(f, query)]
        families.sort(key=lambda f: (f["pupil_family_name"].casefold(), f["pupil_given_name"]))
        return render(
            request,
            "office/find.html",
            status=422 if error else 200,
            title=t("office.title"),
            classes=classes.body,
            class_names=class_names,
            query=query,
            class_id=class_id or "",
            searched=searched and not error,
            error=error,
            families=families[:MAX_RESULTS],
            more=max(0, len(families) - MAX_RESULTS),
        )

    @router.get("/app/office/pupils/{pupil_id}", response_class=HTMLResponse)
    async def pupil(request: Request, pupil_id: str) -> Response:
        """One pupil: their carers, what is agreed now and the history, and a form to record
        a decision the office received."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        return await _pupil_page(request, pupil_id, recorded=request.query_params.get("recorded"))

    @router.post("/app/office/pupils/{pupil_id}/consents", response_class=HTMLResponse)
    async def record(request: Request, pupil_id: str) -> Response:
        """Record a decision from a signed form or an email, with where the evidence is and,
        for a paper form, its scan: the record and the scan are kept together or not at all
        (C10)."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        known = as_uuid(pupil_id)
        form = await request.form()
        values = {
            name: str(form.get(name, ""))[:300]
            for name in ("purpose", "decision", "guardian_id", "method", "evidence_ref", "key")
        }
        if known is None:
            return await _pupil_page(request, pupil_id)
        body = {
            "pupil_id": known,
            "purpose": values["purpose"],
            "decision": values["decision"],
            "guardian_id": values["guardian_id"] or None,
            "method": values["method"],
            # Sent as typed: a reference of spaces only is the API's to refuse, not to drop.
            "evidence_ref": values["evidence_ref"] or None,
        }
        # The form carries its own key so pressing the button twice records the decision once.
        headers = {"Idempotency-Key": values["key"]} if values["key"] else None
        scans = await _scans(form.getlist("scan"))
        # The form's files are spooled to temporary files; they are read, so let them go now.
        await form.close()
        async with PageApi(request.app, request) as api:
            if scans:
                recorded = await api.post_files(
                    "/consent/v1/consents:with-evidence",
                    data={"record": json.dumps(body)},
                    files=[("scan", scan) for scan in scans],
                    headers=headers,
                )
            else:
                recorded = await api.post("/consent/v1/consents", json=body, headers=headers)
        if recorded.ok:
            made = recorded.body["record"] if scans else recorded.body
            return RedirectResponse(
                f"/app/office/pupils/{known}?recorded={made['id']}", status_code=303
            )
        errors, general = field_errors(
            recorded, ("purpose", "decision", "guardian_id", "method", "evidence_ref")
        )
        if recorded.problem_code in _SCAN_PROBLEMS:
            errors, general = {**errors, "scan": recorded.detail}, ""
        return await _pupil_page(
            request,
            known,
            status=recorded.status,
            values=values,
            errors=errors,
            error=general,
        )

    @router.post("/app/office/guardians/{guardian_id}/invitations", response_class=HTMLResponse)
    async def invite(request: Request, guardian_id: str) -> Response:
        """A carer's one-time invitation code, shown on this page only (the API keeps no copy)."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        form = await request.form()
        back = as_uuid(form.get("pupil_id", ""))
        carer_id = as_uuid(guardian_id)
        if carer_id is None:
            return trouble(request, 404, t("office.invite.no_such_carer"))
        async with PageApi(request.app, request) as api:
            carer = await api.get(f"/consent/v1/guardians/{carer_id}")
            if not carer.ok:
                return trouble(request, carer.status, carer.detail)
            issued = await api.post(f"/consent/v1/guardians/{carer_id}/invitations")
        if not issued.ok:
            return trouble(request, issued.status, issued.detail)
        return render(
            request,
            "office/invitation.html",
            title=t("office.invite.title"),
            carer=carer.body,
            code=issued.body["code"],
            expires=long_date(t, issued.body["expires_at"]),
            back=back,
        )

    @router.get("/app/office/import", response_class=HTMLResponse)
    async def import_form(request: Request) -> Response:
        """Upload the MIS export (CSV) of pupils and carers."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        return render(
            request, "office/import.html", title=t("office.import.title"), summary=None, error=""
        )

    @router.post("/app/office/import", response_class=HTMLResponse)
    async def import_file(request: Request) -> Response:
        """Queue the file with the consent API's background import and follow its progress."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        async with request.form() as form:
            upload = form.get("file")
            dry_run = form.get("dry_run") == "yes"
            content = await upload.read(_MAX_UPLOAD) if isinstance(upload, UploadFile) else b""
        if not content:
            return render(
                request,
                "office/import.html",
                status=422,
                title=t("office.import.title"),
                summary=None,
                error=t("office.import.no_file"),
            )
        async with PageApi(request.app, request) as api:
            queued = await api.post_content(
                "/consent/v1/imports",
                content,
                content_type="text/csv",
                params={"dry_run": "true" if dry_run else "false"},
            )
        if queued.ok:
            return RedirectResponse(f"/app/office/imports/{queued.body['id']}", status_code=303)
        return render(
            request,
            "office/import.html",
            status=queued.status,
            title=t("office.import.title"),
            summary=None,
            error=queued.detail or t("site.try_again"),
        )

    @router.get("/app/office/imports/{import_id}", response_class=HTMLResponse)
    async def import_progress(request: Request, import_id: str) -> Response:
        """How far an import has got (the page reloads itself each second while it runs), then
        its summary or every bad row."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        ident = as_uuid(import_id)
        if ident is None:
            return trouble(request, 404, t("office.import.unknown"))
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/consent/v1/imports/{ident}")
        if not answer.ok:
            return trouble(request, answer.status, answer.detail)
        job = answer.body
        running = job["status"] in ("queued", "running")
        # Updating by itself is on unless the person turned it off (WCAG 2.2.1: a page that
        # refreshes lets its reader stop it); the reload is the HTTP Refresh header, so it needs
        # no script, and the status line is an aria-live region a screen reader announces.
        automatic = request.query_params.get("auto") != "off"
        page = render(
            request,
            "office/import_progress.html",
            title=t("office.import.title"),
            job=job,
            running=running,
            automatic=automatic,
            problems=[_placed(p) for p in job.get("problems") or []],
        )
        if running and automatic:
            page.headers["Refresh"] = "1"
        return page

    @router.get("/app/office/renewals", response_class=HTMLResponse)
    async def renewals(request: Request) -> Response:
        """Grants that lapse soon and have not been renewed: whom to ask again."""
        if await office_viewer(request) is None:
            return not_allowed(request)
        t = Translator(language_of(request))
        asked = request.query_params.get("within_days", "30")
        within = int(asked) if asked.isdigit() and int(asked) in RENEWAL_WINDOWS else 30
        async with PageApi(request.app, request) as api:
            due = await api.get("/consent/v1/renewals", params={"within_days": str(within)})
            if not due.ok:
                return trouble(request, due.status, due.detail)
            purposes = await api.get("/consent/v1/purposes")
            pupil_ids = sorted({row["pupil_id"] for row in due.body})
            families: list[dict[str, Any]] = []
            if pupil_ids:
                found = await api.post(
                    "/consent/v1/families:resolve", json={"pupil_ids": pupil_ids[:1000]}
                )
                families = found.body if found.ok else []
        titles = {p["code"]: p["title"] for p in purposes.body} if purposes.ok else {}
        names = {
            f["pupil_id"]: f"{f['pupil_given_name']} {f['pupil_family_name']}" for f in families
        }
        carers = {
            c["guardian_id"]: f"{c['given_name']} {c['family_name']}"
            for f in families
            for c in f["carers"]
        }
        rows = [
            {
                "pupil_id": row["pupil_id"],
                "pupil": names.get(row["pupil_id"], t("office.renewals.unknown_pupil")),
                "purpose": titles.get(row["purpose"], row["purpose"]),
                "carer": carers.get(row["guardian_id"] or "", ""),
                "email": row["guardian_email"] or "",
                "lapses": long_date(t, row["valid_until"]),
                "sort": row["valid_until"],
            }
            for row in due.body
        ]
        rows.sort(key=lambda row: (row["sort"], row["pupil"]))
        return render(
            request,
            "office/renewals.html",
            title=t("office.renewals.title"),
            rows=rows,
            within=within,
            windows=RENEWAL_WINDOWS,
        )

    return router


async def _scans(fields: Sequence[object]) -> list[tuple[str, bytes, str]]:
    """The files chosen in the form's scan field; an empty field sends a nameless empty part.

    The type the browser declared is passed on as it came: the API reads the type from the
    bytes and never trusts it."""
    scans: list[tuple[str, bytes, str]] = []
    for field in fields:
        if not isinstance(field, UploadFile) or not field.filename:
            continue
        data = await field.read(_MAX_SCAN)
        scans.append((field.filename, data, field.content_type or "application/octet-stream"))
    return scans


def _matches(family: Mapping[str, Any], query: str) -> bool:
    """A pupil whose name, or a carer's name or email, contains every word asked for."""
    if not query:
        return True
    said = [
        family["pupil_given_name"],
        family["pupil_family_name"],
        *(
            f"{carer['given_name']} {carer['family_name']} {carer.get('email') or ''}"
            for carer in family["carers"]
        ),
    ]
    haystack = " ".join(said).casefold()
    return all(word in haystack for word in query.casefold().split())


async def _pupil_page(
    request: Request,
    pupil_id: str,
    *,
    status: int = 200,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str = "",
    recorded: str | None = None,
) -> Response:
    t = Translator(language_of(request))
    known = as_uuid(pupil_id)
    if known is None:
        return trouble(request, 404, t("office.pupil.not_found"))
    async with PageApi(request.app, request) as api:
        pupil = await api.get(f"/consent/v1/pupils/{known}")
        if not pupil.ok:
            return trouble(request, pupil.status, pupil.detail)
        guardians = await api.get(f"/consent/v1/pupils/{known}/guardians")
        consents = await api.get(f"/consent/v1/pupils/{known}/consents")
        purposes = await api.get("/consent/v1/purposes")
        classes = await api.get("/consent/v1/classes")
    for answer in (guardians, consents, purposes, classes):
        if not answer.ok:
            return trouble(request, answer.status, answer.detail)
    carers = []
    for guardian in guardians.body:
        link: dict[str, Any] = next((c for c in guardian["children"] if c["pupil_id"] == known), {})
        carers.append(
            {
                **guardian,
                "name": f"{guardian['given_name']} {guardian['family_name']}",
                "relationship": link.get("relationship", ""),
                "responsible": link.get("parental_responsibility", True),
            }
        )
    carer_names = {carer["id"]: carer["name"] for carer in carers}
    titles = {p["code"]: p["title"] for p in purposes.body}
    history = sorted(consents.body["history"], key=lambda r: r["recorded_at"], reverse=True)
    class_names = {c["id"]: c["name"] for c in classes.body}
    scans: dict[str, list[Any]] = {}
    async with PageApi(request.app, request) as api:
        for record in history:
            if record.get("scans"):
                listed = await api.get(f"/consent/v1/consents/{record['id']}/evidence")
                # A role that may record but not read scans sees the count, not the links.
                scans[record["id"]] = listed.body if listed.ok else []
    return render(
        request,
        "office/pupil.html",
        status=status,
        title=pupil_name(pupil.body),
        pupil=pupil.body,
        class_name=class_names.get(pupil.body["class_id"] or "", ""),
        carers=carers,
        carer_names=carer_names,
        titles=titles,
        purposes=purposes.body,
        effective=consents.body["effective"],
        history=history,
        scans=scans,
        long_date=lambda value: long_date(t, value),
        methods=STAFF_METHODS,
        # A fresh key each time the form is shown: a corrected form is a new request.
        values={**(values or {}), "key": str(uuid.uuid4())},
        errors=errors or {},
        error=error,
        recorded=recorded is not None,
    )
