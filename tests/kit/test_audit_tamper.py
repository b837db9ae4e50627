"""Someone with database access tampers with a service's audit trail; verify names what they did.

Every scenario runs for consent, media and comms, on SQLite and (when configured) PostgreSQL,
against the service's own migrated schema, app and checkpoint store. Tampering is raw SQL past
the database's guards, as the database's owner could do it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hallpass_kit.audit import GENESIS_HASH, Finding, entry_hash
from hallpass_kit.checkpoints import AuditSigningKey
from hallpass_kit.db import utcnow
from tests.conftest import TokenFactory
from tests.kit.audit_trails import (
    SCHOOL,
    Trail,
    payload_of,
)


def report(trail: Trail, auth: TokenFactory) -> dict[str, object]:
    response = trail.client.get("/v1/audit:verify", headers=auth("head"))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def found(trail: Trail, auth: TokenFactory) -> tuple[object, object, object]:
    body = report(trail, auth)
    assert body["intact"] is False
    return body["finding"], body["first_bad_seq"], body["reason"]


# --- an untouched trail ------------------------------------------------------------------------


def test_an_untouched_trail_with_checkpoints_verifies(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(40)
    trail.checkpoint()
    trail.fill(5)
    trail.checkpoint()
    trail.fill(3)

    body = report(trail, auth)

    assert body == {
        "intact": True,
        "entries": 48,  # the school's entries; the checkpoint records belong to no school
        "first_bad_seq": None,
        "reason": None,
        "finding": None,
        "checkpoints": 2,
        "latest_checkpoint_seq": 46,
        "unsealed": 0,
    }


# --- entries edited, removed, re-ordered ----------------------------------------------------------


def test_an_edited_field_is_named(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(10)
    trail.checkpoint()
    with trail.tampering() as sql:
        sql.execute(text("UPDATE audit_entry SET outcome = 'refused' WHERE seq = 4"))

    assert found(trail, auth) == (Finding.edited, 4, "content differs from its hash")


@pytest.mark.parametrize(("deleted", "named"), [(1, 1), (6, 6)], ids=["first", "middle"])
def test_a_deleted_entry_is_named(
    trail: Trail, auth: TokenFactory, deleted: int, named: int
) -> None:
    trail.fill(10)
    trail.checkpoint()
    trail.delete("seq = :seq", seq=deleted)

    assert found(trail, auth) == (Finding.missing, named, f"entry {named} is missing")


def test_the_deleted_last_entry_is_missed_against_the_checkpoint(
    trail: Trail, auth: TokenFactory
) -> None:
    trail.fill(10)
    trail.checkpoint()  # signs seq 10; its own record is seq 11
    trail.delete("seq >= 10")

    assert found(trail, auth) == (
        Finding.rows_missing_after_checkpoint,
        10,
        "rows missing: the chain ends at seq 9, but checkpoint 1 vouches for entries up to seq 10",
    )


def test_a_deleted_tail_of_a_hundred_is_missed(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(150)
    trail.checkpoint()
    trail.delete("seq > 50")

    finding, first_bad, _ = found(trail, auth)

    assert (finding, first_bad) == (Finding.rows_missing_after_checkpoint, 51)
    assert report(trail, auth)["entries"] == 50


def test_a_truncated_table_is_named(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(12)
    trail.checkpoint()
    with trail.tampering() as sql:
        sql.execute(text("DELETE FROM audit_entry"))

    assert found(trail, auth) == (
        Finding.truncated,
        1,
        "truncated: the audit table is empty, but checkpoint 1 vouches for entries up to seq 12",
    )


def test_two_swapped_entries_are_named(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(8)
    trail.checkpoint()
    with trail.tampering() as sql:
        sql.execute(text("UPDATE audit_entry SET seq = -3 WHERE seq = 3"))
        sql.execute(text("UPDATE audit_entry SET seq = 3 WHERE seq = 4"))
        sql.execute(text("UPDATE audit_entry SET seq = 4 WHERE seq = -3"))

    assert found(trail, auth) == (Finding.out_of_order, 3, "does not follow the entry before it")


# --- forgery: a rewritten tail, a forged append ---------------------------------------------------


def test_a_tail_rewritten_with_fresh_hashes_is_forged(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(20)
    trail.checkpoint()
    with trail.tampering() as sql:
        sql.execute(text("UPDATE audit_entry SET details = '{}' WHERE seq = 7"))
        trail.rehash(sql, 7, keep_seals=True)

    assert found(trail, auth) == (
        Finding.forged,
        7,
        "a forged entry: entry 7 carries a seal not the service's",
    )


def test_a_rewritten_tail_without_seals_does_not_match_the_checkpoint(
    trail: Trail, auth: TokenFactory
) -> None:
    trail.fill(20)
    trail.checkpoint()
    with trail.tampering() as sql:
        sql.execute(text("UPDATE audit_entry SET details = '{}' WHERE seq = 7"))
        trail.rehash(sql, 7, keep_seals=False)

    assert found(trail, auth) == (
        Finding.forged,
        20,
        "a forged entry: the chain at seq 20 is not what checkpoint 1 signed (entries up to it "
        "were rewritten)",
    )


def test_a_well_hashed_forged_append_is_named(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(5)
    trail.checkpoint()
    head = trail.row(trail.head())
    at = utcnow()
    values = {
        "seq": head["seq"] + 1,
        "recorded_at": at,
        "actor": "head@oakfield",
        "school": SCHOOL,
        "action": "consent.granted",
        "target": "pupil-9",
        "outcome": "ok",
        "details": "{}",
        "prev_hash": head["hash"],
    }
    values["hash"] = entry_hash(**values)
    # The insert trigger lets it in: it is the next entry, and well linked.
    with trail.database.engine.begin() as sql:
        trail.insert(sql, **values)

    assert found(trail, auth) == (
        Finding.forged,
        head["seq"] + 1,
        f"a forged entry: entry {head['seq'] + 1} carries no service seal and no checkpoint "
        "vouches for it",
    )


def test_a_forged_append_with_a_made_up_seal_is_named(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(5)
    head = trail.row(trail.head())
    values = {
        "seq": head["seq"] + 1,
        "recorded_at": utcnow(),
        "actor": "head@oakfield",
        "school": SCHOOL,
        "action": "consent.granted",
        "target": None,
        "outcome": "ok",
        "details": "{}",
        "prev_hash": head["hash"],
    }
    values["hash"] = entry_hash(**values)
    with trail.database.engine.begin() as sql:
        trail.insert(sql, **values, seal=AuditSigningKey.generate().seal(values["hash"]))

    assert found(trail, auth) == (
        Finding.forged,
        6,
        "a forged entry: entry 6 carries a seal not the service's",
    )


# --- seq outside the chain ------------------------------------------------------------------------


def _stray(seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "recorded_at": utcnow(),
        "actor": "someone",
        "school": SCHOOL,
        "action": "pupil.created",
        "outcome": "ok",
        "details": "{}",
        "prev_hash": GENESIS_HASH,
        "hash": f"{seq + 100:064d}",
    }


@pytest.mark.parametrize("seq", [0, -5])
def test_the_database_refuses_an_entry_outside_the_chain(trail: Trail, seq: int) -> None:
    trail.fill(3)

    with pytest.raises(DBAPIError), trail.database.engine.begin() as sql:
        trail.insert(sql, **_stray(seq))

    assert trail.head() == 3


@pytest.mark.parametrize(("seq", "prev"), [(5, "last"), (4, "other")], ids=["gap", "unlinked"])
def test_the_database_refuses_an_entry_that_does_not_follow_the_last(
    trail: Trail, seq: int, prev: str
) -> None:
    trail.fill(3)
    entry = _stray(seq)
    entry["prev_hash"] = trail.row(3)["hash"] if prev == "last" else GENESIS_HASH

    with pytest.raises(DBAPIError), trail.database.engine.begin() as sql:
        trail.insert(sql, **entry)

    assert trail.head() == 3


@pytest.mark.parametrize("seq", [0, -5])
def test_an_entry_put_outside_the_chain_is_forged_and_never_listed(
    trail: Trail, auth: TokenFactory, seq: int
) -> None:
    trail.fill(3)
    with trail.tampering() as sql:
        trail.insert(sql, **_stray(seq))

    listed = trail.client.get("/v1/audit", headers=auth("head")).json()["items"]

    assert found(trail, auth) == (
        Finding.forged,
        seq,
        f"a forged entry: seq {seq} is outside the chain (from 1)",
    )
    assert [entry["seq"] for entry in listed] == [3, 2, 1]


# --- the checkpoints themselves -------------------------------------------------------------------


def test_a_removed_checkpoint_leaves_a_gap(trail: Trail, auth: TokenFactory) -> None:
    for _ in range(3):
        trail.fill(4)
        trail.checkpoint()
    trail.checkpoint_file(2).unlink()

    body = report(trail, auth)

    assert (body["intact"], body["finding"], body["reason"]) == (
        False,
        Finding.checkpoint_missing,
        "checkpoint 2 missing",
    )


def test_the_removed_latest_checkpoint_is_missed_by_the_chain(
    trail: Trail, auth: TokenFactory
) -> None:
    trail.fill(4)
    trail.checkpoint()
    trail.fill(4)
    latest = trail.checkpoint()
    trail.checkpoint_file(latest.number).unlink()

    assert found(trail, auth) == (
        Finding.checkpoint_missing,
        latest.seq + 1,
        f"checkpoint 2 missing: entry {latest.seq + 1} records that it was stored",
    )


def test_an_edited_checkpoint_is_refused(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(6)
    made = trail.checkpoint()
    header, _, signature = made.token.split(".")
    claims = payload_of(made.token)
    claims["seq"] = 3
    forged_body = AuditSigningKey.generate().sign(claims).split(".")[1]
    trail.replace_checkpoint(1, f"{header}.{forged_body}.{signature}")

    body_ = report(trail, auth)

    assert (body_["finding"], body_["reason"]) == (
        Finding.checkpoint_signature_invalid,
        "checkpoint 1 signature invalid",
    )


def test_a_checkpoint_signed_with_another_key_is_refused(trail: Trail, auth: TokenFactory) -> None:
    trail.fill(6)
    made = trail.checkpoint()
    trail.fill(2)
    # Someone with the checkpoint store but not the key signs a checkpoint of a rewritten chain.
    trail.replace_checkpoint(1, AuditSigningKey.generate().sign(payload_of(made.token)))

    body = report(trail, auth)

    assert (body["intact"], body["finding"], body["reason"]) == (
        False,
        Finding.checkpoint_signature_invalid,
        "checkpoint 1 signature invalid",
    )


def test_entries_deleted_back_to_an_earlier_checkpoint_are_missed(
    trail: Trail, auth: TokenFactory
) -> None:
    trail.fill(10)
    first = trail.checkpoint()
    trail.fill(10)
    second = trail.checkpoint()
    # The chain is cut back to just after checkpoint 1, consistent with it but not with 2.
    trail.delete("seq > :seq", seq=first.seq + 1)

    assert found(trail, auth) == (
        Finding.rows_missing_after_checkpoint,
        first.seq + 2,
        f"rows missing after checkpoint 1: the chain ends at seq {first.seq + 1}, "
        f"but checkpoint 2 vouches for entries up to seq {second.seq}",
    )
