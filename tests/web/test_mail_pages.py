"""Staff mail pages in a real browser: a teacher writes to a class with a preview of who
receives it, the family's history shows it, the pastoral inbox for the DSL; English and Welsh."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from hallpass_gateway.web.people import SECTIONS
from hallpass_kit.auth import Principal, Role
from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_mail_pages")]


@dataclass(frozen=True)
class Class:
    class_id: str
    name: str
    pupil_id: str
    guardian_id: str


def _api(site: Site, role: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {site.token(role)}"}
    with httpx.Client(base_url=site.base_url, headers=headers) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _class_of_one(site: Site) -> Class:
    """A class of its own with one pupil and one carer, so tests do not lean on each other."""
    name = f"Willow {uuid.uuid4().hex[:6]}"
    made = _api(site, "office", "POST", "/consent/v1/classes", json={"name": name, "year_group": 4})
    assert made.status_code == 201, made.text
    class_id = made.json()["id"]
    pupil = _api(
        site,
        "office",
        "POST",
        "/consent/v1/pupils",
        json={
            "mis_id": f"WEB{uuid.uuid4().hex[:8]}",
            "given_name": "Nia",
            "family_name": "Pritchard",
            "year_group": 4,
            "class_id": class_id,
        },
    )
    assert pupil.status_code == 201, pupil.text
    carer = _api(
        site,
        "office",
        "POST",
        "/consent/v1/guardians",
        json={
            "given_name": "Rhian",
            "family_name": "Pritchard",
            "email": f"rhian.{uuid.uuid4().hex[:6]}@example.org",
            "children": [
                {
                    "pupil_id": pupil.json()["id"],
                    "relationship": "parent",
                    "parental_responsibility": True,
                }
            ],
        },
    )
    assert carer.status_code == 201, carer.text
    return Class(class_id, name, pupil.json()["id"], carer.json()["id"])


def _write(page: Page, willow: Class, subject: str, body: str) -> None:
    page.goto("/app/mail")
    page.get_by_label("Class", exact=True).select_option(willow.class_id)
    page.get_by_role("button", name="Choose").click()
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Message").fill(body)


def test_a_teachers_class_message_previews_leadership_copied_and_reaches_the_family_history(
    page: Page, site: Site
) -> None:
    willow = _class_of_one(site)
    subject = f"Forest school on Thursday {uuid.uuid4().hex[:4]}"
    sign_in_as(page, "staff")
    page.goto("/app")
    assert_accessible(page)
    page.get_by_role("link", name="Write to families").click()
    assert_accessible(page)

    _write(page, willow, subject, "Please send wellies and a waterproof coat.")
    assert_accessible(page)
    page.get_by_role("button", name="Preview who receives it").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check before sending")
    expect(page.locator("#preview-summary")).to_contain_text("Families it goes to: 1")
    expect(page.locator("#preview-cc")).to_contain_text("head@demo.sch.uk")
    expect(page.locator("#preview-cc")).to_contain_text("deputy@demo.sch.uk")
    expect(page.locator("#preview-when")).to_have_text(
        re.compile(r"goes at once|held until the next school morning")
    )
    assert_accessible(page)
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("accepted for sending")
    expect(page.get_by_role("heading", level=1)).to_have_text(subject)
    assert_accessible(page)

    page.context.clear_cookies()
    sign_in_as(page, "head")
    page.goto(f"/app/families?class_id={willow.class_id}")
    assert_accessible(page)
    page.get_by_role("link", name="Nia Pritchard").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Messages to the family of Nia Pritchard"
    )
    expect(page.get_by_role("rowheader", name=subject)).to_be_visible()
    assert_accessible(page)


def test_changing_the_message_after_the_preview_keeps_the_words_and_sends_nothing(
    page: Page, site: Site
) -> None:
    willow = _class_of_one(site)
    sign_in_as(page, "staff")
    _write(page, willow, "Trip money", "Please pay by Friday.")
    page.get_by_label("Who it is for").select_option(f"pupil:{willow.pupil_id}")
    page.get_by_role("button", name="Preview who receives it").click()
    expect(page.locator("#preview-summary")).to_contain_text("The family of Nia Pritchard")

    page.get_by_role("button", name="Change the message").click()

    expect(page.get_by_label("Message")).to_have_value("Please pay by Friday.")
    expect(page.get_by_label("Who it is for")).to_have_value(f"pupil:{willow.pupil_id}")
    history = _api(site, "head", "GET", f"/comms/v1/families/{willow.pupil_id}/messages")
    assert history.json()["items"] == []
    assert_accessible(page)


def test_a_refused_subject_is_shown_next_to_its_field(page: Page, site: Site) -> None:
    willow = _class_of_one(site)
    sign_in_as(page, "staff")
    _write(page, willow, "   ", "Words.")

    page.get_by_role("button", name="Preview who receives it").click()

    subject = page.get_by_label("Subject")
    expect(subject).to_have_attribute("aria-invalid", "true")
    expect(subject).to_have_attribute("aria-describedby", "subject-error")
    expect(page.locator("#subject-error")).to_have_attribute("role", "alert")
    assert_accessible(page)


def test_the_compose_page_speaks_welsh(page: Page, site: Site) -> None:
    sign_in_as(page, "staff")

    page.goto("/app/mail?lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ysgrifennu at deuluoedd")
    expect(page.get_by_label("Dosbarth", exact=True)).to_be_visible()
    assert_accessible(page)


def test_the_dsl_reads_a_carers_concern_and_the_reading_is_audited(page: Page, site: Site) -> None:
    willow = _class_of_one(site)
    subject = f"Lunchtimes {uuid.uuid4().hex[:4]}"
    carer_token = site.token("parent", guardian_id=willow.guardian_id)
    with httpx.Client(
        base_url=site.base_url, headers={"Authorization": f"Bearer {carer_token}"}
    ) as client:
        raised = client.post(
            "/comms/v1/pastoral/concerns",
            json={
                "subject": subject,
                "body": "Nia is upset at lunch.",
                "pupil_id": willow.pupil_id,
            },
        )
    assert raised.status_code == 201, raised.text
    sign_in_as(page, "dsl")
    page.goto("/app/pastoral")
    assert_accessible(page)

    page.get_by_role("link", name=subject).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(subject)
    expect(page.locator("main")).to_contain_text("Nia is upset at lunch.")
    assert_accessible(page)
    trail = _api(
        site,
        "head",
        "GET",
        "/comms/v1/audit",
        params={"action": "pastoral.read", "target": f"concern:{raised.json()['id']}"},
    )
    assert [entry["actor"] for entry in trail.json()["items"]] == ["dev-dsl@demo"]


def test_a_teacher_is_not_shown_the_pastoral_inbox(page: Page, site: Site) -> None:
    sign_in_as(page, "staff")

    page.goto("/app/pastoral")

    expect(page.get_by_role("alert")).to_have_text("Your role does not allow this page.")
    assert_accessible(page)


def test_pastoral_staff_alone_are_not_offered_the_pages_that_start_from_the_class_list() -> None:
    pastoral = Principal(sub="pastoral@demo", school="demo", roles=frozenset({Role.pastoral}))

    offered = {section.path for section in SECTIONS if section.open_to(pastoral)}

    assert "/app/pastoral" in offered
    assert not offered & {"/app/mail", "/app/families"}
