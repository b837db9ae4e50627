"""Leadership and safeguarding pages in a real browser: approving outside mail, the audit trail
verified, the mail settings, and the DSL's restrictions list."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_leadership_pages")]


def _api(site: Site, role: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {site.token(role)}"}
    with httpx.Client(base_url=site.base_url, headers=headers) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _pupil(site: Site, given: str) -> str:
    made = _api(
        site,
        "office",
        "POST",
        "/consent/v1/pupils",
        json={
            "mis_id": f"LEAD{uuid.uuid4().hex[:8]}",
            "given_name": given,
            "family_name": "Howells",
            "year_group": 5,
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_the_head_sees_the_audit_trail_verified(page: Page, site: Site) -> None:
    sign_in_as(page, "head")
    page.goto("/app")
    page.get_by_role("link", name="Audit trail").click()

    expect(page.locator("#audit-verdict")).to_contain_text("Verified: the trail is whole")
    expect(page.locator("main table tbody tr").first).to_be_visible()
    assert_accessible(page)


def test_the_audit_trail_filters_by_service_and_action(page: Page, site: Site) -> None:
    _pupil(site, "Dylan")
    sign_in_as(page, "head")
    page.goto("/app/audit")

    page.get_by_label("Service").select_option("consent")
    page.get_by_label("Action").fill("pupil.created")
    page.get_by_role("button", name="Show").click()

    actions = page.locator("main table tbody tr td:nth-child(4)")
    expect(actions.first).to_have_text("pupil.created")
    assert set(actions.all_inner_texts()) == {"pupil.created"}
    expect(page.locator("#audit-verdict")).to_contain_text("Verified")
    assert_accessible(page)


def test_the_deputy_approves_outside_mail_and_it_leaves_the_list(page: Page, site: Site) -> None:
    subject = f"Referral {uuid.uuid4().hex[:6]}"
    held = _api(
        site,
        "staff",
        "POST",
        "/comms/v1/messages",
        json={
            "recipients": {"addresses": ["referrals@council.gov.uk"]},
            "subject": subject,
            "body_text": "Please see the notes we discussed.",
        },
    )
    assert held.status_code == 202, held.text
    sign_in_as(page, "deputy")
    page.goto("/app/approvals")
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    assert_accessible(page)

    page.locator(f'form[action="/app/approvals/{held.json()["id"]}"] button').click()

    expect(page.get_by_role("status")).to_have_text("Approved: the message will go out.")
    expect(page.get_by_role("heading", name=subject)).to_have_count(0)
    assert_accessible(page)
    message = _api(site, "head", "GET", f"/comms/v1/messages/{held.json()['id']}")
    assert message.json()["approval"] == "approved"


def test_a_teacher_is_not_shown_the_approvals(page: Page, site: Site) -> None:
    sign_in_as(page, "staff")

    page.goto("/app/approvals")

    expect(page.get_by_role("alert")).to_have_text("Your role does not allow this page.")
    assert_accessible(page)


def test_the_head_changes_the_secure_link_days_and_sees_them_saved(page: Page, site: Site) -> None:
    sign_in_as(page, "head")
    page.goto("/app/mail-settings")
    expect(page.get_by_label("The school's mail domains")).to_have_value("demo.sch.uk")
    assert_accessible(page)

    page.get_by_label("Days a secure link works (1 to 90)").fill("21")
    page.get_by_role("button", name="Save the mail settings").click()

    expect(page.get_by_role("status")).to_have_text("The mail settings are saved.")
    expect(page.get_by_label("Days a secure link works (1 to 90)")).to_have_value("21")
    assert _api(site, "head", "GET", "/comms/v1/settings").json()["secure_view_days"] == 21
    assert_accessible(page)


def test_a_head_address_off_the_schools_domains_is_refused_next_to_its_field(
    page: Page, site: Site
) -> None:
    sign_in_as(page, "head")
    page.goto("/app/mail-settings")

    page.get_by_label("The head's address").fill("head@elsewhere.org")
    page.get_by_role("button", name="Save the mail settings").click()

    head = page.get_by_label("The head's address")
    expect(head).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#head_address-error")).to_be_visible()
    assert _api(site, "head", "GET", "/comms/v1/settings").json()["head_address"] == (
        "head@demo.sch.uk"
    )
    assert_accessible(page)


def test_the_dsl_sees_each_restriction_with_its_reason(page: Page, site: Site) -> None:
    pupil_id = _pupil(site, "Cerys")
    reason = f"Court order {uuid.uuid4().hex[:6]}: no contact with the birth father."
    restricted = _api(
        site,
        "dsl",
        "PUT",
        f"/consent/v1/pupils/{pupil_id}/restriction",
        json={"kind": "court_order", "reason": reason},
    )
    assert restricted.status_code == 200, restricted.text
    sign_in_as(page, "dsl")

    page.goto("/app/restrictions")

    row = page.get_by_role("row", name="Cerys Howells")
    expect(row).to_contain_text(reason)
    expect(row).to_contain_text("Court order")
    assert_accessible(page)


def test_the_head_is_not_shown_the_restrictions_reasons(page: Page, site: Site) -> None:
    sign_in_as(page, "head")

    page.goto("/app/restrictions")

    expect(page.get_by_role("alert")).to_have_text("Your role does not allow this page.")
    assert_accessible(page)


def test_the_approvals_page_speaks_welsh(page: Page, site: Site) -> None:
    sign_in_as(page, "head")

    page.goto("/app/approvals?lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Negeseuon yn aros am gymeradwyaeth")
    assert_accessible(page)
