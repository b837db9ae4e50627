"""Consent requests in a real browser: the office asks a class's carers, a carer answers on the
page their personal link opens (no sign-in), the office sees the progress, reminds and closes,
and the link then says the request has closed. Axe on every page."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_consent_requests")]


@dataclass(frozen=True)
class Class:
    """A class of its own with two pupils, each with one carer who has an email address."""

    class_id: str
    class_name: str
    first: str
    first_carer: str
    second: str


def enrol(site: Site) -> Class:
    tag = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    with httpx.Client(base_url=f"{site.base_url}/consent/v1", headers=headers) as api:
        made = api.post("/classes", json={"name": f"Ash {tag}", "year_group": 5})
        assert made.status_code == 201, made.text
        class_id = made.json()["id"]
        ids = []
        for given in ("Cerys", "Dafydd"):
            pupil = api.post(
                "/pupils",
                json={
                    "mis_id": f"R{given[0]}{tag}",
                    "given_name": given,
                    "family_name": f"Morgan{tag}",
                    "year_group": 5,
                    "class_id": class_id,
                },
            )
            assert pupil.status_code == 201, pupil.text
            carer = api.post(
                "/guardians",
                json={
                    "given_name": "Siân",
                    "family_name": f"Morgan{tag}",
                    "email": f"sian.{given.lower()}.{tag}@parents.example.org",
                    "children": [{"pupil_id": pupil.json()["id"]}],
                },
            )
            assert carer.status_code == 201, carer.text
            ids += [pupil.json()["id"], carer.json()["id"]]
    return Class(class_id, f"Ash {tag}", ids[0], ids[1], ids[2])


def link_of(site: Site, request_id: str, guardian_id: str, round_: int = 1) -> str:
    """The carer's personal link as comms receives it to put in the email."""
    headers = {"Authorization": f"Bearer {site.token('service')}"}
    response = httpx.post(
        f"{site.base_url}/consent/v1/consent-requests/{request_id}/rounds/{round_}:links",
        headers=headers,
    )
    assert response.status_code == 200, response.text
    [carer] = [c for c in response.json()["carers"] if c["guardian_id"] == guardian_id]
    return f"/parents/requests/{carer['token']}"


def ask_the_class(page: Page, made: Class) -> str:
    """The office's form, filled as a person would; the request's id from the page reached."""
    page.goto("/app/requests")
    assert_accessible(page)
    page.get_by_role("link", name="Ask carers for consent").click()
    assert_accessible(page)
    page.get_by_label("Title").fill("Photos for the summer fair")
    page.get_by_label("Note to carers (optional)").fill("We would like to share the day.")
    page.get_by_role("checkbox", name="Photos and video on the school website").check()
    page.get_by_role("checkbox", name=made.class_name).check()
    page.get_by_role("button", name="Send the emails").click()
    expect(page.get_by_role("status")).to_contain_text("The request is stored")
    match = re.search(r"/app/requests/([0-9a-f-]{36})", page.url)
    assert match is not None, page.url
    return match.group(1)


def test_a_carer_answers_by_link_and_the_office_sees_the_class_progress(
    page: Page, site: Site
) -> None:
    made = enrol(site)
    sign_in_as(page, "office")
    request_id = ask_the_class(page, made)
    expect(page.get_by_text("0 of 2 pupils answered").first).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Cerys")).to_have_count(1)
    assert_accessible(page)
    link = link_of(site, request_id, made.first_carer)

    # The carer has no account here: a fresh browser context, nobody signed in.
    carer = page.context.browser.new_context(base_url=site.base_url, locale="en-GB")  # type: ignore[union-attr]
    parent = carer.new_page()
    parent.goto(link)
    expect(parent.get_by_role("heading", name="Photos for the summer fair")).to_be_visible()
    expect(parent.get_by_role("heading", name="For Cerys")).to_be_visible()
    assert_accessible(parent)
    parent.get_by_role("radio", name="Yes, I agree").check()
    parent.get_by_role("button", name="Send my answers").click()
    expect(parent.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(parent.get_by_role("row").filter(has_text="Cerys")).to_contain_text("Yes, I agree")
    assert_accessible(parent)

    page.reload()
    expect(page.get_by_text("1 of 2 pupils answered").first).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Cerys")).to_have_count(0)
    expect(page.get_by_role("listitem").filter(has_text="Dafydd")).to_have_count(1)
    page.goto("/app/requests")
    expect(
        page.get_by_role("row").filter(has_text="Photos for the summer fair").first
    ).to_contain_text("1 of 2 pupils answered")

    page.goto(f"/app/requests/{request_id}")
    page.get_by_role("button", name="Remind those who have not answered").click()
    expect(page.get_by_role("status")).to_contain_text("Reminders are on their way")
    assert_accessible(page)
    page.get_by_role("button", name="Close the request").click()
    expect(page.get_by_role("status")).to_contain_text("The request is closed")
    assert_accessible(page)

    parent.goto(link)
    expect(parent.get_by_role("heading", name="This request has closed")).to_be_visible()
    expect(parent.get_by_role("alert")).to_contain_text("has closed")
    assert_accessible(parent)
    carer.close()


def test_a_wrong_link_is_a_friendly_page(page: Page, site: Site) -> None:
    page.goto("/parents/requests/" + "x" * 43)

    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("This link is not known")
    assert_accessible(page)


def test_a_carer_answers_in_welsh(page: Page, site: Site) -> None:
    made = enrol(site)
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    created = httpx.post(
        f"{site.base_url}/consent/v1/consent-requests",
        json={
            "title": "Lluniau",
            "purposes": ["website_photo"],
            "scope": {"class_ids": [made.class_id]},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    link = link_of(site, created.json()["id"], made.first_carer)

    page.goto(link + "?lang=cy")
    assert_accessible(page)
    expect(page.locator("legend").first).to_contain_text("Lluniau a fideo ar wefan yr ysgol")
    page.get_by_role("radio", name="Nac ydw, nid wyf yn cytuno").check()
    page.get_by_role("button", name="Anfon fy atebion").click()

    expect(page.get_by_role("heading", name="Diolch")).to_be_visible()
    history = httpx.get(
        f"{site.base_url}/consent/v1/pupils/{made.first}/consents", headers=headers
    ).json()["history"]
    [record] = history
    assert record["method"] == "electronic"
    assert record["decision"] == "refused"
    welsh = httpx.get(f"{site.base_url}/consent/v1/purposes/website_photo", headers=headers).json()
    assert record["wording_language"] == ("cy" if welsh["wording_cy"] else "en")
