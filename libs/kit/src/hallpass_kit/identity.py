"""Who the school's identity providers vouch for: trusts, trusted issuers and their claim mapping.

A deployment names, in one TOML file (``HALLPASS_IDENTITY_FILE``, documented in
``docs/identity.md``), the trusts and the schools they own and every issuer whose tokens it
accepts: where to discover it, which audiences are ours, and how its claims become a principal
(roles through a table, school from a claim or from rules, the email and the stable subject).
The file is read and checked once at start-up; a mistake in it stops the process with a message
naming the line's key, never a request later.

Everything here is pure: claims in, a person out. Fetching keys is ``auth.py``'s business.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from hallpass_kit.errors import Unauthenticated


class IdentityFileError(ValueError):
    """The identity file cannot be used; raised at start-up with what to fix."""


class People(StrEnum):
    """Whom an issuer signs in: the school's staff (roles from claims) or carers (linked)."""

    staff = "staff"
    parents = "parents"


class EmailVerified(StrEnum):
    """When an address from the token counts as verified (parents are linked only by one)."""

    # Only when the token says ``email_verified: true`` (Keycloak, Google, most providers).
    claim = "claim"
    # Every address the issuer puts in a token is one it controls (an Entra ID tenant whose
    # domains are verified; never a consumer provider).
    always = "always"


_Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
_ClaimPath = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_School = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,200}$")]
_Value = Annotated[str, StringConstraints(min_length=1, max_length=500)]

# Roles a person can hold; ``service`` only machines hold, and trust roles need a trust.
PERSON_ROLES = frozenset(
    {
        "parent",
        "staff",
        "head",
        "deputy",
        "dsl",
        "office",
        "social_media",
        "cms",
        "admin",
        "pastoral",
        "service",
        "trust_admin",
        "trust_dpo",
    }
)
TRUST_ROLES = frozenset({"trust_admin", "trust_dpo"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trust(_Strict):
    """A multi-academy trust: its schools, each in this trust only."""

    name: str = ""
    schools: list[_School] = Field(min_length=1)


class RoleMapping(_Strict):
    """Roles from a claim path, through a table when the provider's names are not Hallpass's."""

    # ``roles`` (Entra ID app roles), ``realm_access.roles`` or ``resource_access.<client>.roles``
    # (Keycloak), ``groups``, ``scp`` (a space-separated string).
    claim: _ClaimPath = "roles"
    # Provider role or group → Hallpass role(s). Without a table the provider's values are taken
    # as Hallpass role names; with one, values missing from it are ignored.
    map: dict[_Value, str | list[str]] | None = None

    @field_validator("map")
    @classmethod
    def _known_roles(
        cls, table: dict[str, str | list[str]] | None
    ) -> dict[str, str | list[str]] | None:
        for provider_value, roles in (table or {}).items():
            for role in [roles] if isinstance(roles, str) else roles:
                if role not in PERSON_ROLES:
                    raise ValueError(
                        f"{provider_value!r} maps to {role!r}, which is not a Hallpass role "
                        f"(one of {', '.join(sorted(PERSON_ROLES))})"
                    )
        return table

    def hallpass_roles(self, values: Sequence[str]) -> set[str]:
        if self.map is None:
            return set(values)
        found: set[str] = set()
        for value in values:
            mapped = self.map.get(value)
            if mapped is not None:
                found.update([mapped] if isinstance(mapped, str) else mapped)
        return found


class SchoolRule(_Strict):
    """When every claim in ``when`` holds its value, the person works in ``schools`` (or in
    every school of ``trust``). A list claim (``groups``) holds a value when it contains it."""

    when: dict[_ClaimPath, _Value] = Field(min_length=1)
    schools: list[_School] = []
    trust: _Name | None = None

    @model_validator(mode="after")
    def _names_somewhere(self) -> Self:
        if not self.schools and self.trust is None:
            raise ValueError("a school rule names `schools` or a `trust`")
        return self


class SchoolMapping(_Strict):
    """Which school a staff token is for: a claim holding the school (through ``map`` when the
    provider's values are not school ids), or rules over the claims (tenant + group…)."""

    claim: _ClaimPath | None = None
    map: dict[_Value, _School] | None = None
    rules: list[SchoolRule] = []

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.claim is None and not self.rules:
            raise ValueError("say where the school comes from: a `claim` or `rules`")
        if self.map is not None and self.claim is None:
            raise ValueError("`map` translates the values of `claim`, which is not set")
        return self


class SignIn(_Strict):
    """Browser sign-in with this issuer (authorization code + PKCE)."""

    client_id: _Value
    # The client secret is never in the file: the name of the environment variable holding it
    # (a public client with PKCE alone needs none).
    client_secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = (
        None
    )
    scopes: list[_Value] = ["openid", "profile", "email"]
    # What the sign-in page calls this way in: "Staff (Microsoft 365)", "Parents".
    label: str = ""


class Issuer(_Strict):
    """One trusted issuer: where its keys are, which audiences are ours, how its claims map."""

    name: _Name
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    # OpenID Connect discovery document; by default ``<issuer>/.well-known/openid-configuration``.
    discovery: str | None = None
    # Fixed JWKS URL instead of discovery (a provider without discovery).
    jwks_uri: str | None = None
    audiences: list[_Value] = Field(min_length=1)
    people: People = People.staff
    subject: _ClaimPath = "sub"
    # First claim present holding an address wins (Entra ID puts none in ``email`` by default).
    email: list[_ClaimPath] = ["email"]
    email_verified: EmailVerified = EmailVerified.claim
    # Claims that must hold exactly these values (an Entra tenant: ``tid``), or one of a list.
    require: dict[_ClaimPath, _Value | list[_Value]] = {}
    roles: RoleMapping = RoleMapping()
    school: SchoolMapping | None = None
    # Trust roles in this issuer's tokens act across this trust's schools.
    trust: _Name | None = None
    sign_in: SignIn | None = None

    @field_validator("issuer", "discovery", "jwks_uri")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _staff_have_a_school(self) -> Self:
        if self.people is People.staff and self.school is None and self.trust is None:
            # (a realm of carers only would say ``people = "parents"``)
            raise ValueError(
                "a staff issuer needs `school` (a claim or rules) or a `trust`, so every "
                "token names where its holder works"
            )
        if self.people is People.parents and self.school is not None:
            raise ValueError(
                "a parents' issuer takes no `school`: carers' schools come from their links"
            )
        return self

    @property
    def discovery_url(self) -> str:
        if self.discovery is not None:
            return self.discovery
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class IdentityFile(_Strict):
    """The whole identity file."""

    trusts: dict[_Name, Trust] = {}
    issuers: list[Issuer] = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        owner: dict[str, str] = {}
        for trust_id, trust in self.trusts.items():
            for school in trust.schools:
                if school in owner and owner[school] != trust_id:
                    raise ValueError(
                        f"school {school!r} is in trusts {owner[school]!r} and {trust_id!r}; "
                        "a school belongs to one trust"
                    )
                owner[school] = trust_id
        names: set[str] = set()
        issuers: set[str] = set()
        for issuer in self.issuers:
            if issuer.name in names:
                raise ValueError(f"two issuers are named {issuer.name!r}")
            if issuer.issuer in issuers:
                raise ValueError(f"the issuer {issuer.issuer!r} is listed twice")
            names.add(issuer.name)
            issuers.add(issuer.issuer)
            trusts = [issuer.trust] + [
                rule.trust for rule in (issuer.school.rules if issuer.school else [])
            ]
            for trust_id in filter(None, trusts):
                if trust_id not in self.trusts:
                    raise ValueError(
                        f"issuer {issuer.name!r} names trust {trust_id!r}, which is not in [trusts]"
                    )
        return self

    def trust_of(self, school: str) -> str | None:
        for trust_id, trust in self.trusts.items():
            if school in trust.schools:
                return trust_id
        return None

    def by_issuer(self, iss: str) -> Issuer | None:
        for issuer in self.issuers:
            if issuer.issuer == iss:
                return issuer
        return None

    def by_name(self, name: str) -> Issuer | None:
        for issuer in self.issuers:
            if issuer.name == name:
                return issuer
        return None


def load_identity_file(path: Path) -> IdentityFile:
    """The identity file at ``path``, checked; ``IdentityFileError`` says what is wrong."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IdentityFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise IdentityFileError(f"{path}: not valid TOML ({exc})") from exc
    return parse_identity(document, source=str(path))


def parse_identity(document: Mapping[str, Any], *, source: str = "identity file") -> IdentityFile:
    try:
        return IdentityFile.model_validate(document)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top)"
            lines.append(f"  {where}: {error['msg']}")
        raise IdentityFileError(f"{source} is not usable:\n" + "\n".join(lines)) from None


# --- claims → a person ---------------------------------------------------------------------------


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted claim path (``realm_access.roles``); a top-level claim whose own name
    holds dots (``extn.school``, a URL-shaped name) is found first. None when absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any, path: str) -> list[str]:
    """A claim holding strings: a list of them, or one string (space-separated, as ``scp``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise Unauthenticated(
        f"The token's `{path}` claim must be a string or a list of strings.",
        code="invalid_token",
        rule="A1",
    )


def _holds(claims: Mapping[str, Any], path: str, expected: str | list[str]) -> bool:
    value = claim_at(claims, path)
    accepted = [expected] if isinstance(expected, str) else expected
    if isinstance(value, str):
        return value in accepted
    if isinstance(value, list):
        return any(isinstance(item, str) and item in accepted for item in value)
    return False


@dataclass(frozen=True)
class MappedPerson:
    """What an issuer's token says about its holder, in Hallpass's terms."""

    subject: str
    roles: frozenset[str]
    # Each school the person may act for, with the roles they hold there.
    grants: tuple[tuple[str, frozenset[str]], ...]
    trust: str | None
    email: str | None
    email_verified: bool


def map_claims(identity: IdentityFile, issuer: Issuer, claims: Mapping[str, Any]) -> MappedPerson:
    """The person ``claims`` (already verified as ``issuer``'s) stand for, or 401 naming what is
    missing. Pure: the same claims always give the same person."""
    for path, expected in issuer.require.items():
        if not _holds(claims, path, expected):
            raise Unauthenticated(
                f"The token's `{path}` claim is not one issuer `{issuer.name}` accepts.",
                code="invalid_token",
                rule="A1",
            )
    subject = claim_at(claims, issuer.subject)
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated(
            f"The token has no `{issuer.subject}` claim to identify its holder by.",
            code="invalid_token",
            rule="A1",
        )
    email = _email(claims, issuer)
    verified = email is not None and (
        issuer.email_verified is EmailVerified.always
        or claim_at(claims, "email_verified") in (True, "true")
    )
    if issuer.people is People.parents:
        return MappedPerson(
            subject=subject,
            roles=frozenset({"parent"}),
            grants=(),
            trust=None,
            email=email,
            email_verified=verified,
        )
    role_values = _strings(claim_at(claims, issuer.roles.claim), issuer.roles.claim)
    roles = issuer.roles.hallpass_roles(role_values)
    roles &= PERSON_ROLES
    if not roles:
        raise Unauthenticated(
            f"The token's `{issuer.roles.claim}` claim maps to no Hallpass role "
            f"(issuer `{issuer.name}`).",
            code="invalid_token",
            rule="A1",
        )
    if "parent" in roles:
        # One realm may hold staff and carers (Keycloak); a carer's schools come from their
        # links, never from claims, and the same sign-in is never both.
        if roles != {"parent"}:
            raise Unauthenticated(
                "The token carries a carer's role beside a staff role; sign in as one or the "
                "other.",
                code="invalid_token",
                rule="A2",
            )
        return MappedPerson(
            subject=subject,
            roles=frozenset({"parent"}),
            grants=(),
            trust=None,
            email=email,
            email_verified=verified,
        )
    if roles == {"service"}:
        # Another Hallpass service by client credentials: it speaks for no one school and names
        # the school it acts for in each call.
        return MappedPerson(
            subject=subject,
            roles=frozenset(roles),
            grants=(),
            trust=None,
            email=email,
            email_verified=False,
        )
    if "service" in roles:
        raise Unauthenticated(
            "The token carries the service role beside a person's role.",
            code="invalid_token",
            rule="A1",
        )
    school_roles = roles - TRUST_ROLES
    trust_roles = roles & TRUST_ROLES
    grants: dict[str, set[str]] = {}
    trust = issuer.trust
    for school in _schools(identity, issuer, claims):
        if school_roles:
            grants.setdefault(school, set()).update(school_roles)
    if trust_roles:
        if trust is None:
            raise Unauthenticated(
                f"The token carries a trust role but issuer `{issuer.name}` names no trust.",
                code="invalid_token",
                rule="A1",
            )
        for school in identity.trusts[trust].schools:
            grants.setdefault(school, set()).update(trust_roles)
    if not grants:
        what = issuer.school.claim if issuer.school and issuer.school.claim else "school rules"
        raise Unauthenticated(
            f"The token names no school (from {what}, issuer `{issuer.name}`).",
            code="invalid_token",
            rule="A1",
        )
    return MappedPerson(
        subject=subject,
        roles=frozenset(roles),
        grants=tuple(sorted((school, frozenset(r)) for school, r in grants.items())),
        trust=trust if trust_roles else None,
        email=email,
        email_verified=verified,
    )


_ADDRESS = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}$")


def _email(claims: Mapping[str, Any], issuer: Issuer) -> str | None:
    for path in issuer.email:
        value = claim_at(claims, path)
        # ``preferred_username`` need not be an address (Keycloak's is a login name).
        if isinstance(value, str) and len(value) <= 320 and _ADDRESS.match(value):
            return value
    return None


def _schools(identity: IdentityFile, issuer: Issuer, claims: Mapping[str, Any]) -> list[str]:
    mapping = issuer.school
    if mapping is None:
        return []
    found: list[str] = []
    if mapping.claim is not None:
        for value in _strings(claim_at(claims, mapping.claim), mapping.claim):
            school = value if mapping.map is None else mapping.map.get(value)
            if school is not None and _SCHOOL_TEXT.match(school):
                found.append(school)
    for rule in mapping.rules:
        if all(_holds(claims, path, value) for path, value in rule.when.items()):
            found.extend(rule.schools)
            if rule.trust is not None:
                found.extend(identity.trusts[rule.trust].schools)
    return list(dict.fromkeys(found))


_SCHOOL_TEXT = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")


def single_issuer(
    *,
    name: str,
    issuer: str,
    audience: str,
    jwks_uri: str | None,
    school_claim: str,
    roles_claim: str,
) -> Issuer:
    """The issuer described by the one-issuer settings (``HALLPASS_AUTH_ISSUER``…), kept for
    deployments that put Hallpass's own claims in their tokens."""
    return Issuer(
        name=name,
        issuer=issuer,
        jwks_uri=jwks_uri,
        audiences=[audience],
        roles=RoleMapping(claim=roles_claim),
        school=SchoolMapping(claim=school_claim),
    )
