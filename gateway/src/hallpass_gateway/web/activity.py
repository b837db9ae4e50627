"""Before an activity is photographed or filmed (C7): choose a class and what the pictures are
for, and see at a glance who may appear, who must stay out of shot, and who is restricted.

The answer is the consent API's class sheet, asked afresh each time (C5: never cached). A
restricted pupil is shown as restricted and nothing more: the reason is for the DSL only (C12).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hallpass_gateway.web.api import PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.office import not_allowed
from hallpass_gateway.web.pages import as_uuid, long_date, trouble
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import STAFF_ROLES, TokenVerifier

SECTIONS.append(Section("/app/activity", "activity.title", STAFF_ROLES))


def activity_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/app/activity", response_class=HTMLResponse)
    async def who_may_appear(request: Request) -> Response:
        """Choose a class and a purpose; the class's consent sheet split into who may appear,
        who must stay out of shot and who is restricted. Printable (the print style hides the
        page's navigation and forms)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(STAFF_ROLES):
            return not_allowed(request)
        t = Translator(language_of(request))
        chosen_class = request.query_params.get("class_id", "")
        chosen_purpose = request.query_params.get("purpose", "")
        async with PageApi(request.app, request) as api:
            classes = await api.get("/consent/v1/classes")
            purposes = await api.get("/consent/v1/purposes")
            for answer in (classes, purposes):
                if not answer.ok:
                    return trouble(request, answer.status, answer.detail)
            class_ids = {c["id"] for c in classes.body}
            codes = {p["code"]: p["title"] for p in purposes.body}
            errors: dict[str, str] = {}
            class_id = as_uuid(chosen_class) if chosen_class else None
            if chosen_class and class_id not in class_ids:
                errors["class_id"] = t("activity.no_such_class")
            if chosen_purpose and chosen_purpose not in codes:
                errors["purpose"] = t("activity.no_such_purpose")
            sheet: dict[str, Any] | None = None
            if chosen_class and chosen_purpose and not errors:
                answer = await api.get(f"/consent/v1/classes/{class_id}/consent-sheet")
                if not answer.ok:
                    return trouble(request, answer.status, answer.detail)
                sheet = answer.body
        groups = _groups(sheet, chosen_purpose) if sheet is not None else None
        return render(
            request,
            "activity/sheet.html",
            status=422 if errors else 200,
            title=t("activity.title"),
            classes=classes.body,
            purposes=purposes.body,
            class_id=class_id or "",
            purpose=chosen_purpose if chosen_purpose in codes else "",
            purpose_title=codes.get(chosen_purpose, ""),
            errors=errors,
            sheet=sheet,
            groups=groups,
            at=long_date(t, sheet["at"]) if sheet is not None else "",
        )

    return router


def _groups(sheet: dict[str, Any], purpose: str) -> dict[str, list[dict[str, Any]]]:
    """The class's pupils for one purpose: may appear, stay out of shot, restricted.

    A restricted pupil is in the last group whatever any carer said (C12), and no reason is
    carried into the page for them.
    """
    groups: dict[str, list[dict[str, Any]]] = {"may": [], "out": [], "restricted": []}
    for row in sheet["rows"]:
        if row["restricted"]:
            groups["restricted"].append({"name": row["name"], "pupil_id": row["pupil_id"]})
            continue
        cell = next((c for c in row["cells"] if c["purpose"] == purpose), None)
        # No answer for the purpose is no (fail closed, C2).
        allowed = cell is not None and bool(cell["allowed"])
        reason = cell["reason"] if cell is not None else "no_record"
        entry = {"name": row["name"], "pupil_id": row["pupil_id"], "reason": reason}
        groups["may" if allowed else "out"].append(entry)
    for members in groups.values():
        members.sort(key=lambda entry: str(entry["name"]).casefold())
    return groups
