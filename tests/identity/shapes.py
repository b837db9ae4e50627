"""The claims each identity provider schools use puts in its tokens, shaped from its documentation.

Each builder gives the claims a provider signs (``iss``, ``iat``, ``exp`` are the provider's to
add: ``OidcProvider.mint`` and ``next_sign_in`` fill them). The constants are the ones in the
example identity files under ``deploy/identity/``, so a token built here maps through them.

Sources:
- Microsoft identity platform, "Access token claims reference"
  https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference and
  "ID token claims reference"
  https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
- "Add app roles to your application and receive them in the token"
  https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps
- "Configure group claims for applications by using Microsoft Entra ID"
  https://learn.microsoft.com/en-us/entra/identity/hybrid/connect/how-to-connect-fed-group-claims
- "Provide optional claims to your app" (``email`` is optional, absent by default)
  https://learn.microsoft.com/en-us/entra/identity-platform/optional-claims
- Keycloak Server Administration Guide, "Managing OpenID Connect clients" → "Protocol mappers"
  (Group Membership mapper and its "Full group path" switch, Audience mapper, User Attribute
  mapper), "Assigning permissions using roles and groups" (realm roles, client roles) and
  "Integrating identity providers" → "Google" https://www.keycloak.org/docs/latest/server_admin/
- Google Identity, "OpenID Connect" (the ID token's ``email``, ``email_verified``, ``hd``)
  https://developers.google.com/identity/openid-connect/openid-connect
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tests.identity.provider import b64url

# Which of a provider's tokens: the access token the API reads, or the ID token sign-in reads.
Kind = Literal["access", "id"]

# --- Entra ID (deploy/identity/entra.toml, deploy/identity/trust.toml) --------------------------

# The directory (tenant) id of Oakfield Primary's Microsoft 365 tenant.
ENTRA_TENANT_ID = "3f2b8c1e-7d4a-4e59-9a61-0c2d5b7e8f10"
# The application (client) id of the Hallpass app registration in that tenant.
ENTRA_CLIENT_ID = "8a1d4f0b-2c6e-4b3a-9f57-6e1c0d9a2b34"
# The Application ID URI the app registration exposes its API under.
ENTRA_API_URI = "api://hallpass.oakfield.sch.uk"
# The issuer path of a v2.0 token: https://login.microsoftonline.com/{tenant id}/v2.0
ENTRA_PATH = f"/{ENTRA_TENANT_ID}/v2.0"

# The Oak Valley Learning Trust's one tenant, two academies told apart by security group.
TRUST_TENANT_ID = "b7e3a9d2-5c41-4f8e-a0b6-2d9c7e1f4a58"
TRUST_CLIENT_ID = "c4f8e2a6-9b1d-4e7c-8a3f-5d0b6e2c9a71"
TRUST_PATH = f"/{TRUST_TENANT_ID}/v2.0"
# Object ids of the security groups "Oakfield Academy staff" and "Riverside Academy staff".
OAKFIELD_STAFF_GROUP = "0d6a3c9e-1f2b-4a7d-8e5c-9b4f2a1d6e03"
RIVERSIDE_STAFF_GROUP = "e2b9f4a1-6c3d-4e8a-b7f0-1a5c8d2e9b46"
# A group with nothing to do with Hallpass ("All staff - Microsoft Teams").
UNRELATED_GROUP = "5a7c1e3d-9b2f-4d6a-8c0e-3f1b7d5a9c28"

# --- Keycloak (deploy/identity/keycloak.toml, google-via-keycloak.toml) --------------------------

KEYCLOAK_REALM = "oakfield"
KEYCLOAK_PATH = f"/realms/{KEYCLOAK_REALM}"
# The client Hallpass is registered as in the realm (its client roles live under this name).
KEYCLOAK_CLIENT = "hallpass"
# The realm carers sign in to (their own accounts, or Google accounts brokered into it).
PARENTS_REALM = "parents"
PARENTS_PATH = f"/realms/{PARENTS_REALM}"
# Google Workspace's hosted domain of the school's staff accounts.
WORKSPACE_DOMAIN = "oakfield.sch.uk"


def entra_pairwise_sub(oid: str, client_id: str) -> str:
    """Entra ID's ``sub``: "a pairwise identifier — unique to a particular application ID",
    43 base64url characters; the same person has another ``sub`` in every other app."""
    return b64url(hashlib.sha256(f"{oid}:{client_id}".encode()).digest())


def entra_v2(
    *,
    roles: Sequence[str] = ("Hallpass.Staff",),
    preferred_username: str = "j.okafor@oakfield.sch.uk",
    name: str = "Jo Okafor",
    tid: str = ENTRA_TENANT_ID,
    oid: str = "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    client_id: str = ENTRA_CLIENT_ID,
    groups: Sequence[str] | None = None,
    email: str | None = None,
    scp: str | None = "access_as_user",
    kind: Kind = "access",
    upn: str | None = None,
) -> dict[str, Any]:
    """A Microsoft identity platform v2.0 token (Entra ID) for a member of the tenant.

    ``roles`` holds the *values* of the app roles assigned to the person (or to a group they are
    in) on the app registration — "Hallpass.Head"; ``groups`` (object id GUIDs) only when the
    registration's groups claim is switched on; ``email`` only as an optional claim (absent by
    default: the address is in ``preferred_username``, which the docs call mutable and not for
    authorization); ``upn`` only as an optional claim. ``sub`` is pairwise (per app) and
    differs from ``oid``, the person's id across the tenant. An access token carries ``azp``
    (the client that asked) and ``scp`` (the delegated scopes); an ID token carries neither.
    """
    claims: dict[str, Any] = {
        # v2.0 tokens' audience is the API's application (client) id, whatever scope URI the
        # client asked with; an ID token's is the client's.
        "aud": client_id,
        "tid": tid,
        "oid": oid,
        "sub": entra_pairwise_sub(oid, client_id),
        "preferred_username": preferred_username,
        "name": name,
        "ver": "2.0",
        # Opaque to applications ("aio", "rh", "uti"): present in real tokens, ignored.
        "aio": "AWQAm/8TAAAA" + b64url(oid.encode())[:24],
        "rh": "0.AXEA" + b64url(tid.encode())[:20] + ".",
        "uti": b64url(uuid.uuid5(uuid.NAMESPACE_URL, oid).bytes)[:22],
    }
    if roles:
        # Absent, not empty, when nothing is assigned.
        claims["roles"] = list(roles)
    if groups is not None:
        claims["groups"] = list(groups)
    if email is not None:
        claims["email"] = email
    if upn is not None:
        claims["upn"] = upn
    if kind == "access":
        claims["azp"] = client_id
        claims["azpacr"] = "0"
        if scp is not None:
            claims["scp"] = scp
    else:
        claims["idp"] = f"https://sts.windows.net/{tid}/"
    return claims


def keycloak(
    *,
    username: str = "jokafor",
    email: str | None = "j.okafor@oakfield.sch.uk",
    email_verified: bool = True,
    name: str = "Jo Okafor",
    realm_roles: Sequence[str] = (),
    client_roles: Sequence[str] = ("staff",),
    client: str = KEYCLOAK_CLIENT,
    groups: Sequence[str] | None = ("/oakfield/staff",),
    realm: str = KEYCLOAK_REALM,
    sub: str = "f1c3a6b2-8d4e-4f7a-9c2b-5e6d7a8b9c01",
    attributes: Mapping[str, Any] | None = None,
    kind: Kind = "access",
) -> dict[str, Any]:
    """A Keycloak token for a user of ``realm``, for the client ``client``.

    ``realm_access.roles`` always holds the realm's default roles beside any granted;
    ``resource_access.<client>.roles`` the client roles of Hallpass's client (granted directly
    or through a group's role mappings); ``groups`` is what the Group Membership mapper writes,
    full paths ("/oakfield/office") when its "Full group path" switch is on; the Audience mapper
    adds ``client`` to ``aud`` beside Keycloak's own "account". ``preferred_username`` is the
    login name, not an address. ``attributes`` are user attributes a User Attribute mapper
    puts in the token under their own names. ``typ`` is "Bearer" in an access token, "ID" in
    an ID token (whose ``aud`` is the client alone).
    """
    session = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{realm}:{sub}"))
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "sub": sub,
        "typ": "Bearer" if kind == "access" else "ID",
        "azp": client,
        "sid": session,
        "acr": "1",
        "scope": "openid profile email",
        "email_verified": email_verified,
        "name": name,
        "preferred_username": username,
        "given_name": name.split(" ")[0],
        "family_name": name.split(" ")[-1],
    }
    if email is not None:
        claims["email"] = email
    if kind == "access":
        claims["aud"] = [client, "account"]
        claims["allowed-origins"] = ["https://hallpass.oakfield.sch.uk"]
        claims["realm_access"] = {
            "roles": [f"default-roles-{realm}", "offline_access", "uma_authorization", *realm_roles]
        }
        resource_access: dict[str, Any] = {
            "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}
        }
        if client_roles:
            resource_access[client] = {"roles": list(client_roles)}
        claims["resource_access"] = resource_access
    else:
        claims["aud"] = client
        # Keycloak puts the role and group claims in ID tokens only when the mappers say so;
        # Hallpass's client is set up to (the access token is what the API reads).
        claims["realm_access"] = {"roles": [f"default-roles-{realm}", *realm_roles]}
        if client_roles:
            claims["resource_access"] = {client: {"roles": list(client_roles)}}
    if groups is not None:
        claims["groups"] = list(groups)
    claims.update(attributes or {})
    return claims


def google_via_keycloak(
    *,
    email: str = "j.okafor@oakfield.sch.uk",
    name: str = "Jo Okafor",
    hd: str | None = WORKSPACE_DOMAIN,
    realm_roles: Sequence[str] = ("hallpass-staff",),
    groups: Sequence[str] | None = ("/staff",),
    sub: str = "a8d2c4e6-1b3f-4a5c-9e7d-2f4b6a8c0d13",
    kind: Kind = "access",
) -> dict[str, Any]:
    """A Keycloak token for a member of staff brokered from Google Workspace.

    Google's ID token has no roles or groups: only ``sub``, ``email``, ``email_verified`` and,
    for a Workspace account, ``hd`` (the hosted domain). Keycloak's Google identity provider
    makes the user's username their address; an Attribute Importer mapper copies ``hd`` to a
    user attribute, which a User Attribute mapper puts back in Keycloak's token; a Hardcoded
    Group (or Advanced Claim to Group) mapper puts the person in a Keycloak group, whose role
    mappings grant the realm roles. Everything Hallpass maps comes from Keycloak, not Google.
    """
    return keycloak(
        username=email,
        email=email,
        email_verified=True,
        name=name,
        realm_roles=realm_roles,
        client_roles=(),
        groups=groups,
        sub=sub,
        attributes={"hd": hd} if hd is not None else None,
        kind=kind,
    )


def parent_keycloak(
    *,
    email: str = "sam.carter@example.com",
    email_verified: bool = True,
    name: str = "Sam Carter",
    sub: str = "3e5f7a9b-2c4d-4e6f-8a0b-1c3d5e7f9a24",
    kind: Kind = "access",
) -> dict[str, Any]:
    """A carer's own account in the parents' realm: no roles, no groups, an address that
    Keycloak verified by mail (``email_verified`` true) — or not yet (false)."""
    return keycloak(
        username=email,
        email=email,
        email_verified=email_verified,
        name=name,
        realm=PARENTS_REALM,
        client_roles=(),
        groups=None,
        sub=sub,
        kind=kind,
    )


def parent_via_google(
    *,
    email: str = "sam.carter@gmail.com",
    name: str = "Sam Carter",
    sub: str = "6b8d0f2a-4c6e-4a8b-9d1f-3e5a7c9b1d35",
    kind: Kind = "access",
) -> dict[str, Any]:
    """A carer's consumer Google account brokered into the parents' realm: Google vouches for
    the address (``email_verified`` true; a gmail.com account has no ``hd``) and Keycloak
    passes that on."""
    return parent_keycloak(email=email, email_verified=True, name=name, sub=sub, kind=kind)


def parent_unverified(
    *,
    email: str = "sam.carter@example.com",
    sub: str = "9d1f3a5c-7e9b-4b1d-8f3a-5c7e9b1d3f46",
) -> dict[str, Any]:
    """A carer who registered in the parents' realm but has not confirmed their address."""
    return parent_keycloak(email=email, email_verified=False, sub=sub)
