"""A carer's child page in a real browser: each purpose's words and answer, yes / no and withdraw
in one tap, the receipt after each change, the history of records, in English and Welsh."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_parents_consent")]


def _as(site: Site, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.token(role)}"}


def _family(site: Site) -> tuple[str, str]:
    """A pupil of the demo school and their carer with parental responsibility, made for one
    test so no other test's answers show on its pages."""
    with httpx.Client(base_url=site.base_url) as http:
        pupil = http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": f"WEB-{uuid.uuid4().hex[:10]}",
                "given_name": "Eira",
                "family_name": "Pritchard",
                "year_group": 4,
            },
            headers=_as(site, "office"),
        )
        assert pupil.status_code == 201, pupil.text
        guardian = http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Rhian",
                "family_name": "Pritchard",
                "children": [{"pupil_id": pupil.json()["id"], "parental_responsibility": True}],
            },
            headers=_as(site, "office"),
        )
        assert guardian.status_code == 201, guardian.text
    return pupil.json()["id"], guardian.json()["id"]


def _opt_in_purpose(site: Site) -> dict[str, Any]:
    """A purpose a carer answers alone: opt-in, no pupil's agreement needed."""
    with httpx.Client(base_url=site.base_url) as http:
        purposes = http.get("/consent/v1/purposes", headers=_as(site, "office")).json()
    return next(
        p
        for p in purposes
        if p["requires_consent"] and p["basis"] == "opt_in" and not p["needs_pupil_agreement"]
    )


def _decision(site: Site, purpose: str, pupil: str) -> dict[str, Any]:
    with httpx.Client(base_url=site.base_url) as http:
        answer = http.post(
            "/consent/v1/decisions",
            json={"purpose": purpose, "pupil_ids": [pupil]},
            headers=_as(site, "cms"),
        )
    assert answer.status_code == 200, answer.text
    decision: dict[str, Any] = answer.json()["decisions"][0]
    return decision


def _sign_in_as_carer(page: Page, guardian: str) -> None:
    """Through the dev sign-in page's own form. It lists the carers of the first few pupils
    only, so the test's carer is chosen by giving one of its buttons that carer's value."""
    page.goto("/auth/dev?school=demo")
    button = page.locator('ul[aria-label="Carers"] button').first
    button.evaluate("(button, id) => { button.value = 'carer:' + id; }", guardian)
    button.click()
    page.wait_for_load_state()


def _purpose_section(page: Page, title: str) -> Locator:
    return page.locator("section.purpose", has=page.get_by_role("heading", name=title, exact=True))


def test_a_carer_gives_then_withdraws_consent_and_the_next_decision_says_withdrawn(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    purpose = _opt_in_purpose(site)
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Eira Pritchard")
    assert_accessible(page)
    _purpose_section(page, purpose["title"]).get_by_role("button", name="Yes, I agree").click()
    expect(page.get_by_role("status")).to_contain_text("Your answer is saved")
    assert_accessible(page)
    assert _decision(site, purpose["code"], pupil)["reason"] == "granted"
    page.goto(f"/parents/children/{pupil}")
    _purpose_section(page, purpose["title"]).get_by_role(
        "button", name="Withdraw my consent"
    ).click()
    expect(page.get_by_role("status")).to_contain_text("Your answer is saved")
    assert_accessible(page)

    decision = _decision(site, purpose["code"], pupil)
    assert (decision["allowed"], decision["reason"]) == (False, "withdrawn")


def test_the_receipt_after_an_answer_shows_the_words_the_carer_agreed_to(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    purpose = _opt_in_purpose(site)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}")

    _purpose_section(page, purpose["title"]).get_by_role("button", name="Yes, I agree").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Consent receipt")
    main = page.locator("main")
    expect(main).to_contain_text(purpose["title"])
    expect(main).to_contain_text(purpose["wording"].split("\n")[0])
    expect(main).to_contain_text("Rhian Pritchard")
    assert_accessible(page)


def test_the_history_lists_every_answer_with_its_receipt(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    purpose = _opt_in_purpose(site)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}")
    _purpose_section(page, purpose["title"]).get_by_role(
        "button", name="No, I do not agree"
    ).click()

    page.goto(f"/parents/children/{pupil}")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(purpose["title"])
    expect(rows.first).to_contain_text("No")
    assert_accessible(page)
    rows.first.get_by_role("link").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Consent receipt")
    expect(page.get_by_role("status")).to_have_count(0)
    assert_accessible(page)


def test_a_purpose_held_by_the_school_says_so_without_the_reason(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    purpose = _opt_in_purpose(site)
    with httpx.Client(base_url=site.base_url) as http:
        held = http.put(
            f"/consent/v1/pupils/{pupil}/restriction",
            json={"kind": "court_order", "reason": "Order of the family court"},
            headers=_as(site, "dsl"),
        )
    assert held.status_code in (200, 201), held.text
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}")

    section = _purpose_section(page, purpose["title"])
    expect(section).to_contain_text("Held by the school")
    expect(page.locator("main")).not_to_contain_text("court")
    assert_accessible(page)


def test_the_child_page_speaks_welsh(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}?lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=2).first).to_have_text("Yr hyn rydych yn cytuno iddo")
    expect(page.get_by_role("button", name="Ydw, rwy'n cytuno").first).to_be_visible()
    assert_accessible(page)


def test_a_child_who_is_not_the_carers_is_not_found(page: Page, site: Site) -> None:
    _pupil, guardian = _family(site)
    other, _ = _family(site)
    _sign_in_as_carer(page, guardian)

    response = page.goto(f"/parents/children/{other}")

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("cannot find")
    assert_accessible(page)


def test_an_answer_the_api_refuses_is_shown_on_the_page_and_changes_nothing(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    purpose = _opt_in_purpose(site)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}")
    form = _purpose_section(page, purpose["title"]).locator("form")
    form.locator('input[name="purpose"]').evaluate("(input) => { input.value = 'no_such_use'; }")

    form.get_by_role("button", name="Yes, I agree").click()

    expect(page.get_by_role("alert")).to_contain_text("no_such_use")
    expect(page.locator("table")).to_have_count(0)
    assert _decision(site, purpose["code"], pupil)["reason"] == "no_record"
    assert_accessible(page)


def test_a_carer_without_parental_responsibility_sees_the_answers_but_no_buttons(
    page: Page, site: Site
) -> None:
    pupil, _ = _family(site)
    with httpx.Client(base_url=site.base_url) as http:
        relative = http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Alun",
                "family_name": "Pritchard",
                "children": [{"pupil_id": pupil, "parental_responsibility": False}],
            },
            headers=_as(site, "office"),
        )
    assert relative.status_code == 201, relative.text
    _sign_in_as_carer(page, relative.json()["id"])

    page.goto(f"/parents/children/{pupil}")

    expect(page.locator("main")).to_contain_text("parental responsibility")
    expect(page.locator("section.purpose").first).to_be_visible()
    expect(page.locator("section.purpose button")).to_have_count(0)
    assert_accessible(page)


def test_the_child_page_fits_a_phone_screen(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _sign_in_as_carer(page, guardian)
    page.set_viewport_size({"width": 360, "height": 740})

    page.goto(f"/parents/children/{pupil}")

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert_accessible(page)
