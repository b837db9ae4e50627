"""The office records a decision from a signed paper form with the form's scan, and opens the
scan from the pupil's history (C10), in a real browser."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_office_evidence")]

FORM_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _enrol(site: Site) -> tuple[str, str]:
    """A pupil and their carer of its own, so the test depends on no other test's data."""
    tag = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    with httpx.Client(base_url=f"{site.base_url}/consent/v1", headers=headers) as api:
        pupil = api.post(
            "/pupils",
            json={
                "mis_id": f"E{tag}",
                "given_name": "Dafydd",
                "family_name": f"Lloyd{tag}",
                "year_group": 5,
            },
        )
        assert pupil.status_code == 201, pupil.text
        carer = api.post(
            "/guardians",
            json={
                "given_name": "Nia",
                "family_name": f"Lloyd{tag}",
                "children": [{"pupil_id": pupil.json()["id"]}],
            },
        )
        assert carer.status_code == 201, carer.text
    return pupil.json()["id"], carer.json()["id"]


def _fill_paper_form(page: Page, guardian_id: str) -> None:
    page.get_by_label("Purpose").select_option("print_publication")
    page.get_by_role("radio", name="Agreed").check()
    page.get_by_label("Carer who decided").select_option(guardian_id)
    page.get_by_label("How it reached the school").select_option("paper")
    page.get_by_label("Evidence reference").fill("Admission form 5120")


def test_the_office_records_a_paper_consent_with_its_scan_and_opens_it_c10(
    page: Page, site: Site, tmp_path: Path
) -> None:
    pupil_id, guardian_id = _enrol(site)
    scan = tmp_path / "ffurflen-caniatad.pdf"
    scan.write_bytes(FORM_PDF)
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{pupil_id}")

    _fill_paper_form(page, guardian_id)
    page.get_by_label("Scan of the signed form (optional)").set_input_files(scan)
    page.get_by_role("button", name="Record the decision").click()

    expect(page.get_by_role("status")).to_have_text("The decision is recorded.")
    history = page.locator("table", has=page.get_by_role("columnheader", name="Given by"))
    row = history.locator("tbody tr")
    expect(row).to_have_count(1)
    link = row.get_by_role("link", name="Download ffurflen-caniatad.pdf", exact=False)
    expect(link).to_be_visible()
    assert_accessible(page)
    with page.expect_download() as opened:
        link.click()
    download = opened.value
    assert download.suggested_filename == "ffurflen-caniatad.pdf"
    assert Path(download.path()).read_bytes() == FORM_PDF


def test_a_web_page_passed_off_as_a_scan_is_refused_next_to_the_field_c10(
    page: Page, site: Site, tmp_path: Path
) -> None:
    pupil_id, guardian_id = _enrol(site)
    fake = tmp_path / "scan.pdf"
    fake.write_bytes(b"<!doctype html><p>not a scan</p>")
    sign_in_as(page, "office")
    page.goto(f"/app/office/pupils/{pupil_id}")

    _fill_paper_form(page, guardian_id)
    page.get_by_label("Scan of the signed form (optional)").set_input_files(fake)
    page.get_by_role("button", name="Record the decision").click()

    expect(page.locator("#scan-error")).to_contain_text("not a PDF, JPEG or PNG")
    expect(page.get_by_label("Scan of the signed form (optional)")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_text("No decisions recorded yet.")).to_be_visible()
    assert_accessible(page)
