"""Bearer-token authentication and role checks.

Tokens are JWTs verified against a JWKS: the built-in dev issuer's local key in embedded mode, the
school's identity provider (Entra ID, Google Workspace, Keycloak…) otherwise. Every route is behind
``authenticated`` unless a router is deliberately public.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError, KeyParameterError
from joserfc.jwk import JWKRegistry, Key, KeySet, RSAKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
)

from hallpass_kit.errors import HallpassError, ServiceUnavailable, Unauthenticated
from hallpass_kit.identity import IdentityFile, Issuer, map_claims, single_issuer
from hallpass_kit.settings import DEV_ISSUER, CommonSettings

logger = logging.getLogger("hallpass.auth")

ALGORITHMS = ("RS256", "ES256", "PS256")
# Issuer of the tokens services present to each other (never to or from a person).
INTERNAL_ISSUER = "hallpass-internal"


class Role(StrEnum):
    parent = "parent"
    staff = "staff"
    head = "head"
    deputy = "deputy"
    dsl = "dsl"
    office = "office"
    social_media = "social_media"
    cms = "cms"
    admin = "admin"
    # Designated, trained staff who read the pastoral inbox (E7); usually held beside ``staff``.
    pastoral = "pastoral"
    service = "service"
    # Trust roles act in every school of the holder's trust, one school per request, each
    # action recorded against that school.
    trust_admin = "trust_admin"
    trust_dpo = "trust_dpo"


# People who work at the school; machine clients (cms, service) and carers are not among them.
STAFF_ROLES = frozenset(
    {Role.staff, Role.head, Role.deputy, Role.dsl, Role.office, Role.social_media, Role.admin}
)
LEADERSHIP_ROLES = frozenset({Role.head, Role.deputy})
TRUST_ROLES = frozenset({Role.trust_admin, Role.trust_dpo})
# What a trust role also is inside each school of its trust: a trust's administrator
# administers each school; its data protection officer keeps their own role (audit, subject access).
TRUST_ROLE_GRANTS: Mapping[Role, frozenset[Role]] = {
    Role.trust_admin: frozenset({Role.admin}),
    Role.trust_dpo: frozenset(),
}


def school_roles(roles: Iterable[Role]) -> frozenset[Role]:
    """``roles`` with what their trust roles grant inside a school."""
    held = frozenset(roles)
    granted: set[Role] = set(held)
    for role in held & TRUST_ROLES:
        granted |= TRUST_ROLE_GRANTS[role]
    return frozenset(granted)


@dataclass(frozen=True)
class CarerLink:
    """A signed-in carer's record in one school: the account is that guardian there."""

    school: str
    guardian_id: uuid.UUID


@dataclass(frozen=True)
class Principal:
    """Who is calling: one person or machine client, acting inside one school per request.

    ``grants`` lists every school the person may act for and their roles there (a head of one
    school, a trust's officer across its schools, a carer with children in two schools);
    ``school`` and ``roles`` are the one chosen for this request. A token valid for one school
    only arrives with it chosen.
    """

    sub: str
    school: str
    roles: frozenset[Role]
    guardian_id: uuid.UUID | None = None
    email: str | None = None
    expires_at: float = field(default=0.0, compare=False)
    # The issuer's name in the identity file (or the dev issuer's): with ``sub``, the account.
    issuer: str = ""
    email_verified: bool = False
    trust: str | None = None
    grants: tuple[tuple[str, frozenset[Role]], ...] = ()
    # A carer's records, one per school; looked up after the token is verified (never in it).
    carers: tuple[CarerLink, ...] = ()

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def schools(self) -> frozenset[str]:
        """Every school this caller may act for."""
        return frozenset(school for school, _ in self.grants)

    @property
    def needs_school(self) -> bool:
        """A service token from client credentials: the call names the school it is for."""
        return not self.school and self.roles == frozenset({Role.service})

    @property
    def needs_carer_links(self) -> bool:
        """A carer signed in with their own account: their records are yet to be looked up."""
        return Role.parent in self.roles and self.guardian_id is None and not self.carers

    def for_school(self, school: str) -> Principal:
        """This service principal acting for ``school`` (named by the calling service)."""
        if not self.needs_school:
            raise ValueError("only a service token without a school may be given one")
        return replace(self, school=school)

    def with_carers(self, links: Iterable[CarerLink]) -> Principal:
        """This carer with their records; acting for their school when they have one only."""
        carers = tuple(sorted(set(links), key=lambda link: (link.school, str(link.guardian_id))))
        schools = sorted({link.school for link in carers})
        linked = replace(
            self,
            carers=carers,
            grants=tuple((school, frozenset({Role.parent})) for school in schools),
        )
        return linked.acting_for(schools[0]) if len(schools) == 1 else linked

    def acting_for(self, school: str) -> Principal:
        """This person acting for ``school``, one they hold a grant in (``ValueError`` else)."""
        for granted, roles in self.grants:
            if granted == school:
                guardian = next(
                    (link.guardian_id for link in self.carers if link.school == school),
                    self.guardian_id if school == self.school else None,
                )
                return replace(self, school=school, roles=roles, guardian_id=guardian)
        raise ValueError(f"{school!r} is not one of this caller's schools")

    @property
    def actor(self) -> str:
        return self.sub


class CarerDirectory(Protocol):
    """Finds the records of a carer who signed in with their own account (consent owns them;
    other services ask consent, forwarding the carer's own token)."""

    def links(self, principal: Principal, token: str) -> Sequence[CarerLink]: ...


class RememberedCarerLinks:
    """A service's ``CarerDirectory`` away from consent: ``ask(token)`` fetches the carer's
    records from consent with the carer's own token, and the answer is remembered per account
    for a short while.

    A carer's page makes several calls in a row and links change rarely (a sign-in, a code
    redeemed, the office unlinking by hand), so 30 seconds spares consent a call per request.
    The price: an account the office unlinks keeps reaching the service for up to that long. An
    empty answer is never remembered, so a carer who has just redeemed their code is let in at
    once instead of being told for half a minute that they are not linked.
    """

    def __init__(
        self,
        ask: Callable[[str], Sequence[CarerLink]],
        *,
        ttl_seconds: float = 30.0,
        max_accounts: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ask = ask
        self.ttl_seconds = ttl_seconds
        self.max_accounts = max_accounts
        self.clock = clock
        self._known: OrderedDict[tuple[str, str], tuple[float, tuple[CarerLink, ...]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def links(self, principal: Principal, token: str) -> Sequence[CarerLink]:
        account = (principal.issuer, principal.sub)
        now = self.clock()
        with self._lock:
            known = self._known.get(account)
            if known is not None and known[0] > now:
                return known[1]
        links = tuple(self.ask(token))
        if links:
            with self._lock:
                self._known[account] = (now + self.ttl_seconds, links)
                self._known.move_to_end(account)
                while len(self._known) > self.max_accounts:
                    self._known.popitem(last=False)
        return links


class AccessRefused(HallpassError):
    """A caller reached for something their role or family does not allow; always audited."""

    def __init__(
        self,
        detail: str,
        *,
        principal: Principal,
        action: str,
        target: str | None = None,
        status: int = 403,
        code: str = "forbidden",
        rule: str | None = "A1",
    ) -> None:
        super().__init__(detail, code=code, rule=rule)
        self.status = status
        self.title = "Not found" if status == 404 else "Not allowed"
        self.principal = principal
        self.action = action
        self.target = target


def _read_key(path: Path) -> RSAKey:
    # The process that made the file may still be writing it; give it a moment.
    for _ in range(50):
        try:
            return RSAKey.import_key(json.loads(path.read_text()))
        except ValueError:
            time.sleep(0.05)
    raise ValueError(f"{path} does not hold a signing key")


class DevIssuer:
    """The built-in issuer for embedded mode: an RSA key under the data dir, served as JWKS."""

    def __init__(self, key: RSAKey, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def load_or_create(cls, path: Path, issuer: str, audience: str) -> DevIssuer:
        """The key in ``path``, made there (owner-only) by the first process to ask for it."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = RSAKey.generate_key(
                2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"}
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: its key is the one everyone uses
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(json.dumps(key.as_dict(private=True)))
                return cls(key, issuer, audience)
        return cls(_read_key(path), issuer, audience)

    @classmethod
    def generate(cls, issuer: str, audience: str) -> DevIssuer:
        key = RSAKey.generate_key(
            2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"}
        )
        return cls(key, issuer, audience)

    @property
    def kid(self) -> str:
        return str(self.key.as_dict(private=False)["kid"])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def key_set(self) -> KeySet:
        return KeySet.import_key_set({"keys": [self.key.as_dict(private=False)]})

    def issue(
        self,
        *,
        sub: str,
        school: str | None,
        roles: Iterable[Role | str],
        guardian_id: uuid.UUID | str | None = None,
        email: str | None = None,
        ttl_seconds: int = 8 * 3600,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl_seconds,
            "roles": [str(r) for r in roles],
        }
        if school is not None:
            claims["school"] = school
        if guardian_id is not None:
            claims["guardian"] = str(guardian_id)
        if email is not None:
            claims["email"] = email
        if extra:
            claims.update(extra)
        kid = self.key.as_dict(private=False)["kid"]
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, self.key)


# --- claims --------------------------------------------------------------------------------------

# Longest values the claims a principal is built from may carry. Real ones are far shorter (an
# Entra ID subject has 43 characters, an address at most 254); the bounds keep a signed but absurd
# token from carrying megabytes into logs, audit entries and mail headers.
_MAX_SUBJECT = 255
_MAX_SCHOOL = 200
_MAX_EMAIL = 320
# The last second of the year 9999: a NumericDate beyond it is no date, and one that large could
# not even be turned into a float.
_LAST_DATE = 253_402_300_799

# C0 and C1 control characters, DEL and lone surrogates: no school id, subject or address holds
# one, and each would travel on into logs, audit entries and mail headers.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _without_control_characters(value: str) -> str:
    if _CONTROL.search(value) is not None:
        raise ValueError("control character")
    return value


def _uuid_text(value: object) -> uuid.UUID:
    # Only a string: in Python mode pydantic would also take bytes or a UUID object, and a
    # token's claims are JSON.
    if not isinstance(value, str):
        raise ValueError("not a string")
    return uuid.UUID(value)


_PLAIN = AfterValidator(_without_control_characters)
_Subject = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_SUBJECT), _PLAIN]
_School = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_SCHOOL), _PLAIN]
_Email = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_EMAIL), _PLAIN]
_GuardianId = Annotated[uuid.UUID, PlainValidator(_uuid_text)]
# RFC 7519 NumericDate: a JSON number (strict: never a string or a boolean), finite, a real date.
_NumericDate = Annotated[float, Field(ge=0, le=_LAST_DATE, allow_inf_nan=False)]


class _Claims(BaseModel):
    """The claims a principal is built from, under their own names whatever the provider calls
    them. Strict: a claim of the wrong JSON type is refused, never coerced or iterated."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sub: _Subject
    # Required of people; a service's token from client credentials names none and speaks for the
    # school named in each call (``Principal.for_school``).
    school: _School | None = None
    roles: list[str] = []
    # The optional claims may also be null: some providers' mappers send an unset attribute so.
    guardian: _GuardianId | None = None
    email: _Email | None = None
    trust: _School | None = None
    exp: _NumericDate
    nbf: _NumericDate | None = None
    iat: _NumericDate | None = None


_NUMERIC_DATE = "must be a number of seconds since 1970 (a NumericDate)"
_WHAT_A_CLAIM_MUST_BE = {
    "sub": f"must be a non-empty string of at most {_MAX_SUBJECT} characters, "
    "without control characters",
    "school": f"must name one school: a non-empty string of at most {_MAX_SCHOOL} characters, "
    "without control characters",
    "roles": "must be a list of strings",
    "guardian": "must be a guardian id (a UUID)",
    "email": f"must be a string of at most {_MAX_EMAIL} characters, without control characters",
    "trust": "must name one trust of the identity file",
    "exp": _NUMERIC_DATE,
    "nbf": _NUMERIC_DATE,
    "iat": _NUMERIC_DATE,
}


# The dev and internal issuers (``DevIssuer.issue``) write Hallpass's own claim names.
_INTERNAL_CLAIM_NAMES = {
    name: name
    for name in ("sub", "school", "roles", "guardian", "email", "trust", "exp", "nbf", "iat")
}


def _parse_claims(claims: Mapping[str, Any], names: Mapping[str, str]) -> _Claims:
    if names["school"] in claims and claims[names["school"]] is None:
        # Absent is a service's token from client credentials; null is a school of no type.
        raise Unauthenticated(
            f"The token's `{names['school']}` claim {_WHAT_A_CLAIM_MUST_BE['school']}.",
            code="invalid_token",
            rule="A1",
        )
    try:
        return _Claims.model_validate(
            {field: claims[name] for field, name in names.items() if name in claims}
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0])
        # School and roles are what every access decision is scoped by (A1).
        rule = "A1" if field in ("school", "roles") else None
        if error["type"] == "missing":
            detail = f"The token has no `{names[field]}` claim."
        else:
            detail = f"The token's `{names[field]}` claim {_WHAT_A_CLAIM_MUST_BE[field]}."
        raise Unauthenticated(detail, code="invalid_token", rule=rule) from None


def _invalid_token() -> Unauthenticated:
    return Unauthenticated("The bearer token is not valid.", code="invalid_token")


# --- the identity provider's keys ----------------------------------------------------------------

# Keys are asked for again once they are an hour old even when every token names a known one, so
# a key the provider withdrew stops verifying within the hour.
_JWKS_MAX_AGE_SECONDS = 3600.0
# A JWKS is a few kilobytes; an answer far larger is not one.
_JWKS_MAX_BYTES = 512 * 1024


class UnusableJwks(Exception):
    """The provider answered, but not with a key set that can verify anything."""


class IdentityProviderKeys:
    """The identity provider's signing keys, fetched from its JWKS and kept between requests.

    The keys are fetched when none are held, when they are an hour old, and when a token names a
    key they lack (the provider rotated its keys). Fetches, failed ones included, are at least
    ``refresh_seconds`` apart, so a flood of forged key ids reaches the provider once per window.
    While the provider cannot be reached, the keys already held go on verifying.
    """

    def __init__(
        self,
        url: str | Callable[[], str],
        *,
        refresh_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A URL, or how to find it (OpenID Connect discovery), asked when keys are fetched.
        self._url = url
        self._refresh_seconds = refresh_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        # One fetch at a time: requests arriving meanwhile wait for it rather than fetch too.
        self._lock = threading.Lock()
        self._key_set: KeySet | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failing = False

    def current(self) -> KeySet:
        """The keys to verify with; fetched first when none are held or they are an hour old."""
        with self._lock:
            due = (
                self._fetched_at is None
                or self._clock() - self._fetched_at >= _JWKS_MAX_AGE_SECONDS
            )
            if due and self._may_fetch():
                self._fetch()
            return self._held()

    def refreshed(self) -> KeySet:
        """The keys after asking the provider again, if the last ask is far enough behind.

        Called when no held key fits a token: if the provider could not be reached, the token
        can be neither accepted nor refused, so the answer is "unavailable", not "invalid".
        """
        with self._lock:
            if self._may_fetch():
                self._fetch()
            if self._failing:
                raise self._unavailable()
            return self._held()

    def _held(self) -> KeySet:
        if self._key_set is None:
            raise self._unavailable()
        return self._key_set

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self._refresh_seconds
        )

    def _unavailable(self) -> ServiceUnavailable:
        waited = 0.0 if self._attempted_at is None else self._clock() - self._attempted_at
        return ServiceUnavailable(
            "The identity provider's signing keys cannot be fetched, so the bearer token cannot "
            "be checked; try again shortly.",
            code="identity_provider_unavailable",
            retry_after=max(1, math.ceil(self._refresh_seconds - waited)),
        )

    def _fetch(self) -> None:
        self._attempted_at = self._clock()
        url = self._url if isinstance(self._url, str) else "(discovery)"
        try:
            url = self._url if isinstance(self._url, str) else self._url()
            body = download_json(url, self._timeout_seconds)
            pointed = _jwks_uri_of_discovery(body)
            if pointed is not None:
                # A discovery document given where the key set was expected: follow it rather
                # than refuse every token while the keys sit one link away.
                url = pointed
                body = download_json(url, self._timeout_seconds)
            key_set = _key_set_from(body)
        except (httpx.HTTPError, UnusableJwks, ValueError, RecursionError) as exc:
            self._failing = True
            logger.warning("the identity provider's JWKS at %s is unusable: %r", url, exc)
            return
        self._key_set = key_set
        self._fetched_at = self._attempted_at
        self._failing = False
        logger.info("fetched %s signing keys from %s", len(key_set.keys), url)


def download_json(url: str, timeout_seconds: float) -> bytes:
    """A small JSON document from the identity provider, bounded in size and in time.

    httpx's timeout bounds each step (connect, each read); the deadline bounds the whole, so a
    provider trickling bytes cannot hold a request either.
    """
    deadline = time.monotonic() + timeout_seconds
    body = bytearray()
    with httpx.stream(
        "GET", url, timeout=timeout_seconds, headers={"Accept": "application/json"}
    ) as response:
        if not response.is_success:
            raise UnusableJwks(f"HTTP {response.status_code}")
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > _JWKS_MAX_BYTES:
                raise UnusableJwks(f"more than {_JWKS_MAX_BYTES} bytes")
            if time.monotonic() > deadline:
                raise UnusableJwks(f"not complete within {timeout_seconds} s")
    return bytes(body)


class Discovery:
    """An issuer's OpenID Connect discovery document, fetched once it is first needed and kept
    (the keys it points to are refreshed by ``IdentityProviderKeys``)."""

    def __init__(self, url: str, issuer: str, *, timeout_seconds: float) -> None:
        self.url = url
        self._issuer = issuer
        self._timeout_seconds = timeout_seconds
        self._document: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                document = json.loads(download_json(self.url, self._timeout_seconds))
                if not isinstance(document, dict):
                    raise UnusableJwks("the discovery document is not a JSON object")
                # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was
                # asked for, or an attacker's metadata could stand in for the provider's.
                if document.get("issuer") != self._issuer:
                    raise UnusableJwks(
                        f"the discovery document names issuer {document.get('issuer')!r}, "
                        f"not {self._issuer!r}"
                    )
                if not isinstance(document.get("jwks_uri"), str):
                    raise UnusableJwks("the discovery document has no jwks_uri")
                self._document = document
            return self._document

    def jwks_uri(self) -> str:
        return str(self.document()["jwks_uri"])


def _jwks_uri_of_discovery(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and "keys" not in document:
        pointed = document.get("jwks_uri")
        if isinstance(pointed, str) and pointed.startswith(("https://", "http://")):
            return pointed
    return None


def _key_set_from(body: bytes) -> KeySet:
    document = json.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise UnusableJwks("not a JWKS document")
    keys: list[Key] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError, KeyError):
            # RFC 7517 section 5: a key that is not understood is skipped, not fatal to the set.
            continue
    if not keys:
        raise UnusableJwks("no usable key in the set")
    return KeySet(keys)


def _kid_of(token: str) -> str | None:
    """The ``kid`` of a well-formed compact JWS using an accepted algorithm; read unverified."""
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise _invalid_token() from exc
    kid = header.get("kid")
    if header.get("alg") not in ALGORITHMS or not (kid is None or isinstance(kid, str)):
        raise _invalid_token()
    return kid


def _decode_with(token: str, kid: str | None, keys: KeySet) -> jwt.Token | None:
    """The token, verified by the key of ``keys`` it names; None when ``keys`` lacks that key.

    A token without ``kid`` is tried against every key; when none verifies it, it may be signed
    by a key not fetched yet, so that is "lacks the key" too.
    """
    candidates = [key for key in keys if key.kid == kid] if kid is not None else list(keys)
    for key in candidates:
        try:
            return jwt.decode(token, key, algorithms=list(ALGORITHMS))
        except (BadSignatureError, KeyParameterError):
            # A key of another type or algorithm, or not the key that signed: try the next one.
            continue
        except (JoseError, ValueError) as exc:
            raise _invalid_token() from exc
    if kid is not None and candidates:
        # The key the token names is held and its signature does not hold: a forgery, not news.
        raise _invalid_token()
    return None


# --- the verifier --------------------------------------------------------------------------------


class _Times(BaseModel):
    """The registered time claims every token carries, strictly typed."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    exp: _NumericDate
    nbf: _NumericDate | None = None
    iat: _NumericDate | None = None


class _Person(BaseModel):
    """A mapped person's free-text parts, bounded and without control characters."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sub: _Subject
    email: _Email | None = None


_PERSON_WORDING = {"sub": "subject", "email": "email address"}


class _TrustedIssuer:
    """One issuer of the identity file: its keys (found by discovery), audiences and mapping."""

    def __init__(
        self,
        issuer: Issuer,
        identity: IdentityFile,
        settings: CommonSettings,
        clock: Callable[[], float],
    ) -> None:
        self.issuer = issuer
        self.identity = identity
        url: str | Callable[[], str]
        if issuer.jwks_uri is not None:
            url = issuer.jwks_uri
        else:
            self.discovery = Discovery(
                issuer.discovery_url,
                issuer.issuer,
                timeout_seconds=settings.auth_jwks_timeout_seconds,
            )
            url = self.discovery.jwks_uri
        self.keys = IdentityProviderKeys(
            url,
            refresh_seconds=settings.auth_jwks_refresh_seconds,
            timeout_seconds=settings.auth_jwks_timeout_seconds,
            clock=clock,
        )
        self.claims = jwt.JWTClaimsRegistry(
            leeway=settings.auth_leeway_seconds,
            iss={"essential": True, "value": issuer.issuer},
            aud={"essential": True, "values": list(issuer.audiences)},
            exp={"essential": True},
        )

    def decode(self, token: str, kid: str | None) -> jwt.Token:
        decoded = _decode_with(token, kid, self.keys.current())
        if decoded is None:
            # The provider may have rotated its keys: ask it again (paced), then retry once.
            decoded = _decode_with(token, kid, self.keys.refreshed())
        if decoded is None:
            raise _invalid_token()
        return decoded

    def principal(self, claims: dict[str, Any]) -> Principal:
        times = _parse_times(claims)
        person = map_claims(self.identity, self.issuer, claims)
        try:
            _Person(sub=person.subject, email=person.email)
        except ValidationError as exc:
            field_name = str(exc.errors()[0]["loc"][0])
            raise Unauthenticated(
                f"The token's {_PERSON_WORDING[field_name]} {_WHAT_A_CLAIM_MUST_BE[field_name]}.",
                code="invalid_token",
            ) from None
        _validate_values(claims, self.claims)
        roles = frozenset(Role(role) for role in person.roles)
        grants = tuple(
            (school, school_roles(Role(role) for role in held)) for school, held in person.grants
        )
        principal = Principal(
            sub=person.subject,
            school="",
            roles=roles,
            email=person.email,
            expires_at=times.exp,
            issuer=self.issuer.name,
            email_verified=person.email_verified,
            trust=person.trust,
            grants=grants,
        )
        return principal.acting_for(grants[0][0]) if len(grants) == 1 else principal


def _parse_times(claims: Mapping[str, Any]) -> _Times:
    try:
        return _Times.model_validate(claims)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        if error["type"] == "missing":
            detail = f"The token has no `{name}` claim."
        else:
            detail = f"The token's `{name}` claim {_NUMERIC_DATE}."
        raise Unauthenticated(detail, code="invalid_token") from None


def _validate_values(claims: dict[str, Any], registry: jwt.JWTClaimsRegistry) -> None:
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise Unauthenticated(
            f"The bearer token is not acceptable: {exc.description}", code="invalid_token"
        ) from exc


def _unverified_issuer(token: str) -> str | None:
    """The ``iss`` of a compact JWS, read before verifying to know whose keys verify it."""
    try:
        payload = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, RecursionError) as exc:
        raise _invalid_token() from exc
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


class TokenVerifier:
    """Verifies bearer tokens; caches verified tokens until they expire (a JWT is immutable).

    With ``key_set`` the dev issuer's tokens (Hallpass's own claims) are checked against those
    fixed keys. The identity file's issuers are each found by their ``iss``, verified against
    their own keys (found by discovery) and mapped by their own table; the one-issuer settings
    (``HALLPASS_AUTH_JWKS_URL``) add one more issuer of Hallpass-shaped tokens. ``clock``
    (monotonic seconds) paces the key fetches.
    """

    def __init__(
        self,
        settings: CommonSettings,
        *,
        key_set: KeySet | None = None,
        identity: IdentityFile | None = None,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._key_set = key_set
        self.identity = identity if identity is not None else settings.identity()
        issuers = list(self.identity.issuers)
        if (
            settings.auth_jwks_url is not None
            and settings.auth_issuer != DEV_ISSUER
            and self.identity.by_issuer(settings.auth_issuer) is None
        ):
            issuers.append(
                single_issuer(
                    name="default",
                    issuer=settings.auth_issuer,
                    audience=settings.auth_audience,
                    jwks_uri=settings.auth_jwks_url,
                    school_claim=settings.auth_school_claim,
                    roles_claim=settings.auth_roles_claim,
                )
            )
        self._issuers = {
            issuer.issuer: _TrustedIssuer(issuer, self.identity, settings, clock)
            for issuer in issuers
        }
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._dev_claims = jwt.JWTClaimsRegistry(
            leeway=settings.auth_leeway_seconds,
            iss={"essential": True, "value": settings.auth_issuer},
            aud={"essential": True, "value": settings.auth_audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        self._internal: tuple[str, KeySet] | None = None
        self._internal_claims = jwt.JWTClaimsRegistry(
            leeway=settings.auth_leeway_seconds,
            iss={"essential": True, "value": INTERNAL_ISSUER},
            aud={"essential": True, "value": settings.auth_audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def trust_internal(self, issuer: DevIssuer) -> None:
        """Also accept ``service`` tokens signed by this deployment's internal issuer.

        Services call each other with their own identity whatever the people's identity provider
        is; the key is the deployment's service key (or one in this process's memory only).
        """
        if issuer.issuer != INTERNAL_ISSUER:
            raise ValueError(f"the internal issuer must be named {INTERNAL_ISSUER!r}")
        self._internal = (issuer.kid, issuer.key_set())

    def readiness(self) -> dict[str, Callable[[], None]]:
        """One check per trusted issuer: its keys are held or can be fetched now (paced as
        requests are), so a balancer stops sending people whose tokens cannot be checked."""

        def check(trusted: _TrustedIssuer) -> Callable[[], None]:
            def probe() -> None:
                trusted.keys.current()  # raises ServiceUnavailable when no key can be had

            return probe

        return {
            f"identity.{trusted.issuer.name}": check(trusted) for trusted in self._issuers.values()
        }

    def discovery(self, issuer_name: str) -> Discovery | None:
        """The discovery document of the identity file's issuer so named (browser sign-in)."""
        for trusted in self._issuers.values():
            if trusted.issuer.name == issuer_name:
                return getattr(trusted, "discovery", None)
        return None

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired; no I/O, no crypto."""
        principal = self._cache.get(token)
        if principal is not None and principal.expires_at > time.time():
            return principal
        return None

    def verify(self, token: str) -> Principal:
        cached = self.cached(token)
        if cached is not None:
            return cached
        principal = self._verify_uncached(token)
        with self._lock:
            self._cache[token] = principal
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify_uncached(self, token: str) -> Principal:
        kid = _kid_of(token)
        if self._internal is not None and kid == self._internal[0]:
            return self._verify_internal(token, kid, self._internal[1])
        iss = _unverified_issuer(token)
        trusted = self._issuers.get(iss) if iss is not None else None
        if trusted is not None:
            decoded = trusted.decode(token, kid)
            return trusted.principal(decoded.claims)
        if self._key_set is None:
            if not self._issuers:
                raise Unauthenticated("No signing key is configured.", code="invalid_token")
            raise Unauthenticated(
                f"The token's issuer `{iss}` is not one Hallpass is set up to trust."
                if iss is not None and len(iss) <= 200
                else "The token names no issuer Hallpass is set up to trust.",
                code="invalid_token",
                rule="A1",
            )
        dev = _decode_with(token, kid, self._key_set)
        if dev is None:
            raise _invalid_token()
        return self._hallpass_principal(dev.claims, self._dev_claims, issuer=DEV_ISSUER)

    def _verify_internal(self, token: str, kid: str, key_set: KeySet) -> Principal:
        decoded = _decode_with(token, kid, key_set)
        if decoded is None:
            raise _invalid_token()
        principal = self._hallpass_principal(
            decoded.claims, self._internal_claims, issuer=INTERNAL_ISSUER
        )
        # The internal key speaks only for services: a person's role from it is a forgery.
        if principal.roles != frozenset({Role.service}):
            raise _invalid_token()
        return principal

    def _hallpass_principal(
        self, claims: dict[str, Any], registry: jwt.JWTClaimsRegistry, *, issuer: str
    ) -> Principal:
        """A token in Hallpass's own shape (the dev and internal issuers): ``school``,
        ``roles``, ``guardian`` for a carer, ``trust`` for a trust role."""
        # Shapes first, so a claim of the wrong type is named in one wording; then the values
        # (issuer, audience, expiry), which joserfc checks.
        parsed = _parse_claims(claims, _INTERNAL_CLAIM_NAMES)
        _validate_values(claims, registry)
        # Role names Hallpass does not know are the provider's business, not a reason to refuse.
        roles = frozenset(Role(r) for r in parsed.roles if r in Role.__members__)
        if not roles:
            raise Unauthenticated(
                "The token carries no Hallpass role.", code="invalid_token", rule="A1"
            )
        # A service names its school per call; a trust officer's schools are their trust's.
        if parsed.school is None and roles != frozenset({Role.service}) and not roles & TRUST_ROLES:
            raise Unauthenticated(
                "The token has no `school` claim.", code="invalid_token", rule="A1"
            )
        if Role.parent in roles and parsed.guardian is None:
            raise Unauthenticated(
                "A carer's token must name the guardian.", code="invalid_token", rule="A2"
            )
        grants: dict[str, frozenset[Role]] = {}
        if parsed.school is not None:
            grants[parsed.school] = school_roles(roles)
        if roles & TRUST_ROLES:
            trust = self.identity.trusts.get(parsed.trust or "")
            if trust is None:
                raise Unauthenticated(
                    "A trust role's token must name a trust of the identity file (`trust`).",
                    code="invalid_token",
                    rule="A1",
                )
            if parsed.school is not None and parsed.school not in trust.schools:
                # A trust's roles hold in its own schools only; the token's school would
                # otherwise receive them too.
                raise Unauthenticated(
                    "A trust role's token must name one of its trust's schools (`school`).",
                    code="invalid_token",
                    rule="A1",
                )
            for school in trust.schools:
                grants[school] = grants.get(school, frozenset()) | school_roles(roles & TRUST_ROLES)
        carers = (
            (CarerLink(parsed.school, parsed.guardian),)
            if parsed.guardian is not None and parsed.school is not None and Role.parent in roles
            else ()
        )
        principal = Principal(
            sub=parsed.sub,
            school="",
            roles=roles,
            guardian_id=parsed.guardian,
            email=parsed.email,
            expires_at=parsed.exp,
            issuer=issuer,
            # The dev issuer is Hallpass itself: what it says, it says verified.
            email_verified=parsed.email is not None,
            trust=parsed.trust if roles & TRUST_ROLES else None,
            grants=tuple(sorted(grants.items())),
            carers=carers,
        )
        if not grants:
            return principal  # a service's token: the call names the school
        if parsed.school is not None:
            return principal.acting_for(parsed.school)
        return principal.acting_for(sorted(grants)[0]) if len(grants) == 1 else principal
