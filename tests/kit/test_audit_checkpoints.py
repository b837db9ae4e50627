"""Audit checkpoints as a trust or an auditor meets them: served with their public key, made on
schedule, and counts that never reach past the caller's school."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import text

from hallpass_kit.checkpoints import AuditSigningKey, notary_from_settings
from hallpass_kit.settings import CommonSettings, Environment, InsecureSettingsError
from tests.conftest import TokenFactory
from tests.kit.audit_trails import (
    SCHOOL,
    Trail,
)

OTHER_SCHOOL = "riverside"


@pytest.fixture
def audit_settings() -> dict[str, Any]:
    # Checkpoints every 10 entries, so a test reaches one with a few entries.
    return {"audit_checkpoint_every_entries": 10, "audit_checkpoint_every_minutes": 30}


def test_a_head_sees_only_their_own_schools_entry_count(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(3, school=SCHOOL)
    trail.fill(7, school=OTHER_SCHOOL)
    trail.checkpoint()

    ours = trail.client.get("/v1/audit:verify", headers=auth("head")).json()
    theirs = trail.client.get("/v1/audit:verify", headers=auth("head", school=OTHER_SCHOOL)).json()

    assert (ours["intact"], ours["entries"]) == (True, 3)
    assert (theirs["intact"], theirs["entries"]) == (True, 7)


def test_the_latest_checkpoint_verifies_with_the_served_public_key(
    trail: Trail, auth: TokenFactory
) -> None:
    trail.fill(4)
    trail.checkpoint()
    trail.fill(2)
    latest = trail.checkpoint()

    served = trail.client.get("/v1/audit:checkpoint", headers=auth("dsl")).json()
    keys = trail.client.get("/v1/audit:checkpoint-keys", headers=auth("dsl")).json()["keys"]

    signed = jws.deserialize_compact(
        served["token"], OKPKey.import_key(keys[0]), algorithms=["Ed25519"]
    )
    assert json.loads(signed.payload) == {
        "service": trail.kind.name,
        "number": 2,
        "seq": latest.seq,
        "hash": latest.hash,
        "made_at": latest.made_at.isoformat(timespec="microseconds"),
        "unsealed": 0,
    }
    assert (served["number"], served["seq"], served["signature_valid"]) == (2, latest.seq, True)
    assert "d" not in keys[0]  # the public half only


def test_past_checkpoints_are_listed_and_fetched_by_number(
    trail: Trail, auth: TokenFactory
) -> None:
    made = []
    for _ in range(3):
        trail.fill(2)
        made.append(trail.checkpoint())

    first_page = trail.client.get("/v1/audit/checkpoints?limit=2", headers=auth("head")).json()
    second_page = trail.client.get(
        f"/v1/audit/checkpoints?limit=2&cursor={first_page['next_cursor']}", headers=auth("head")
    ).json()
    first = trail.client.get("/v1/audit:checkpoint?number=1", headers=auth("head")).json()

    assert [c["number"] for c in first_page["items"] + second_page["items"]] == [1, 2, 3]
    assert second_page["next_cursor"] is None
    assert (first["seq"], first["token"]) == (made[0].seq, made[0].token)


def test_checkpoints_are_for_the_auditors_only(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(1)
    trail.checkpoint()

    for path in ("/v1/audit:checkpoint", "/v1/audit/checkpoints", "/v1/audit:checkpoint-keys"):
        assert trail.client.get(path, headers=auth("staff")).status_code == 403


def test_no_checkpoint_yet_answers_not_found(trail: Trail, auth: TokenFactory) -> None:
    response = trail.client.get("/v1/audit:checkpoint", headers=auth("head"))

    assert response.status_code == 404
    assert response.json()["code"] == "audit_checkpoint_not_found"


def test_a_checkpoint_is_made_every_n_entries(trail: Trail) -> None:
    trail.fill(3)
    first = trail.chain.checkpoint(trail.database)  # the first one is due at once
    trail.fill(9)
    too_early = trail.chain.checkpoint(trail.database)
    trail.fill(1)
    due = trail.chain.checkpoint(trail.database)

    assert first is not None
    assert first.seq == 3
    assert too_early is None
    assert due is not None
    assert (due.number, due.seq) == (2, 14)


def test_a_checkpoint_is_made_after_m_minutes_when_entries_arrived(trail: Trail) -> None:
    trail.fill(2)
    first = trail.chain.checkpoint(trail.database)
    assert first is not None
    later = first.made_at + dt.timedelta(minutes=31)

    quiet = trail.chain.checkpoint(trail.database, now=later)
    trail.fill(1)
    due = trail.chain.checkpoint(trail.database, now=later)

    assert quiet is None  # nothing new: nothing to sign
    assert due is not None
    assert due.number == 2


def test_a_broken_chain_is_never_signed(trail: Trail) -> None:
    trail.fill(3)
    trail.checkpoint()
    trail.fill(3)
    with trail.tampering() as sql:
        sql.execute(text("UPDATE audit_entry SET actor = 'someone' WHERE seq = 6"))

    assert trail.chain.checkpoint(trail.database, force=True) is None
    assert trail.notary.store.numbers() == [1]


def test_the_signing_key_is_kept_under_the_data_dir_in_embedded_mode(tmp_path: Path) -> None:
    common = CommonSettings(env=Environment.development, data_dir=tmp_path)

    made = notary_from_settings(common, "consent")
    again = notary_from_settings(common, "consent")

    assert made.key.public_jwk() == again.key.public_jwk()
    assert (tmp_path / "audit-signing-key.json").stat().st_mode & 0o077 == 0


def _production(tmp_path: Path, **values: object) -> CommonSettings:
    return CommonSettings(
        env=Environment.production,
        data_dir=tmp_path,
        auth_jwks_url="https://login.example/keys",
        auth_issuer="https://login.example",
        webhook_secret=secrets.token_urlsafe(32),
        **values,  # type: ignore[arg-type]
    )


def test_production_refuses_to_start_without_a_configured_audit_key(tmp_path: Path) -> None:
    with pytest.raises(InsecureSettingsError, match="HALLPASS_AUDIT_SIGNING_KEY_PATH"):
        notary_from_settings(_production(tmp_path), "media")
    assert not (tmp_path / "audit-signing-key.json").exists()


def test_production_signs_with_the_configured_key(tmp_path: Path) -> None:
    key = AuditSigningKey.generate()
    path = tmp_path / "keys" / "audit.jwk.json"
    path.parent.mkdir()
    path.write_text(json.dumps(key.key.as_dict(private=True)))

    notary = notary_from_settings(_production(tmp_path, audit_signing_key_path=path), "comms")

    assert notary.key.public_jwk() == key.public_jwk()
