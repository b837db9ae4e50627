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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

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
from hallpass_kit.settings import CommonSettings

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


# People who work at the school; machine clients (cms, service) and carers are not among them.
STAFF_ROLES = frozenset(
    {Role.staff, Role.head, Role.deputy, Role.dsl, Role.office, Role.social_media, Role.admin}
)
LEADERSHIP_ROLES = frozenset({Role.head, Role.deputy})


@dataclass(frozen=True)
class Principal:
    """Who is calling: one person or machine client, always inside one school."""

    sub: str
    school: str
    roles: frozenset[Role]
    guardian_id: uuid.UUID | None = None
    email: str | None = None
    expires_at: float = field(default=0.0, compare=False)

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def needs_school(self) -> bool:
        """A service token from client credentials: the call names the school it is for."""
        return not self.school

    def for_school(self, school: str) -> Principal:
        """This service principal acting for ``school`` (named by the calling service)."""
        if not self.needs_school or self.roles != frozenset({Role.service}):
            raise ValueError("only a service token without a school may be given one")
        return replace(self, school=school)

    @property
    def actor(self) -> str:
        return self.sub


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
        school: str,
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
            "school": school,
            "roles": [str(r) for r in roles],
        }
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
    "exp": _NUMERIC_DATE,
    "nbf": _NUMERIC_DATE,
    "iat": _NUMERIC_DATE,
}


def _claim_names(*, school: str, roles: str, guardian: str) -> dict[str, str]:
    """Each field of ``_Claims`` → the name the issuer gives that claim."""
    return {
        "sub": "sub",
        "school": school,
        "roles": roles,
        "guardian": guardian,
        "email": "email",
        "exp": "exp",
        "nbf": "nbf",
        "iat": "iat",
    }


# The internal issuer (``DevIssuer.issue``) always writes these names, whatever the provider's.
_INTERNAL_CLAIM_NAMES = _claim_names(school="school", roles="roles", guardian="guardian")


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


class _UnusableJwks(Exception):
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
        url: str,
        *,
        refresh_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
        try:
            key_set = _key_set_from(self._download())
        except (httpx.HTTPError, _UnusableJwks, ValueError, RecursionError) as exc:
            self._failing = True
            logger.warning("the identity provider's JWKS at %s is unusable: %r", self._url, exc)
            return
        self._key_set = key_set
        self._fetched_at = self._attempted_at
        self._failing = False
        logger.info("fetched %s signing keys from %s", len(key_set.keys), self._url)

    def _download(self) -> bytes:
        # httpx's timeout bounds each step (connect, each read); the deadline bounds the whole,
        # so a provider trickling bytes cannot hold a request either.
        deadline = time.monotonic() + self._timeout_seconds
        body = bytearray()
        with httpx.stream(
            "GET",
            self._url,
            timeout=self._timeout_seconds,
            headers={"Accept": "application/json"},
        ) as response:
            if not response.is_success:
                raise _UnusableJwks(f"HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _JWKS_MAX_BYTES:
                    raise _UnusableJwks(f"more than {_JWKS_MAX_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise _UnusableJwks(f"not complete within {self._timeout_seconds} s")
        return bytes(body)


def _key_set_from(body: bytes) -> KeySet:
    document = json.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise _UnusableJwks("not a JWKS document")
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
        raise _UnusableJwks("no usable key in the set")
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


class TokenVerifier:
    """Verifies bearer tokens; caches verified tokens until they expire (a JWT is immutable).

    With ``key_set`` the tokens are checked against those fixed keys (the dev issuer's); without
    it, against the identity provider's JWKS at ``auth_jwks_url``. ``clock`` (monotonic seconds)
    paces the JWKS fetches.
    """

    def __init__(
        self,
        settings: CommonSettings,
        *,
        key_set: KeySet | None = None,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._key_set = key_set
        self._provider: IdentityProviderKeys | None = None
        if key_set is None and settings.auth_jwks_url is not None:
            self._provider = IdentityProviderKeys(
                settings.auth_jwks_url,
                refresh_seconds=settings.auth_jwks_refresh_seconds,
                timeout_seconds=settings.auth_jwks_timeout_seconds,
                clock=clock,
            )
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._claim_names = _claim_names(
            school=settings.auth_school_claim,
            roles=settings.auth_roles_claim,
            guardian=settings.auth_guardian_claim,
        )
        self._claims = jwt.JWTClaimsRegistry(
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
        """Also accept ``service`` tokens signed by this process's internal issuer.

        Services call each other with their own identity whatever the people's identity provider
        is; the key lives only in memory, so no token of it is valid outside this process.
        """
        if issuer.issuer != INTERNAL_ISSUER:
            raise ValueError(f"the internal issuer must be named {INTERNAL_ISSUER!r}")
        self._internal = (issuer.kid, issuer.key_set())

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
        decoded = self._decode(token, kid)
        return self._principal(decoded.claims, self._claim_names, self._claims)

    def _decode(self, token: str, kid: str | None) -> jwt.Token:
        if self._provider is None:
            if self._key_set is None:
                raise Unauthenticated("No signing key is configured.", code="invalid_token")
            decoded = _decode_with(token, kid, self._key_set)
        else:
            decoded = _decode_with(token, kid, self._provider.current())
            if decoded is None:
                # The provider may have rotated its keys: ask it again (paced), then retry once.
                decoded = _decode_with(token, kid, self._provider.refreshed())
        if decoded is None:
            raise _invalid_token()
        return decoded

    def _verify_internal(self, token: str, kid: str, key_set: KeySet) -> Principal:
        decoded = _decode_with(token, kid, key_set)
        if decoded is None:
            raise _invalid_token()
        principal = self._principal(decoded.claims, _INTERNAL_CLAIM_NAMES, self._internal_claims)
        # The internal key speaks only for services: a person's role from it is a forgery.
        if principal.roles != frozenset({Role.service}):
            raise _invalid_token()
        return principal

    def _principal(
        self,
        claims: dict[str, Any],
        names: Mapping[str, str],
        registry: jwt.JWTClaimsRegistry,
    ) -> Principal:
        # Shapes first, so a claim of the wrong type is named in one wording; then the values
        # (issuer, audience, expiry), which joserfc checks.
        parsed = _parse_claims(claims, names)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise Unauthenticated(
                f"The bearer token is not acceptable: {exc.description}", code="invalid_token"
            ) from exc
        # Role names Hallpass does not know are the provider's business, not a reason to refuse.
        roles = frozenset(Role(r) for r in parsed.roles if r in Role.__members__)
        if not roles:
            raise Unauthenticated(
                "The token carries no Hallpass role.", code="invalid_token", rule="A1"
            )
        if parsed.school is None and roles != frozenset({Role.service}):
            raise Unauthenticated(
                f"The token has no `{names['school']}` claim.", code="invalid_token", rule="A1"
            )
        if Role.parent in roles and parsed.guardian is None:
            raise Unauthenticated(
                "A carer's token must name the guardian.", code="invalid_token", rule="A2"
            )
        return Principal(
            sub=parsed.sub,
            school=parsed.school or "",
            roles=roles,
            guardian_id=parsed.guardian,
            email=parsed.email,
            expires_at=parsed.exp,
        )
