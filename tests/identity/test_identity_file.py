"""A mistake in the identity file stops Hallpass at start-up with a message naming the key to fix,
so an IT lead never meets it later as a refused sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from hallpass_kit.identity import IdentityFileError, load_identity_file

STAFF_ISSUER = """
[[issuers]]
name = "entra"
issuer = "https://login.microsoftonline.com/3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10/v2.0"
audiences = ["8a1d4f0b-2c6e-4b3a-9f57-6e1c0d9a2b34"]
"""
SCHOOL_BY_TENANT = """
[issuers.school]
[[issuers.school.rules]]
when = { tid = "3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10" }
schools = ["oakfield"]
"""


def _refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "identity.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(IdentityFileError) as refused:
        load_identity_file(path)
    return str(refused.value)


def test_a_well_formed_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "identity.toml"
    path.write_text(STAFF_ISSUER + SCHOOL_BY_TENANT, encoding="utf-8")

    identity = load_identity_file(path)

    assert [issuer.name for issuer in identity.issuers] == ["entra"]


def test_a_role_table_naming_a_role_hallpass_lacks_names_the_table_and_the_role(
    tmp_path: Path,
) -> None:
    text = (
        STAFF_ISSUER + SCHOOL_BY_TENANT + '[issuers.roles.map]\n"Hallpass.Head" = "headteacher"\n'
    )

    message = _refusal(tmp_path, text)

    assert "issuers.0.roles.map" in message
    assert "'headteacher'" in message
    assert "'Hallpass.Head'" in message


def test_a_school_in_two_trusts_names_the_school_and_both_trusts(tmp_path: Path) -> None:
    text = (
        '[trusts.oak-valley]\nschools = ["oakfield", "riverside"]\n'
        '[trusts.river-trust]\nschools = ["riverside"]\n'
    )

    message = _refusal(tmp_path, text)

    assert "'riverside'" in message
    assert "'oak-valley'" in message
    assert "'river-trust'" in message


def test_an_issuer_naming_a_trust_not_in_trusts_names_both(tmp_path: Path) -> None:
    text = STAFF_ISSUER + 'trust = "oak-valley"\n' + SCHOOL_BY_TENANT

    message = _refusal(tmp_path, text)

    assert "'entra'" in message
    assert "'oak-valley'" in message
    assert "[trusts]" in message


def test_a_school_rule_naming_a_trust_not_in_trusts_is_refused(tmp_path: Path) -> None:
    text = (
        STAFF_ISSUER
        + "[issuers.school]\n[[issuers.school.rules]]\n"
        + 'when = { tid = "3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10" }\ntrust = "oak-valley"\n'
    )

    assert "'oak-valley'" in _refusal(tmp_path, text)


def test_a_staff_issuer_without_a_school_or_trust_names_the_issuer_and_school(
    tmp_path: Path,
) -> None:
    message = _refusal(tmp_path, STAFF_ISSUER)

    assert "issuers.0" in message
    assert "`school`" in message


def test_a_parents_issuer_given_a_school_is_refused(tmp_path: Path) -> None:
    text = STAFF_ISSUER + 'people = "parents"\n' + SCHOOL_BY_TENANT

    message = _refusal(tmp_path, text)

    assert "issuers.0" in message
    assert "parents" in message


def test_a_school_rule_with_no_schools_or_trust_names_the_rule(tmp_path: Path) -> None:
    text = (
        STAFF_ISSUER
        + "[issuers.school]\n[[issuers.school.rules]]\n"
        + 'when = { tid = "3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10" }\n'
    )

    assert "issuers.0.school.rules.0" in _refusal(tmp_path, text)


def test_a_school_map_without_its_claim_names_the_school_mapping(tmp_path: Path) -> None:
    text = STAFF_ISSUER + '[issuers.school.map]\n"/oakfield/staff" = "oakfield"\n'

    message = _refusal(tmp_path, text)

    assert "issuers.0.school" in message
    assert "`claim`" in message


def test_a_misspelt_key_is_named(tmp_path: Path) -> None:
    text = STAFF_ISSUER.replace("audiences =", "audience =") + SCHOOL_BY_TENANT

    message = _refusal(tmp_path, text)

    assert "issuers.0.audience" in message
    assert "issuers.0.audiences" in message


def test_an_issuer_that_is_no_web_address_is_named(tmp_path: Path) -> None:
    text = STAFF_ISSUER.replace("https://login", "login") + SCHOOL_BY_TENANT

    assert "issuers.0.issuer" in _refusal(tmp_path, text)


def test_two_issuers_with_one_name_are_refused(tmp_path: Path) -> None:
    second = STAFF_ISSUER.replace("3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10/v2.0", "other/v2.0")
    text = STAFF_ISSUER + SCHOOL_BY_TENANT + second + SCHOOL_BY_TENANT

    assert "two issuers are named 'entra'" in _refusal(tmp_path, text)


def test_a_file_that_is_not_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    message = _refusal(tmp_path, STAFF_ISSUER + "[issuers.roles\n")

    assert str(tmp_path / "identity.toml") in message
    assert "not valid TOML" in message
    assert "line 6" in message


def test_a_file_that_cannot_be_read_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(IdentityFileError) as refused:
        load_identity_file(missing)

    assert str(missing) in str(refused.value)
    assert "cannot be read" in str(refused.value)
