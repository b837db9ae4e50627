"""Before an activity (C7), in a real browser: who may appear, who must stay out of shot, who is
restricted (never why), printable, in English and Welsh."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as
from tests.web.test_office_pages import Enrolled, enrol

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_activity_pages")]


def _granted(site: Site, enrolled: Enrolled, purpose: str) -> str:
    recorded = httpx.post(
        f"{site.base_url}/consent/v1/consents",
        headers={"Authorization": f"Bearer {site.token('office')}"},
        json={
            "pupil_id": enrolled.pupil_id,
            "purpose": purpose,
            "decision": "granted",
            "guardian_id": enrolled.guardian_id,
            "method": "paper",
            "evidence_ref": "Activity test form",
        },
    )
    assert recorded.status_code == 201, recorded.text
    return str(recorded.json()["id"])


def _choose(page: Page, enrolled: Enrolled, purpose_title: str) -> None:
    page.goto("/app/activity")
    assert_accessible(page)
    page.get_by_label("Class", exact=True).select_option(enrolled.class_id)
    page.get_by_label("What the pictures are for").select_option(label=purpose_title)
    page.get_by_role("button", name="Show who may appear").click()


def test_who_may_appear_lists_a_withdrawn_pupil_under_stay_out_of_shot(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    record_id = _granted(site, enrolled, "website_photo")
    withdrawn = httpx.post(
        f"{site.base_url}/consent/v1/consents/{record_id}:withdraw",
        headers={"Authorization": f"Bearer {site.token('office')}"},
        json={"method": "email", "evidence_ref": "Email from carer"},
    )
    assert withdrawn.status_code == 201, withdrawn.text
    sign_in_as(page, "staff")

    _choose(page, enrolled, "Photos and video on the school website")

    expect(page.get_by_role("list", name="Must stay out of shot (1)")).to_have_text(
        f"{enrolled.pupil_name} (withdrawn)"
    )
    expect(page.get_by_role("heading", name="May appear (0)")).to_be_visible()
    assert_accessible(page)


def test_a_restricted_pupil_is_listed_as_restricted_and_no_reason_is_shown(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    _granted(site, enrolled, "website_photo")
    restricted = httpx.put(
        f"{site.base_url}/consent/v1/pupils/{enrolled.pupil_id}/restriction",
        headers={"Authorization": f"Bearer {site.token('dsl')}"},
        json={"kind": "court_order", "reason": "Order of the family court, ref FC-1138"},
    )
    assert restricted.status_code in (200, 201), restricted.text
    sign_in_as(page, "staff")

    _choose(page, enrolled, "Photos and video on the school website")

    expect(page.get_by_role("list", name="Restricted: never photograph or film (1)")).to_have_text(
        enrolled.pupil_name
    )
    expect(page.get_by_role("heading", name="May appear (0)")).to_be_visible()
    expect(page.get_by_text("FC-1138")).to_have_count(0)
    expect(page.get_by_text("court", exact=False)).to_have_count(0)
    assert_accessible(page)


def test_the_printed_sheet_leaves_out_the_navigation_and_the_form(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "staff")
    page.goto(f"/app/activity?class_id={enrolled.class_id}&purpose=website_photo")

    page.emulate_media(media="print")

    expect(page.locator("header")).to_be_hidden()
    expect(page.locator("main form")).to_be_hidden()
    expect(page.get_by_role("list", name="Must stay out of shot (1)")).to_be_visible()
    assert_accessible(page)


def test_an_unknown_class_is_said_next_to_the_field(page: Page, site: Site) -> None:
    sign_in_as(page, "staff")

    response = page.goto(
        "/app/activity?class_id=00000000-0000-4000-8000-000000000000&purpose=website_photo"
    )

    assert response is not None
    assert response.status == 422
    expect(page.get_by_role("alert")).to_have_text("Choose one of the school's classes.")
    expect(page.get_by_label("Class", exact=True)).to_have_attribute(
        "aria-describedby", "class_id-error"
    )
    assert_accessible(page)


def test_who_may_appear_speaks_welsh(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "staff")

    page.goto(f"/app/activity?class_id={enrolled.class_id}&purpose=website_photo&lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pwy all ymddangos?")
    expect(page.get_by_role("list", name="Rhaid aros allan o'r llun (1)")).to_contain_text(
        "dim ateb eto"
    )
    assert_accessible(page)
