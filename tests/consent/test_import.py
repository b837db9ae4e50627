"""CSV import of pupils and carers (POST /v1/pupils:import and the CLI's import_csv_file)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hallpass_consent.app import create_app
from hallpass_consent.models import kit_tables
from hallpass_consent.pupils.importer import import_csv_file
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.errors import Unprocessable
from hallpass_kit.settings import CommonSettings
from tests.conftest import SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem

COLUMNS = [
    "mis_id",
    "given_name",
    "family_name",
    "year_group",
    "preferred_name",
    "class",
    "carer1_given_name",
    "carer1_family_name",
    "carer1_email",
    "carer1_phone",
    "carer1_relationship",
    "carer1_parental_responsibility",
    "carer2_given_name",
    "carer2_family_name",
    "carer2_email",
    "carer2_parental_responsibility",
]

AMARA = {
    "mis_id": "UPN001",
    "given_name": "Amara",
    "family_name": "Okafor",
    "year_group": "3",
    "class": "Year 3 Oak",
    "carer1_given_name": "Grace",
    "carer1_family_name": "Okafor",
    "carer1_email": "grace@example.org",
    "carer1_phone": "07700 900123",
    "carer1_relationship": "mother",
    "carer1_parental_responsibility": "yes",
    "carer2_given_name": "Daniel",
    "carer2_family_name": "Okafor",
    "carer2_email": "daniel@example.org",
    "carer2_parental_responsibility": "no",
}
TOBI = {
    "mis_id": "UPN002",
    "given_name": "Tobi",
    "family_name": "Okafor",
    "year_group": "5",
    "class": "Year 5 Ash",
    "carer1_given_name": "Grace",
    "carer1_family_name": "Okafor",
    "carer1_email": "GRACE@example.org",
}
LENA = {
    "mis_id": "UPN003",
    "given_name": "Lena",
    "family_name": "Berg",
    "year_group": "3",
    "preferred_name": "Lenny",
    "class": "Year 3 Oak",
}


def csv_bytes(rows: Sequence[dict[str, str]], columns: Sequence[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def post_csv(
    client: TestClient,
    auth: TokenFactory,
    data: bytes,
    *,
    dry_run: bool = False,
    content_type: str = "text/csv",
    role: str = "office",
) -> Any:
    return client.post(
        "/v1/pupils:import",
        content=data,
        params={"dry_run": "true"} if dry_run else {},
        headers={**auth(role), "Content-Type": content_type},
    )


def pupils_by_mis(client: TestClient, auth: TokenFactory) -> dict[str, dict[str, Any]]:
    response = client.get(
        "/v1/pupils", params={"limit": "500", "include_archived": "true"}, headers=auth("office")
    )
    assert response.status_code == 200, response.text
    return {p["mis_id"]: p for p in response.json()["items"]}


def carers_of(client: TestClient, auth: TokenFactory, pupil_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/pupils/{pupil_id}/guardians", headers=auth("office"))
    assert response.status_code == 200, response.text
    carers: list[dict[str, Any]] = response.json()
    return carers


def roster_version(client: TestClient, auth: TokenFactory) -> int:
    return int(client.get("/v1/roster", headers=auth("office")).json()["version"])


def test_import_creates_pupils_carers_links_and_classes(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = post_csv(client, auth, csv_bytes([AMARA, TOBI, LENA]))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "rows": 3,
        "created": 3,
        "updated": 0,
        "guardians_created": 2,
        "links_created": 3,
        "classes_created": 2,
        "dry_run": False,
    }
    pupils = pupils_by_mis(client, auth)
    classes = {c["name"]: c for c in client.get("/v1/classes", headers=auth("office")).json()}
    assert {name: c["year_group"] for name, c in classes.items()} == {
        "Year 3 Oak": 3,
        "Year 5 Ash": 5,
    }
    amara, tobi, lena = pupils["UPN001"], pupils["UPN002"], pupils["UPN003"]
    assert (amara["given_name"], amara["family_name"], amara["year_group"]) == (
        "Amara",
        "Okafor",
        3,
    )
    assert amara["class_id"] == lena["class_id"] == classes["Year 3 Oak"]["id"]
    assert tobi["class_id"] == classes["Year 5 Ash"]["id"]
    assert lena["preferred_name"] == "Lenny"
    carers = {c["email"]: c for c in carers_of(client, auth, amara["id"])}
    assert set(carers) == {"grace@example.org", "daniel@example.org"}
    assert carers["grace@example.org"]["phone"] == "07700 900123"
    links = {c["pupil_id"]: c for c in carers["grace@example.org"]["children"]}
    assert set(links) == {amara["id"], tobi["id"]}  # one Grace, whatever the email's case
    assert links[amara["id"]]["relationship"] == "mother"
    assert carers["daniel@example.org"]["children"][0]["parental_responsibility"] is False
    assert carers_of(client, auth, lena["id"]) == []


def test_import_is_audited_and_moves_the_roster_version(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    before = roster_version(client, auth)

    post_csv(client, auth, csv_bytes([AMARA]))

    entry = SchoolRecords(client, auth).audit(action="pupils.imported")[0]
    assert entry["actor"] == "office@oakfield"
    assert entry["details"]["created"] == 1
    assert roster_version(client, auth) > before


def test_reimport_updates_instead_of_duplicating(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    post_csv(client, auth, csv_bytes([AMARA, TOBI, LENA]))
    first = pupils_by_mis(client, auth)
    changed = [
        {**AMARA, "carer2_parental_responsibility": "yes"},
        TOBI,
        {**LENA, "family_name": "Berg-Hale", "class": "Year 4 Elm", "year_group": "4"},
    ]

    response = post_csv(client, auth, csv_bytes(changed))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "rows": 3,
        "created": 0,
        "updated": 3,
        "guardians_created": 0,
        "links_created": 0,
        "classes_created": 1,
        "dry_run": False,
    }
    again = pupils_by_mis(client, auth)
    assert {m: p["id"] for m, p in again.items()} == {m: p["id"] for m, p in first.items()}
    assert again["UPN003"]["family_name"] == "Berg-Hale"
    assert again["UPN003"]["year_group"] == 4
    carers = {c["email"]: c for c in carers_of(client, auth, again["UPN001"]["id"])}
    assert len(carers) == 2
    assert carers["daniel@example.org"]["children"][0]["parental_responsibility"] is True


def test_reimport_does_not_duplicate_carers_without_email(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    row = {
        **LENA,
        "carer1_given_name": "Olu",
        "carer1_family_name": "Berg",
        "carer1_phone": "07700 900999",
    }
    post_csv(client, auth, csv_bytes([row]))

    response = post_csv(client, auth, csv_bytes([row]))

    assert response.status_code == 200, response.text
    assert response.json()["guardians_created"] == 0
    pupil_id = pupils_by_mis(client, auth)["UPN003"]["id"]
    assert [c["given_name"] for c in carers_of(client, auth, pupil_id)] == ["Olu"]


def test_dry_run_writes_nothing(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    records = SchoolRecords(client, auth)
    audited = records.audit_entries()
    version = roster_version(client, auth)

    response = post_csv(client, auth, csv_bytes([AMARA, TOBI, LENA]), dry_run=True)

    assert response.status_code == 200, response.text
    assert response.json()["dry_run"] is True
    assert response.json()["created"] == 3
    assert pupils_by_mis(client, auth) == {}
    assert client.get("/v1/classes", headers=auth("office")).json() == []
    assert records.audit_entries() == audited
    assert roster_version(client, auth) == version


def test_dry_run_reports_what_the_import_would_do(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    data = csv_bytes([AMARA, TOBI, LENA])

    preview = post_csv(client, auth, data, dry_run=True).json()
    done = post_csv(client, auth, data).json()

    assert {**preview, "dry_run": False} == done


# --- malformed files: every problem reported, nothing imported --------------------------------

GOOD = [AMARA, TOBI]
MALFORMED = {
    "bad_email": (
        csv_bytes([LENA, {**AMARA, "carer1_email": "grace-at-example"}]),
        ["row 3, column carer1_email"],
    ),
    "duplicate_mis_id_in_file": (
        csv_bytes([*GOOD, {**LENA, "mis_id": "UPN001"}]),
        ["row 4, column mis_id"],
    ),
    "missing_required_column": (
        csv_bytes(
            [{k: v for k, v in r.items() if k != "year_group"} for r in GOOD],
            [c for c in COLUMNS if c != "year_group"],
        ),
        ["header.year_group"],
    ),
    "unknown_column": (
        csv_bytes([{**r, "shoe_size": "3"} for r in GOOD], [*COLUMNS, "shoe_size"]),
        ["header.shoe_size"],
    ),
    "bad_year_group": (
        csv_bytes([{**LENA, "year_group": "Y3"}, *GOOD]),
        ["row 2, column year_group"],
    ),
    "year_group_out_of_range": (
        csv_bytes([*GOOD, {**LENA, "year_group": "15"}]),
        ["row 4, column year_group"],
    ),
    "empty_required_field": (
        csv_bytes([*GOOD, {**LENA, "given_name": ""}]),
        ["row 4, column given_name"],
    ),
    "bad_responsibility_flag": (
        csv_bytes([{**AMARA, "carer2_parental_responsibility": "sometimes"}, TOBI]),
        ["row 2, column carer2_parental_responsibility"],
    ),
    "several_problems_all_listed": (
        csv_bytes(
            [
                {**AMARA, "year_group": "three"},
                TOBI,
                {**LENA, "mis_id": "UPN002", "carer1_given_name": "Olu", "carer1_email": "olu@"},
            ]
        ),
        [
            "row 2, column year_group",
            "row 4, column mis_id",
            "row 4, column carer1_family_name",
            "row 4, column carer1_email",
        ],
    ),
    "not_utf8": (csv_bytes(GOOD) + "UPN009,Zoë,Brontë,3\n".encode("latin-1"), []),
    "empty_file": (b"", []),
    "header_only": (csv_bytes([]), []),
}


@pytest.mark.parametrize(("data", "wheres"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_reports_every_problem_and_imports_nothing(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    data: bytes,
    wheres: list[str],
) -> None:
    records = SchoolRecords(client, auth)
    audited = records.audit_entries()

    response = post_csv(client, auth, data)

    problem = assert_problem(response, 422, "invalid_csv")
    assert sorted(p["where"] for p in problem["problems"]) == sorted(wheres)
    assert pupils_by_mis(client, auth) == {}
    assert client.get("/v1/classes", headers=auth("office")).json() == []
    assert records.audit_entries() == audited


def test_wrong_content_type_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = post_csv(client, auth, csv_bytes(GOOD), content_type="application/json")

    assert_problem(response, 415, "unsupported_media_type")
    assert pupils_by_mis(client, auth) == {}


def test_import_before_the_school_is_set_up_is_refused(
    client: TestClient, auth: TokenFactory
) -> None:
    response = post_csv(client, auth, csv_bytes(GOOD))

    assert_problem(response, 409, "school_not_set_up")


def test_teacher_cannot_import_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = post_csv(client, auth, csv_bytes(GOOD), role="staff")

    assert_problem(response, 403, "forbidden")
    assert pupils_by_mis(client, auth) == {}


@pytest.fixture
def small_client(
    consent_db: Database, issuer: DevIssuer, common_settings: CommonSettings
) -> Iterator[TestClient]:
    """The consent app on the same database, accepting files of at most 1 KiB."""
    app = create_app(
        common=common_settings,
        settings=ConsentSettings(max_import_bytes=1024),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        database=consent_db,
        run_background=False,
        migrate=False,
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def big_file() -> bytes:
    data = csv_bytes([{**LENA, "mis_id": f"UPN{n:04d}"} for n in range(40)])
    assert len(data) > 1024
    return data


def test_oversized_file_is_refused(
    small_client: TestClient, client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = post_csv(small_client, auth, big_file())

    assert_problem(response, 413, "payload_too_large")
    assert pupils_by_mis(client, auth) == {}


def test_oversized_streamed_file_is_refused(
    small_client: TestClient, client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    data = big_file()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 256):
            yield data[start : start + 256]

    response = small_client.post(
        "/v1/pupils:import",
        content=chunks(),
        headers={**auth("office"), "Content-Type": "text/csv"},
    )

    assert_problem(response, 413, "payload_too_large")
    assert pupils_by_mis(client, auth) == {}


# --- the CLI's way in --------------------------------------------------------------------------


def test_file_import_reports_progress_through_both_stages(
    consent_db: Database,
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes([AMARA, TOBI, LENA]))
    seen: list[tuple[str, int, int]] = []

    summary = import_csv_file(
        consent_db,
        SCHOOL,
        path,
        "cli:office",
        False,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )

    assert summary.created == 3
    assert seen == [
        ("checking", 1, 3),
        ("checking", 2, 3),
        ("checking", 3, 3),
        ("importing", 1, 3),
        ("importing", 2, 3),
        ("importing", 3, 3),
    ]
    assert set(pupils_by_mis(client, auth)) == {"UPN001", "UPN002", "UPN003"}
    assert SchoolRecords(client, auth).audit(action="pupils.imported")[0]["actor"] == "cli:office"


def test_file_import_dry_run_writes_nothing(
    consent_db: Database,
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes(GOOD))

    summary = import_csv_file(consent_db, SCHOOL, path, "cli:office", True)

    assert (summary.dry_run, summary.created) == (True, 2)
    assert pupils_by_mis(client, auth) == {}
    assert SchoolRecords(client, auth).audit(action="pupils.imported") == []


def test_file_with_too_many_rows_is_refused(
    consent_db: Database,
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes([AMARA, TOBI, LENA]))

    with pytest.raises(Unprocessable) as refused:
        import_csv_file(consent_db, SCHOOL, path, "cli:office", False, max_rows=2)

    assert refused.value.code == "too_many_rows"
    assert pupils_by_mis(client, auth) == {}


def test_reimport_that_changes_parental_responsibility_announces_the_change_c11(
    client: TestClient, auth: TokenFactory, consent_db: Database, school: SchoolBuilder
) -> None:
    both_responsible = {**AMARA, "carer2_parental_responsibility": "yes"}
    post_csv(client, auth, csv_bytes([both_responsible]))
    pupil_id = pupils_by_mis(client, auth)["UPN001"]["id"]
    carers = {c["email"]: c["id"] for c in carers_of(client, auth, pupil_id)}
    school.consent(pupil_id, carers["grace@example.org"])
    school.consent(pupil_id, carers["daniel@example.org"], decision="refused")

    post_csv(client, auth, csv_bytes([{**AMARA, "carer2_parental_responsibility": "no"}]))

    assert school.decide("website_photo", pupil_id)[pupil_id]["reason"] == "granted"
    t = kit_tables.outbox_event
    with consent_db.session() as session:
        latest = (
            session.execute(
                select(t.c.payload).where(t.c.type == "consent.changed").order_by(t.c.occurred_at)
            )
            .scalars()
            .all()[-1]
        )
    assert (latest["pupil_id"], latest["purpose"], latest["state"]) == (
        pupil_id,
        "website_photo",
        "granted",
    )
