"""Each provider's token shape, mapped through the example identity file written for it: roles
through the table, the school by claim or by rules, the address and the stable subject; a token
that maps to nothing is refused with a 401 naming what is missing."""

from __future__ import annotations

from typing import Any

import pytest

from hallpass_kit.errors import Unauthenticated
from hallpass_kit.identity import IdentityFile, MappedPerson, map_claims
from tests.identity import shapes
from tests.identity.examples import at_loopback, example, issuer_named

LOOPBACK = "http://127.0.0.1:9"


def _mapped(file_name: str, issuer_name: str, claims: dict[str, Any]) -> MappedPerson:
    # As the verifier sees it: the file's issuer at a loopback address, the claims verified.
    identity: IdentityFile = at_loopback(example(file_name), **{issuer_name: LOOPBACK})
    return map_claims(identity, issuer_named(identity, issuer_name), claims)


def _refusal(file_name: str, issuer_name: str, claims: dict[str, Any]) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as refused:
        _mapped(file_name, issuer_name, claims)
    return refused.value


def _grants(person: MappedPerson) -> dict[str, set[str]]:
    return {school: set(roles) for school, roles in person.grants}


# --- Entra ID, one school --------------------------------------------------------------------


def test_an_entra_head_teacher_is_head_of_the_tenants_school() -> None:
    person = _mapped("entra.toml", "entra", shapes.entra_v2(roles=["Hallpass.Head"]))

    assert _grants(person) == {"oakfield": {"head"}}
    assert person.trust is None


def test_one_entra_app_role_can_give_several_hallpass_roles() -> None:
    person = _mapped("entra.toml", "entra", shapes.entra_v2(roles=["Hallpass.PastoralLead"]))

    assert person.roles == {"staff", "pastoral"}


def test_entra_app_roles_missing_from_the_table_are_ignored() -> None:
    person = _mapped(
        "entra.toml", "entra", shapes.entra_v2(roles=["Hallpass.Staff", "Reports.Reader"])
    )

    assert person.roles == {"staff"}


def test_an_entra_id_token_maps_like_the_access_token() -> None:
    person = _mapped("entra.toml", "entra", shapes.entra_v2(roles=["Hallpass.DSL"], kind="id"))

    assert _grants(person) == {"oakfield": {"dsl"}}


def test_the_entra_subject_is_the_object_id_not_the_pairwise_sub() -> None:
    claims = shapes.entra_v2(oid="11111111-2222-4333-8444-555555555555")

    person = _mapped("entra.toml", "entra", claims)

    assert claims["sub"] != claims["oid"]
    assert person.subject == "11111111-2222-4333-8444-555555555555"


def test_without_an_email_claim_the_entra_address_comes_from_preferred_username() -> None:
    person = _mapped(
        "entra.toml", "entra", shapes.entra_v2(preferred_username="j.okafor@oakfield.sch.uk")
    )

    assert person.email == "j.okafor@oakfield.sch.uk"
    assert person.email_verified


def test_the_optional_entra_email_claim_comes_before_preferred_username() -> None:
    claims = shapes.entra_v2(
        preferred_username="jo.okafor@oakfield.sch.uk", email="j.okafor@oakfield.sch.uk"
    )

    assert _mapped("entra.toml", "entra", claims).email == "j.okafor@oakfield.sch.uk"


def test_a_preferred_username_that_is_no_address_gives_way_to_upn() -> None:
    claims = shapes.entra_v2(preferred_username="07700900123", upn="j.okafor@oakfield.sch.uk")

    assert _mapped("entra.toml", "entra", claims).email == "j.okafor@oakfield.sch.uk"


def test_an_entra_token_from_another_tenant_is_refused_naming_tid() -> None:
    claims = shapes.entra_v2(tid="00000000-0000-4000-8000-000000000000")

    refusal = _refusal("entra.toml", "entra", claims)

    assert refusal.status == 401
    assert "`tid`" in refusal.detail


def test_an_entra_token_without_tid_is_refused_naming_tid() -> None:
    claims = shapes.entra_v2()
    del claims["tid"]

    assert "`tid`" in _refusal("entra.toml", "entra", claims).detail


def test_an_entra_token_without_app_roles_is_refused_naming_the_roles_claim() -> None:
    refusal = _refusal("entra.toml", "entra", shapes.entra_v2(roles=[]))

    assert "`roles`" in refusal.detail
    assert "no Hallpass role" in refusal.detail


def test_an_entra_token_without_oid_is_refused_naming_oid() -> None:
    claims = shapes.entra_v2()
    del claims["oid"]

    assert "`oid`" in _refusal("entra.toml", "entra", claims).detail


# --- Entra ID, a trust of two academies in one tenant ----------------------------------------


def _trust_staff(*, groups: list[str], roles: list[str]) -> dict[str, Any]:
    return shapes.entra_v2(
        tid=shapes.TRUST_TENANT_ID, client_id=shapes.TRUST_CLIENT_ID, groups=groups, roles=roles
    )


def test_two_academies_of_one_tenant_stay_two_schools() -> None:
    oakfield = _trust_staff(
        groups=[shapes.OAKFIELD_STAFF_GROUP, shapes.UNRELATED_GROUP], roles=["Hallpass.Office"]
    )
    riverside = _trust_staff(groups=[shapes.RIVERSIDE_STAFF_GROUP], roles=["Hallpass.Office"])

    assert _grants(_mapped("trust.toml", "entra", oakfield)) == {"oakfield": {"office"}}
    assert _grants(_mapped("trust.toml", "entra", riverside)) == {"riverside": {"office"}}


def test_staff_in_both_academies_groups_hold_their_roles_in_each() -> None:
    claims = _trust_staff(
        groups=[shapes.OAKFIELD_STAFF_GROUP, shapes.RIVERSIDE_STAFF_GROUP],
        roles=["Hallpass.SocialMedia"],
    )

    person = _mapped("trust.toml", "entra", claims)

    assert _grants(person) == {"oakfield": {"social_media"}, "riverside": {"social_media"}}


def test_a_trust_administrator_acts_in_every_academy_of_the_trust() -> None:
    person = _mapped("trust.toml", "entra", _trust_staff(groups=[], roles=["Hallpass.TrustAdmin"]))

    assert _grants(person) == {"oakfield": {"trust_admin"}, "riverside": {"trust_admin"}}
    assert person.trust == "oak-valley"


def test_a_trust_dpo_who_also_teaches_holds_both_roles_in_their_academy() -> None:
    claims = _trust_staff(
        groups=[shapes.RIVERSIDE_STAFF_GROUP], roles=["Hallpass.TrustDPO", "Hallpass.Staff"]
    )

    person = _mapped("trust.toml", "entra", claims)

    assert _grants(person) == {"oakfield": {"trust_dpo"}, "riverside": {"staff", "trust_dpo"}}


def test_trust_staff_in_no_academy_group_are_refused_naming_the_school_rules() -> None:
    claims = _trust_staff(groups=[shapes.UNRELATED_GROUP], roles=["Hallpass.Staff"])

    refusal = _refusal("trust.toml", "entra", claims)

    assert "names no school" in refusal.detail
    assert "school rules" in refusal.detail


def test_a_token_of_the_single_school_tenant_is_refused_by_the_trusts_file() -> None:
    claims = shapes.entra_v2(roles=["Hallpass.Head"], groups=[shapes.OAKFIELD_STAFF_GROUP])

    assert "`tid`" in _refusal("trust.toml", "entra", claims).detail


# --- Keycloak ----------------------------------------------------------------------------------


def test_keycloak_client_roles_named_as_hallpass_roles_need_no_table() -> None:
    claims = shapes.keycloak(client_roles=["head", "staff", "manage-users"])

    person = _mapped("keycloak.toml", "keycloak", claims)

    assert _grants(person) == {"oakfield": {"head", "staff"}}


def test_keycloak_realm_roles_do_not_count_when_the_file_reads_client_roles() -> None:
    claims = shapes.keycloak(realm_roles=["head"], client_roles=["staff"])

    assert _mapped("keycloak.toml", "keycloak", claims).roles == {"staff"}


def test_keycloak_roles_of_another_client_are_refused_naming_hallpass_client_roles() -> None:
    claims = shapes.keycloak(client="reports", client_roles=["head"])

    refusal = _refusal("keycloak.toml", "keycloak", claims)

    assert "`resource_access.hallpass.roles`" in refusal.detail


def test_keycloak_group_paths_map_to_the_school() -> None:
    claims = shapes.keycloak(client_roles=["office"], groups=["/oakfield/office", "/choir"])

    assert _grants(_mapped("keycloak.toml", "keycloak", claims)) == {"oakfield": {"office"}}


def test_a_keycloak_group_outside_the_table_names_no_school_and_says_which_claim() -> None:
    claims = shapes.keycloak(groups=["/riverside/staff"])

    refusal = _refusal("keycloak.toml", "keycloak", claims)

    assert "names no school" in refusal.detail
    assert "groups" in refusal.detail


def test_a_keycloak_login_name_is_never_taken_for_an_address() -> None:
    person = _mapped("keycloak.toml", "keycloak", shapes.keycloak(username="jokafor", email=None))

    assert person.email is None
    assert not person.email_verified


def test_a_keycloak_address_not_verified_by_keycloak_stays_unverified() -> None:
    person = _mapped("keycloak.toml", "keycloak", shapes.keycloak(email_verified=False))

    assert person.email == "j.okafor@oakfield.sch.uk"
    assert not person.email_verified


def test_the_keycloak_subject_is_the_realm_user_id() -> None:
    person = _mapped("keycloak.toml", "keycloak", shapes.keycloak(sub="0f4e7a2c-0000-4000-8000-1"))

    assert person.subject == "0f4e7a2c-0000-4000-8000-1"


# --- Google Workspace through Keycloak ---------------------------------------------------------


def test_a_workspace_account_brokered_by_keycloak_is_staff_of_the_domains_school() -> None:
    person = _mapped("google-via-keycloak.toml", "workspace", shapes.google_via_keycloak())

    assert _grants(person) == {"oakfield": {"staff"}}
    assert person.email == "j.okafor@oakfield.sch.uk"
    assert person.email_verified


def test_roles_granted_in_keycloak_add_up_for_a_brokered_head() -> None:
    claims = shapes.google_via_keycloak(realm_roles=["hallpass-staff", "hallpass-head"])

    assert _mapped("google-via-keycloak.toml", "workspace", claims).roles == {"staff", "head"}


def test_a_brokered_account_with_keycloaks_default_roles_only_is_refused() -> None:
    refusal = _refusal(
        "google-via-keycloak.toml", "workspace", shapes.google_via_keycloak(realm_roles=[])
    )

    assert "`realm_access.roles`" in refusal.detail


def test_a_personal_google_account_without_a_hosted_domain_is_refused_naming_hd() -> None:
    claims = shapes.google_via_keycloak(email="jo.okafor@gmail.com", hd=None)

    assert "`hd`" in _refusal("google-via-keycloak.toml", "workspace", claims).detail


def test_another_workspace_domain_is_refused_naming_hd() -> None:
    claims = shapes.google_via_keycloak(email="j.okafor@riverside.sch.uk", hd="riverside.sch.uk")

    assert "`hd`" in _refusal("google-via-keycloak.toml", "workspace", claims).detail


# --- Parents and carers ------------------------------------------------------------------------


def test_a_carers_own_account_with_a_verified_address_is_a_carer_with_that_address() -> None:
    person = _mapped("keycloak.toml", "parents", shapes.parent_keycloak())

    assert person.roles == {"parent"}
    assert person.grants == ()
    assert person.email == "sam.carter@example.com"
    assert person.email_verified


def test_a_carers_google_account_brokered_into_the_parents_realm_is_verified() -> None:
    person = _mapped("google-via-keycloak.toml", "parents", shapes.parent_via_google())

    assert person.email == "sam.carter@gmail.com"
    assert person.email_verified


def test_a_carer_whose_address_is_unconfirmed_has_an_unverified_address() -> None:
    person = _mapped("trust.toml", "parents", shapes.parent_unverified())

    assert person.roles == {"parent"}
    assert not person.email_verified


def test_roles_in_a_parents_realm_token_give_a_carer_nothing_more() -> None:
    claims = shapes.keycloak(
        realm=shapes.PARENTS_REALM, client_roles=["head"], groups=["/oakfield/staff"]
    )

    person = _mapped("keycloak.toml", "parents", claims)

    assert person.roles == {"parent"}
    assert person.grants == ()


def test_a_carers_token_without_a_subject_is_refused_naming_sub() -> None:
    claims = shapes.parent_keycloak()
    del claims["sub"]

    assert "`sub`" in _refusal("keycloak.toml", "parents", claims).detail
