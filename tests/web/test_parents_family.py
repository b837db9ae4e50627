"""A carer's other pages about their child in a real browser: the photos the school holds (M8)
and their download, the school's messages (a sensitive one through the secure view, E5), a
concern for the pastoral team (E7) and a report of an offensive message (E10)."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_parents_family")]


def _as(site: Site, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.token(role)}"}


def _family(site: Site) -> tuple[str, str]:
    """A pupil of the demo school and their carer, made for one test."""
    with httpx.Client(base_url=site.base_url) as http:
        pupil = http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": f"WEB-{uuid.uuid4().hex[:10]}",
                "given_name": "Osian",
                "family_name": "Llewelyn",
                "year_group": 2,
            },
            headers=_as(site, "office"),
        )
        assert pupil.status_code == 201, pupil.text
        guardian = http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Nia",
                "family_name": "Llewelyn",
                "email": f"nia.{uuid.uuid4().hex[:8]}@example.org",
                "children": [{"pupil_id": pupil.json()["id"], "parental_responsibility": True}],
            },
            headers=_as(site, "office"),
        )
        assert guardian.status_code == 201, guardian.text
    return pupil.json()["id"], guardian.json()["id"]


def _sign_in_as_carer(page: Page, guardian: str) -> None:
    """Through the dev sign-in page's own form. It lists the carers of the first few pupils
    only, so the test's carer is chosen by giving one of its buttons that carer's value."""
    page.goto("/auth/dev?school=demo")
    button = page.locator('ul[aria-label="Carers"] button').first
    button.evaluate("(button, id) => { button.value = 'carer:' + id; }", guardian)
    button.click()
    page.wait_for_load_state()


def _send(site: Site, pupil: str, subject: str, *, sensitive: bool) -> str:
    """A message from the office to the pupil's family; urgent, so it goes at once whatever
    the hour (E8) and the carer sees it straight away."""
    with httpx.Client(base_url=site.base_url) as http:
        sent = http.post(
            "/comms/v1/messages",
            json={
                "recipients": {"pupil_ids": [pupil]},
                "subject": subject,
                "body_text": f"The words of {subject}.",
                "sensitivity": "sensitive" if sensitive else "normal",
                "urgent": True,
            },
            headers=_as(site, "office"),
        )
    assert sent.status_code in (201, 202), sent.text
    message_id: str = sent.json()["id"]
    return message_id


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def test_a_carer_sees_their_childs_photos_and_can_download_them(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    # Storing a picture strips and scans it, and shares the site's SQLite with its background
    # jobs: slower than a plain call.
    with httpx.Client(base_url=site.base_url, timeout=60) as http:
        device = http.post(
            "/media/v1/devices",
            json={"name": "Class camera", "serial": f"WEB-{uuid.uuid4().hex[:8]}"},
            headers=_as(site, "office"),
        )
        assert device.status_code == 201, device.text
        upload = http.post(
            "/media/v1/media",
            data={
                "device_id": device.json()["id"],
                "event": "Sports day",
                "pupils": json.dumps([{"pupil_id": pupil}]),
            },
            files={"file": ("IMG_1.jpg", _photo(), "image/jpeg")},
            headers=_as(site, "staff"),
        )
        assert upload.status_code == 201, upload.text
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}")
    page.get_by_role("link", name="Photos of your child").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Photos of Osian Llewelyn")
    expect(page.get_by_role("heading", level=2, name="Sports day")).to_be_visible()
    assert_accessible(page)
    download = page.get_by_role("link", name="Download all photos (1) as a zip file")
    href = download.get_attribute("href")
    assert href is not None
    zipped = page.request.get(href)
    assert zipped.status == 200
    assert zipped.headers["content-type"] == "application/zip"


def test_a_child_with_no_photos_says_so(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}/photos")

    expect(page.locator("main")).to_contain_text("The school holds no photos of your child.")
    expect(page.get_by_role("link", name="Download all photos")).to_have_count(0)
    assert_accessible(page)


def test_a_carer_reads_messages_and_opens_a_sensitive_one_in_the_secure_view(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    _send(site, pupil, "Trip to Cardiff Bay", sensitive=False)
    private = _send(site, pupil, "About Osian's wellbeing", sensitive=True)
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}")
    page.get_by_role("link", name="Messages from the school").click()

    main = page.locator("main")
    expect(main).to_contain_text("The words of Trip to Cardiff Bay.")
    expect(main).not_to_contain_text("The words of About Osian's wellbeing.")
    secure = page.get_by_role("link", name="Read “About Osian's wellbeing” securely")
    expect(secure).to_have_attribute("href", f"/comms/v1/messages/{private}/secure-view")
    assert_accessible(page)
    secure.click()
    expect(page.locator("body")).to_contain_text("The words of About Osian's wellbeing.")
    assert_accessible(page)


def test_a_carer_raises_a_concern_and_is_told_it_was_sent(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}")
    page.get_by_role("link", name="Raise a concern with the pastoral team").click()
    assert_accessible(page)

    page.get_by_label("Subject").fill("Unkind words at break")
    page.get_by_label("Your concern").fill("Osian came home upset on Tuesday after break.")
    page.get_by_role("button", name="Send to the pastoral team").click()

    expect(page.get_by_role("status")).to_contain_text("sent to the pastoral team")
    assert_accessible(page)
    with httpx.Client(base_url=site.base_url) as http:
        inbox = http.get("/comms/v1/pastoral/concerns", headers=_as(site, "dsl")).json()
    assert any(
        c["subject"] == "Unkind words at break" and c["pupil_id"] == pupil for c in inbox["items"]
    )


def test_a_carer_reports_a_message_and_gets_a_reference(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _send(site, pupil, "Uniform reminder", sensitive=False)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}/messages")
    page.get_by_role("link", name="Report “Uniform reminder” as offensive").click()
    assert_accessible(page)

    page.get_by_label("What was offensive about it").fill("It named my child in front of others.")
    page.get_by_role("button", name="Send the report").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Report sent")
    expect(page.get_by_role("status")).to_contain_text("Your reference is R-")
    assert_accessible(page)


def test_a_report_without_a_message_or_address_asks_for_the_address(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}/report")

    page.get_by_label("What was offensive about it").fill("A rude email.")
    page.get_by_role("button", name="Send the report").click()

    field = page.get_by_label("The email address the message came from")
    expect(page.get_by_role("alert")).to_have_text("Enter the email address the message came from.")
    expect(field).to_have_attribute("aria-describedby", "from-hint from-error")
    expect(page.get_by_label("What was offensive about it")).to_have_value("A rude email.")
    assert_accessible(page)
