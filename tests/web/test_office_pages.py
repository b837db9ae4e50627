"""The school office's pages in a real browser: find a pupil, record a paper decision, renewals
due and a carer's invitation code, in English and Welsh (the MIS import is test_office_import)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_office_pages")]


@dataclass(frozen=True)
class Enrolled:
    """A class of its own with one pupil and one carer, made through the consent API."""

    class_id: str
    class_name: str
    pupil_id: str
    pupil_name: str
    guardian_id: str
    carer_name: str


def enrol(site: Site) -> Enrolled:
    """A fresh class, pupil and carer, so a test depends on no other test's data."""
    tag = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    with httpx.Client(base_url=f"{site.base_url}/consent/v1", headers=headers) as api:
        made = api.post("/classes", json={"name": f"Class {tag}", "year_group": 4})
        assert made.status_code == 201, made.text
        class_id = made.json()["id"]
        family = f"Pritchard{tag}"
        pupil = api.post(
            "/pupils",
            json={
                "mis_id": f"T{tag}",
                "given_name": "Gwenllian",
                "family_name": family,
                "year_group": 4,
                "class_id": class_id,
            },
        )
        assert pupil.status_code == 201, pupil.text
        carer = api.post(
            "/guardians",
            json={
                "given_name": "Rhian",
                "family_name": family,
                "email": f"rhian.{tag}@parents.example.org",
                "children": [{"pupil_id": pupil.json()["id"]}],
            },
        )
        assert carer.status_code == 201, carer.text
    return Enrolled(
        class_id=class_id,
        class_name=f"Class {tag}",
        pupil_id=pupil.json()["id"],
        pupil_name=f"Gwenllian {family}",
        guardian_id=carer.json()["id"],
        carer_name=f"Rhian {family}",
    )


def test_the_office_finds_a_pupil_by_their_carers_name(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "office")

    page.goto("/app/office")
    assert_accessible(page)
    page.get_by_label("Name", exact=True).fill(enrolled.carer_name)
    page.get_by_role("button", name="Search").click()

    expect(page.get_by_role("status")).to_have_text("Pupils found: 1")
    expect(page.get_by_role("link", name=enrolled.pupil_name)).to_have_attribute(
        "href", f"/app/office/pupils/{enrolled.pupil_id}"
    )
    assert_accessible(page)


def test_the_office_records_a_paper_consent_and_it_shows_on_the_pupil_and_the_sheet(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{enrolled.pupil_id}")
    assert_accessible(page)

    page.get_by_label("Purpose").select_option("website_photo")
    page.get_by_role("radio", name="Agreed").check()
    page.get_by_label("Carer who decided").select_option(enrolled.guardian_id)
    page.get_by_label("How it reached the school").select_option("paper")
    page.get_by_label("Evidence reference").fill("Admission form 4471")
    page.get_by_role("button", name="Record the decision").click()

    expect(page.get_by_role("status")).to_have_text("The decision is recorded.")
    history = page.locator("table", has=page.get_by_role("columnheader", name="Given by"))
    expect(history.locator("tbody tr")).to_have_count(1)
    expect(history.locator("tbody tr")).to_contain_text("Signed paper form")
    expect(history.locator("tbody tr")).to_contain_text("Admission form 4471")
    expect(history.locator("tbody tr")).to_contain_text(enrolled.carer_name)
    assert_accessible(page)
    page.goto(f"/app/activity?class_id={enrolled.class_id}&purpose=website_photo")
    expect(page.get_by_role("list", name="May appear (1)")).to_have_text(enrolled.pupil_name)
    assert_accessible(page)


def test_the_office_records_a_refusal_taken_on_the_telephone(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{enrolled.pupil_id}")

    page.get_by_label("Purpose").select_option("social_media_photo")
    page.get_by_role("radio", name="Refused").check()
    page.get_by_label("How it reached the school").select_option("phone")
    page.get_by_label("Evidence reference").fill("Call note 2026-118")
    page.get_by_role("button", name="Record the decision").click()

    history = page.locator("table", has=page.get_by_role("columnheader", name="Given by"))
    expect(history.locator("tbody tr")).to_contain_text("Telephone call")
    expect(history.locator("tbody tr")).to_contain_text("Call note 2026-118")
    assert_accessible(page)


def test_a_decision_without_evidence_is_refused_next_to_the_field(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{enrolled.pupil_id}")

    page.get_by_role("radio", name="Refused").check()
    # Spaces only: the browser lets it through, the API refuses it.
    page.get_by_label("Evidence reference").fill("   ")
    page.get_by_role("button", name="Record the decision").click()

    expect(page.get_by_label("Evidence reference")).to_have_attribute(
        "aria-describedby", "evidence_ref-hint evidence_ref-error"
    )
    expect(page.locator("#evidence_ref-error")).to_have_attribute("role", "alert")
    expect(page.get_by_role("columnheader", name="Given by")).to_have_count(0)
    assert_accessible(page)


def test_the_office_issues_a_carers_invitation_code_shown_once(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{enrolled.pupil_id}")

    page.get_by_role("button", name=f"Issue an invitation code for {enrolled.carer_name}").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Invitation code")
    expect(page.locator(".code")).to_have_text(re.compile(r"^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$"))
    expect(page.get_by_role("status")).to_contain_text(enrolled.carer_name)
    code = page.locator(".code").inner_text().strip()
    assert_accessible(page)
    page.get_by_role("link", name="Back to the pupil").click()
    expect(page.get_by_text(code)).to_have_count(0)


def test_renewals_due_lists_grants_lapsing_soon(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat()
    recorded = httpx.post(
        f"{site.base_url}/consent/v1/consents",
        headers=headers,
        json={
            "pupil_id": enrolled.pupil_id,
            "purpose": "print_publication",
            "decision": "granted",
            "guardian_id": enrolled.guardian_id,
            "method": "paper",
            "evidence_ref": "Renewal test form",
            "valid_until": soon,
        },
    )
    assert recorded.status_code == 201, recorded.text
    sign_in_as(page, "office")

    page.goto("/app/office/renewals?within_days=90")

    expect(page.get_by_role("heading", level=1)).to_have_text("Renewals due")
    row = page.get_by_role("row", name=enrolled.pupil_name)
    expect(row).to_contain_text(enrolled.carer_name)
    assert_accessible(page)


def test_the_staff_console_offers_the_office_its_pages(page: Page, site: Site) -> None:
    sign_in_as(page, "office")

    page.goto("/app")

    expect(page.get_by_role("link", name="School office")).to_have_attribute("href", "/app/office")
    expect(page.get_by_role("link", name="Who may appear?")).to_have_attribute(
        "href", "/app/activity"
    )
    assert_accessible(page)


def test_a_teacher_is_not_shown_the_office_pages(page: Page, site: Site) -> None:
    sign_in_as(page, "staff")

    response = page.goto("/app/office")

    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("alert")).to_have_text("Your role does not allow this page.")
    assert_accessible(page)


def test_the_office_page_speaks_welsh(page: Page, site: Site) -> None:
    sign_in_as(page, "office")

    page.goto("/app/office?lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Swyddfa'r ysgol")
    expect(page.get_by_role("button", name="Chwilio")).to_be_visible()
    assert_accessible(page)
