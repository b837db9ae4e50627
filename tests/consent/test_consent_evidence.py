"""Scans of the signed paper form kept with the consent record they prove (C10)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

from hallpass_consent.settings import ConsentSettings
from tests.conftest import OTHER_SCHOOL, TokenFactory
from tests.consent.builders import Family, SchoolBuilder, SchoolRecords, assert_problem

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
HTML = b"<!doctype html><script>alert(document.cookie)</script>"

Files = list[tuple[str, tuple[str, bytes, str]]]


def form(family: Family, **extra: Any) -> str:
    return json.dumps(
        {
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": family.guardian_ids[0],
            "method": "paper",
            "evidence_ref": "admission pack 2026",
            **extra,
        }
    )


def record_with(client: TestClient, headers: dict[str, str], record: str, files: Files) -> Any:
    return client.post(
        "/v1/consents:with-evidence", data={"record": record}, files=files, headers=headers
    )


def scan(
    name: str, data: bytes, declared: str = "application/pdf"
) -> tuple[str, tuple[str, bytes, str]]:
    return ("scan", (name, data, declared))


def test_office_records_a_paper_consent_with_its_scan_in_one_request_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()

    response = record_with(
        client,
        auth("office"),
        form(family),
        [scan("form page 1.pdf", PDF), scan("page2.jpg", JPEG, "image/jpeg")],
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["record"]["decision"] == "granted"
    assert body["record"]["scans"] == 2
    assert [(s["file_name"], s["content_type"]) for s in body["scans"]] == [
        ("form page 1.pdf", "application/pdf"),
        ("page2.jpg", "image/jpeg"),
    ]
    assert body["scans"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert body["scans"][0]["size"] == len(PDF)
    assert records.history(family.pupil_id)[0]["scans"] == 2
    listed = client.get(
        f"/v1/consents/{body['record']['id']}/evidence", headers=auth("office")
    ).json()
    # Pages sent together are listed by name: "form page 1.pdf" before "page2.jpg".
    assert [s["id"] for s in listed] == [s["id"] for s in body["scans"]]
    assert "content" not in listed[0]


def test_type_is_read_from_the_bytes_so_a_png_named_pdf_is_kept_as_png_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    response = record_with(
        client, auth("office"), form(family), [scan("scan.pdf", PNG, "application/pdf")]
    )

    assert response.status_code == 201, response.text
    stored = response.json()["scans"][0]
    assert (stored["file_name"], stored["content_type"]) == ("scan.png", "image/png")


def test_web_page_named_scan_pdf_is_refused_and_nothing_is_written_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    entries = records.audit_entries()

    response = record_with(
        client, auth("office"), form(family), [scan("p1.pdf", PDF), scan("scan.pdf", HTML)]
    )

    assert_problem(response, 415, "unsupported_scan_type")
    assert records.history(family.pupil_id) == []
    assert records.audit_entries() == entries


def test_scan_over_the_size_limit_is_refused_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    limit = ConsentSettings().max_scan_bytes

    response = record_with(
        client, auth("office"), form(family), [scan("big.pdf", PDF + b"0" * limit)]
    )

    assert_problem(response, 413, "scan_too_large")
    assert records.history(family.pupil_id) == []


def test_bad_record_json_is_refused_before_any_scan_is_written_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    entries = records.audit_entries()

    not_json = record_with(client, auth("office"), "{not json", [scan("a.pdf", PDF)])
    wrong_field = record_with(
        client, auth("office"), form(family, decision="maybe"), [scan("a.pdf", PDF)]
    )
    refused_by_rule = record_with(
        client,
        auth("office"),
        form(family, guardian_id=str(uuid.uuid4())),
        [scan("a.pdf", PDF)],
    )

    assert_problem(not_json, 422, "invalid_record")
    problem = assert_problem(wrong_field, 422, "invalid_record")
    assert problem["problems"][0]["where"] == "record.decision"
    assert_problem(refused_by_rule, 422, "not_a_carer")
    assert records.history(family.pupil_id) == []
    assert records.audit_entries() == entries


def test_empty_or_missing_scan_is_refused_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()

    empty = record_with(client, auth("office"), form(family), [scan("a.pdf", b"")])
    missing = client.post(
        "/v1/consents:with-evidence", data={"record": form(family)}, headers=auth("office")
    )

    assert_problem(empty, 422, "empty_scan")
    assert_problem(missing, 422, "invalid_request")
    assert records.history(family.pupil_id) == []


def test_file_name_is_made_safe_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    response = record_with(
        client,
        auth("office"),
        form(family),
        [scan('..\\..\\etc/pass"wd;\r\nX-Evil: 1.pdf', PDF), scan("...", JPEG, "image/jpeg")],
    )

    assert response.status_code == 201, response.text
    names = [s["file_name"] for s in response.json()["scans"]]
    # The client sent the quote and line break percent-encoded; "%", ";" and ":" are replaced.
    assert names[0] == "pass_22wd_0D_0AX-Evil_1.pdf"
    assert names[1] == "scan-2.jpg"


def test_scan_added_later_leaves_the_record_unchanged_and_is_audited_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    record = school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.post(
        f"/v1/consents/{record['id']}/evidence",
        files=[scan("form.png", PNG, "image/png")],
        headers=auth("office"),
    )

    assert response.status_code == 201, response.text
    after = client.get(f"/v1/consents/{record['id']}", headers=auth("office")).json()
    assert {**after, "scans": 0} == record
    assert after["scans"] == 1
    audited = records.audit(action="consent.evidence_added")
    assert audited[0]["target"] == response.json()[0]["id"]


def test_download_has_the_stored_type_and_safe_headers_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    stored = record_with(
        client, auth("office"), form(family), [scan("Ffurflen Caniatâd.pdf", PNG, "text/html")]
    ).json()["scans"][0]

    for role in ("office", "head", "deputy", "admin", "dsl"):
        response = client.get(f"/v1/evidence/{stored['id']}", headers=auth(role))
        assert response.status_code == 200, (role, response.text)
        assert response.content == PNG
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="Ffurflen Caniat_d.png"')
        assert "filename*=UTF-8''Ffurflen%20Caniat%C3%A2d.png" in disposition


def test_staff_outside_the_office_and_parents_cannot_read_scans_a2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    body = record_with(client, auth("office"), form(family), [scan("a.pdf", PDF)]).json()
    parent = auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org")

    for headers in (parent, auth("staff"), auth("social_media")):
        assert_problem(
            client.get(f"/v1/evidence/{body['scans'][0]['id']}", headers=headers), 403, "forbidden"
        )
        assert_problem(
            client.get(f"/v1/consents/{body['record']['id']}/evidence", headers=headers),
            403,
            "forbidden",
        )
    assert_problem(
        record_with(client, parent, form(family), [scan("b.pdf", PDF)]), 403, "forbidden"
    )


def test_another_schools_scan_and_record_are_not_found(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    body = record_with(client, auth("office"), form(family), [scan("a.pdf", PDF)]).json()
    SchoolBuilder(client, auth, OTHER_SCHOOL).set_up("Riverside Primary")
    theirs = auth("office", school=OTHER_SCHOOL)

    assert_problem(
        client.get(f"/v1/evidence/{body['scans'][0]['id']}", headers=theirs), 404, "unknown_scan"
    )
    assert_problem(
        client.get(f"/v1/consents/{body['record']['id']}/evidence", headers=theirs),
        404,
        "unknown_record",
    )
    assert_problem(
        client.post(
            f"/v1/consents/{body['record']['id']}/evidence",
            files=[scan("b.pdf", PDF)],
            headers=theirs,
        ),
        404,
        "unknown_record",
    )


def test_the_same_form_sent_twice_with_one_key_is_recorded_once_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    headers = {**auth("office"), "Idempotency-Key": "form-7"}

    first = record_with(client, headers, form(family), [scan("a.pdf", PDF)])
    again = record_with(client, headers, form(family), [scan("a.pdf", PDF)])
    other = record_with(client, headers, form(family), [scan("a.pdf", PDF + b"%")])

    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert_problem(other, 409, "idempotency_key_reused")
    assert len(records.history(family.pupil_id)) == 1
