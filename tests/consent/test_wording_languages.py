"""Each purpose's words in English and Welsh, and the version and language a carer was shown
kept with their record (C10)."""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient

from hallpass_consent import migrations
from hallpass_consent.schools.catalogue import CATALOGUE
from hallpass_kit.db import Database
from hallpass_kit.migrations import alembic_config
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem

ENGLISH = (
    "I agree that photographs and video of my child may be published on the school website, "
    "without my child's name, until I withdraw this consent."
)
WELSH = (
    "Rwy'n cytuno y caiff ffotograffau a fideo o fy mhlentyn eu cyhoeddi ar wefan yr ysgol, "
    "heb enw fy mhlentyn, nes i mi dynnu'r caniatâd hwn yn ôl."
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_wording(
    client: TestClient, auth: TokenFactory, text: str, text_cy: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text}
    if text_cy is not None:
        body["text_cy"] = text_cy
    response = client.post("/v1/purposes/website_photo/wordings", json=body, headers=auth("head"))
    assert response.status_code == 201, response.text
    purpose: dict[str, Any] = response.json()
    return purpose


def answer(
    client: TestClient, auth: TokenFactory, pupil_id: str, guardian_id: str, **extra: Any
) -> Any:
    return client.post(
        f"/v1/me/children/{pupil_id}/consents",
        json={"purpose": "website_photo", "decision": "granted", **extra},
        headers=auth("parent", guardian=guardian_id, sub="grace@example.org"),
    )


def test_every_purpose_starts_with_welsh_words_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    purposes = client.get("/v1/purposes", headers=auth("office")).json()

    assert all(p["wording_cy"] for p in purposes)
    assert all(p["wording_cy_sha256"] == sha256(p["wording_cy"]) for p in purposes)
    website = next(p for p in purposes if p["code"] == "website_photo")
    assert "ar wefan yr ysgol" in website["wording_cy"]


def test_new_version_carries_welsh_words_with_their_hash_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    purpose = new_wording(client, auth, ENGLISH, WELSH)

    assert purpose["wording_version"] == 2
    assert purpose["wording"] == ENGLISH
    assert purpose["wording_cy"] == WELSH
    assert purpose["wording_cy_sha256"] == sha256(WELSH)
    assert purpose["versions"][1]["text_cy"] == WELSH
    assert purpose["versions"][1]["sha256_cy"] == sha256(WELSH)


def test_english_only_version_has_no_welsh_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    purpose = new_wording(client, auth, ENGLISH)

    assert purpose["wording_cy"] is None
    assert purpose["wording_cy_sha256"] is None
    # The Welsh of version 1 stays with version 1.
    assert purpose["versions"][0]["text_cy"] is not None


def test_adding_welsh_is_a_new_version_and_earlier_words_stay_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH)

    purpose = new_wording(client, auth, ENGLISH, WELSH)

    assert [v["version"] for v in purpose["versions"]] == [1, 2, 3]
    assert purpose["versions"][1]["text_cy"] is None
    assert purpose["versions"][2]["text_cy"] == WELSH


def test_welsh_words_are_checked_like_english_ones(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    for text_cy in ("Rhy fyr", "\x00" * 30, "   " * 10):
        response = client.post(
            "/v1/purposes/website_photo/wordings",
            json={"text": ENGLISH, "text_cy": text_cy},
            headers=auth("head"),
        )
        assert_problem(response, 422, "invalid_request")
    assert (
        client.get("/v1/purposes/website_photo", headers=auth("head")).json()["wording_version"]
        == 1
    )


def test_office_records_consent_given_on_a_welsh_form_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH, WELSH)
    family = school.family()

    record = school.consent(family.pupil_id, family.guardian_ids[0], wording_language="cy")

    assert record["wording_language"] == "cy"
    assert record["wording"] == WELSH
    assert record["wording_sha256"] == sha256(WELSH)
    assert record["scans"] == 0


def test_record_in_english_by_default_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH, WELSH)
    family = school.family()

    record = school.consent(family.pupil_id, family.guardian_ids[0])

    assert record["wording_language"] == "en"
    assert record["wording"] == ENGLISH


def test_carer_answers_in_welsh_and_the_receipt_shows_the_welsh_words_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH, WELSH)
    family = school.family()

    response = answer(
        client,
        auth,
        family.pupil_id,
        family.guardian_ids[0],
        wording_version=2,
        wording_language="cy",
    )

    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["wording_version"], record["wording_language"]) == (2, "cy")
    receipt = client.get(
        f"/v1/me/consents/{record['id']}/receipt",
        headers=auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org"),
    ).json()
    assert receipt["purpose"]["wording_language"] == "cy"
    assert receipt["purpose"]["wording"] == WELSH
    assert receipt["purpose"]["wording_sha256"] == sha256(WELSH)
    staff = client.get(f"/v1/consents/{record['id']}/receipt", headers=auth("office")).json()
    assert staff["purpose"]["wording"] == WELSH


def test_welsh_for_a_version_without_welsh_is_refused_and_nothing_is_written_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    new_wording(client, auth, ENGLISH)
    family = school.family()
    entries = records.audit_entries()

    by_carer = answer(client, auth, family.pupil_id, family.guardian_ids[0], wording_language="cy")
    by_office = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": family.guardian_ids[0],
            "method": "paper",
            "wording_language": "cy",
        },
        headers=auth("office"),
    )

    for response in (by_carer, by_office):
        problem = assert_problem(response, 422, "wording_not_in_welsh")
        assert problem["rule"] == "C10"
    assert records.history(family.pupil_id) == []
    assert records.audit_entries() == entries


def test_office_may_cite_an_earlier_welsh_form_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    first = client.get("/v1/purposes/website_photo", headers=auth("office")).json()
    new_wording(client, auth, ENGLISH)
    family = school.family()

    record = school.consent(
        family.pupil_id, family.guardian_ids[0], wording_version=1, wording_language="cy"
    )

    assert record["wording"] == first["wording_cy"]


def test_carer_answering_on_replaced_words_is_refused_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    new_wording(client, auth, ENGLISH, WELSH)

    response = answer(
        client,
        auth,
        family.pupil_id,
        family.guardian_ids[0],
        wording_version=1,
        wording_language="cy",
    )

    problem = assert_problem(response, 409, "stale_wording")
    assert problem["rule"] == "C10"
    assert records.history(family.pupil_id) == []


def test_unknown_language_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    response = answer(client, auth, family.pupil_id, family.guardian_ids[0], wording_language="fr")

    assert_problem(response, 422, "invalid_request")


def test_history_keeps_each_records_language_and_words_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    first = school.consent(family.pupil_id, family.guardian_ids[0])
    new_wording(client, auth, ENGLISH, WELSH)
    second = school.consent(
        family.pupil_id, family.guardian_ids[0], decision="refused", wording_language="cy"
    )

    history = {r["id"]: r for r in records.history(family.pupil_id)}
    carer_history = {
        r["id"]: r
        for r in client.get(
            f"/v1/me/children/{family.pupil_id}/consents",
            headers=auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org"),
        ).json()
    }

    for shown in (history, carer_history):
        assert (shown[first["id"]]["wording_version"], shown[first["id"]]["wording_language"]) == (
            1,
            "en",
        )
        assert shown[second["id"]]["wording"] == WELSH
        assert shown[second["id"]]["wording_sha256"] == sha256(WELSH)


def test_withdrawal_keeps_the_language_of_the_grant_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH, WELSH)
    family = school.family()
    grant = school.consent(family.pupil_id, family.guardian_ids[0], wording_language="cy")

    response = client.post(
        f"/v1/consents/{grant['id']}:withdraw", json={"method": "paper"}, headers=auth("office")
    )

    assert response.status_code == 201, response.text
    assert response.json()["wording_language"] == "cy"
    assert response.json()["wording"] == WELSH


def test_carer_withdraws_a_welsh_grant_after_new_words_without_being_refused_c5_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    new_wording(client, auth, ENGLISH, WELSH)
    family = school.family()
    carer = auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org")
    grant = answer(
        client, auth, family.pupil_id, family.guardian_ids[0], wording_language="cy"
    ).json()
    new_wording(client, auth, ENGLISH + " Reviewed each September.")

    response = client.post(
        f"/v1/me/children/{family.pupil_id}/consents/website_photo:withdraw", headers=carer
    )

    assert response.status_code == 201, response.text
    withdrawal = response.json()
    assert withdrawal["withdraws_record_id"] == grant["id"]
    assert (withdrawal["wording_version"], withdrawal["wording_language"]) == (2, "cy")
    assert withdrawal["wording"] == WELSH


def test_every_purpose_has_its_title_in_welsh_for_carers_reading_in_welsh(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    purposes = client.get("/v1/purposes", headers=auth("office")).json()
    family = school.family()
    child = client.get(
        f"/v1/me/children/{family.pupil_id}",
        headers=auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org"),
    )

    assert all(p["title_cy"] and p["title_cy"] != p["title"] for p in purposes)
    website = next(p for p in purposes if p["code"] == "website_photo")
    assert website["title_cy"] == "Lluniau a fideo ar wefan yr ysgol"
    assert child.status_code == 200, child.text
    shown = {c["purpose"]: c["title_cy"] for c in child.json()["consents"]}
    assert shown["website_photo"] == website["title_cy"]


def welsh_titles(client: TestClient, auth: TokenFactory) -> dict[str, str | None]:
    purposes = client.get("/v1/purposes", headers=auth("office")).json()
    return {p["code"]: p["title_cy"] for p in purposes}


def test_the_upgrade_gives_existing_schools_the_catalogues_welsh_titles() -> None:
    path = next((migrations.SCRIPT_LOCATION / "versions").glob("0007_*.py"))
    spec = importlib.util.spec_from_file_location("titles_0007", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    assert {seed.code: seed.title_cy for seed in CATALOGUE} == migration.WELSH_TITLES


def test_schools_set_up_before_welsh_titles_get_them_on_upgrade(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, consent_db: Database
) -> None:
    if consent_db.dialect == "sqlite":
        pytest.skip("SQLite's batch ALTER rebuilds the table under its foreign keys to go back")
    before = welsh_titles(client, auth)
    config = alembic_config(migrations.SCRIPT_LOCATION, consent_db)
    with consent_db.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")  # the column and its titles are gone
        connection.commit()
    migrations.upgrade(consent_db)

    after = welsh_titles(client, auth)
    assert after == before
    assert all(after.values())
