"""The DSL's pages in a real browser: setting and lifting a safeguarding restriction (C12, the
reason seen by the DSL alone), replying to a carer's concern (E7, E1, E5, E8) and reading the
reports of offensive messages (E10); other staff are turned away."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as
from tests.web.test_office_pages import Enrolled, enrol

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_dsl_pages")]


def _api(site: Site, role: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {site.token(role, **kwargs.pop('claims', {}))}"}
    with httpx.Client(base_url=site.base_url, headers=headers) as client:
        return client.request(method, path, **kwargs)


def _granted(site: Site, enrolled: Enrolled) -> None:
    recorded = _api(
        site,
        "office",
        "POST",
        "/consent/v1/consents",
        json={
            "pupil_id": enrolled.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": enrolled.guardian_id,
            "method": "paper",
            "evidence_ref": "DSL test form",
        },
    )
    assert recorded.status_code == 201, recorded.text


def _restrict(site: Site, enrolled: Enrolled, reason: str) -> None:
    restricted = _api(
        site,
        "dsl",
        "PUT",
        f"/consent/v1/pupils/{enrolled.pupil_id}/restriction",
        json={"kind": "looked_after", "reason": reason},
    )
    assert restricted.status_code == 200, restricted.text


def _restricted(site: Site, enrolled: Enrolled) -> bool:
    pupil = _api(site, "office", "GET", f"/consent/v1/pupils/{enrolled.pupil_id}")
    assert pupil.status_code == 200, pupil.text
    return bool(pupil.json()["restricted"])


def test_c12_the_dsl_restricts_a_pupil_and_the_office_sees_restricted_without_a_reason(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    _granted(site, enrolled)
    reason = f"Family court order FC-{uuid.uuid4().hex[:6]}: no photographs at all"
    sign_in_as(page, "dsl")
    page.goto("/app/restrictions")
    assert_accessible(page)

    page.get_by_label("Pupil's name").fill(enrolled.pupil_name)
    page.get_by_role("button", name="Find the pupil").click()
    expect(page.get_by_role("status")).to_have_text("Pupils found: 1")
    page.get_by_role("link", name=enrolled.pupil_name).click()
    assert_accessible(page)
    page.get_by_label("Kind").select_option(label="Court order")
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Save the restriction").click()

    expect(page.get_by_role("status")).to_contain_text(
        "This pupil now appears as restricted on every consent sheet and check"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(enrolled.pupil_name)
    assert "FC-" not in page.title()
    assert "FC-" not in page.url
    assert_accessible(page)
    assert _restricted(site, enrolled)

    sign_in_as(page, "office")
    page.goto("/app/activity")
    page.get_by_label("Class", exact=True).select_option(enrolled.class_id)
    page.get_by_label("What the pictures are for").select_option(
        label="Photos and video on the school website"
    )
    page.get_by_role("button", name="Show who may appear").click()

    expect(page.get_by_role("list", name="Restricted: never photograph or film (1)")).to_have_text(
        enrolled.pupil_name
    )
    expect(page.get_by_text("FC-", exact=False)).to_have_count(0)
    expect(page.get_by_text("court", exact=False)).to_have_count(0)
    assert_accessible(page)


def test_c12_the_dsl_lifts_a_restriction_only_once_confirmed(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    _restrict(site, enrolled, "Placed with foster carers; review in March")
    sign_in_as(page, "dsl")
    page.goto(f"/app/restrictions/{enrolled.pupil_id}")
    expect(page.locator("dt:text-is('Reason') + dd")).to_have_text(
        "Placed with foster carers; review in March"
    )

    page.get_by_role("link", name="Lift the restriction…").click()

    expect(page.get_by_role("alert")).to_contain_text("Lift this pupil's restriction?")
    assert_accessible(page)
    assert _restricted(site, enrolled)  # asking is not lifting
    page.get_by_role("button", name="Yes, lift the restriction").click()

    expect(page.get_by_role("status")).to_have_text(
        "The restriction was lifted; the pupil's consents apply again."
    )
    assert not _restricted(site, enrolled)
    expect(page.get_by_role("row", name=enrolled.pupil_name)).to_have_count(0)
    assert_accessible(page)


def test_c12_a_reason_too_short_is_refused_next_to_its_field_and_nothing_is_set(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    sign_in_as(page, "dsl")
    page.goto(f"/app/restrictions/{enrolled.pupil_id}")

    page.get_by_label("Kind").select_option(label="Other")
    page.get_by_label("Reason").fill("no")
    page.get_by_role("button", name="Save the restriction").click()

    expect(page.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#reason-error")).to_be_visible()
    assert not _restricted(site, enrolled)
    assert_accessible(page)


def _concern(site: Site, enrolled: Enrolled) -> tuple[str, str]:
    subject = f"Playground {uuid.uuid4().hex[:4]}"
    raised = _api(
        site,
        "parent",
        "POST",
        "/comms/v1/pastoral/concerns",
        claims={"guardian_id": enrolled.guardian_id},
        json={
            "subject": subject,
            "body": "Gwen was upset at break.",
            "pupil_id": enrolled.pupil_id,
        },
    )
    assert raised.status_code == 201, raised.text
    return str(raised.json()["id"]), subject


def test_e7_e1_the_dsl_replies_to_a_concern_seeing_who_is_copied_and_when_it_goes(
    page: Page, site: Site
) -> None:
    enrolled = enrol(site)
    concern_id, subject = _concern(site, enrolled)
    sign_in_as(page, "dsl")
    page.goto(f"/app/pastoral/{concern_id}")
    assert_accessible(page)
    expect(
        page.get_by_label("Sensitive: the email carries a secure link, not the words")
    ).to_be_checked()

    page.get_by_label("Your reply").fill("Thank you for telling us. We will talk with Gwen today.")
    page.get_by_role("button", name="Preview the reply").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check the reply before it goes")
    expect(page.locator("dd").filter(has_text="The carer who raised the concern")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("A secure link: the email holds no words")
    expect(page.locator("main")).to_contain_text(f"Re: {subject}")
    copied = page.locator("dt:text-is('Copied to') + dd")
    expect(copied).to_contain_text("@demo.sch.uk")
    assert_accessible(page)
    page.get_by_role("button", name="Send the reply").click()

    status = page.get_by_role("status")
    expect(status).to_contain_text("Your reply is on its way and the concern is marked answered.")
    expect(status).to_contain_text("Copied to:")
    message_id = page.get_by_role("link", name="Follow the reply's delivery").get_attribute("href")
    assert message_id is not None
    sent = _api(site, "dsl", "GET", f"/comms/v1/messages/{message_id.rsplit('/', 1)[-1]}")
    assert sent.status_code == 200, sent.text
    assert sent.json()["sensitivity"] == "sensitive"
    # When it goes is the API's own answer (E8), whatever the hour the test runs at.
    when = "It is held until" if sent.json()["scheduled_for"] else "It goes now."
    expect(status).to_contain_text(when)
    expect(page.locator("dt:text-is('Status') + dd")).to_have_text("Answered")
    assert_accessible(page)


def test_e7_an_empty_reply_is_refused_next_to_its_field(page: Page, site: Site) -> None:
    enrolled = enrol(site)
    concern_id, _ = _concern(site, enrolled)
    sign_in_as(page, "dsl")
    page.goto(f"/app/pastoral/{concern_id}")

    page.get_by_label("Your reply").fill("   ")
    page.get_by_role("button", name="Preview the reply").click()

    expect(page.locator("#body_text-error")).to_have_text("Write the reply first.")
    assert_accessible(page)


def test_e10_the_dsl_reads_the_reports_and_one_reports_words(page: Page, site: Site) -> None:
    words = f"Abusive reply {uuid.uuid4().hex[:6]} about the trip"
    filed = _api(
        site,
        "staff",
        "POST",
        "/comms/v1/reports",
        json={"received_from": "angry@example.net", "description": words},
    )
    assert filed.status_code == 201, filed.text
    reference = filed.json()["reference"]
    sign_in_as(page, "dsl")
    page.goto("/app")
    page.get_by_role("link", name="Reports of offensive messages").click()
    assert_accessible(page)

    page.get_by_role("link", name=reference).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Report {reference}")
    expect(page.locator("main")).to_contain_text(words)
    expect(page.locator("main")).to_contain_text("angry@example.net")
    assert_accessible(page)

    # Marked handled, with what was done: a blank answer is refused and nothing changes.
    page.get_by_role("button", name="Mark handled").click()
    expect(page.locator("#resolution:invalid")).to_have_count(1)  # the browser asks first
    page.get_by_label("What was done").fill("   ")
    page.locator("form[aria-labelledby=handled-heading]").evaluate("form => form.noValidate = true")
    page.get_by_role("button", name="Mark handled").click()
    expect(page.get_by_role("alert")).to_contain_text("Say what was done")
    assert_accessible(page)
    page.get_by_label("What was done").fill("Blocked the sender and rang the carer.")
    page.get_by_role("button", name="Mark handled").click()
    expect(page.get_by_role("status")).to_contain_text("Marked handled by dev-dsl@demo")
    expect(page.locator("main")).to_contain_text("Blocked the sender and rang the carer.")
    assert_accessible(page)
    page.goto("/app/reports")
    row = page.locator("tr", has=page.get_by_role("link", name=reference))
    expect(row).to_contain_text("Handled")


@pytest.mark.parametrize("person", ["office", "staff"])
def test_other_staff_are_turned_away_from_the_dsl_pages(
    page: Page, site: Site, person: str
) -> None:
    enrolled = enrol(site)
    concern_id, _ = _concern(site, enrolled)
    sign_in_as(page, person)

    for path in (
        "/app/restrictions",
        f"/app/restrictions/{enrolled.pupil_id}",
        f"/app/restrictions/{enrolled.pupil_id}/lift",
        f"/app/pastoral/{concern_id}",
        "/app/reports",
    ):
        response = page.goto(path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("alert")).to_have_text("Your role does not allow this page.")
    assert_accessible(page)
