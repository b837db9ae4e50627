"""Bearer-token authentication and role checks.

Tokens are JWTs verified against a JWKS: the built-in dev issuer's local key in embedded mode, the
school's identity provider (Entra ID, Google Workspace, Keycloak…) otherwise. Every route is behind
``authenticated`` unless a router is deliberately public.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from hallpass_kit.errors import HallpassError, Unauthenticated
from hallpass_kit.settings import CommonSettings

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


class DevIssuer:
    """The built-in issuer for embedded mode: an RSA key under the data dir, served as JWKS."""

    def __init__(self, key: RSAKey, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def load_or_create(cls, path: Path, issuer: str, audience: str) -> DevIssuer:
        if path.exists():
            key = RSAKey.import_key(json.loads(path.read_text()))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = RSAKey.generate_key(
                2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"}
            )
            # Written once with owner-only permissions; a racing writer loses harmlessly.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(key.as_dict(private=True)))
        return cls(key, issuer, audience)

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


class TokenVerifier:
    """Verifies bearer tokens; caches verified tokens until they expire (a JWT is immutable)."""

    def __init__(
        self,
        settings: CommonSettings,
        *,
        key_set: KeySet | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self._settings = settings
        self._key_set = key_set
        self._jwks_fetched_at = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
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
        if self._internal is not None and _kid_of(token) == self._internal[0]:
            return self._verify_internal(token, self._internal[1])
        try:
            decoded = jwt.decode(token, self._keys(), algorithms=list(ALGORITHMS))
        except KeyError:
            # Unknown kid: the issuer may have rotated its keys; refresh once and retry.
            try:
                decoded = jwt.decode(token, self._keys(refresh=True), algorithms=list(ALGORITHMS))
            except (JoseError, ValueError, KeyError) as exc:
                raise Unauthenticated(
                    "The bearer token is not valid.", code="invalid_token"
                ) from exc
        except (JoseError, ValueError) as exc:
            raise Unauthenticated("The bearer token is not valid.", code="invalid_token") from exc
        try:
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthenticated(
                f"The bearer token is not acceptable: {exc.description}", code="invalid_token"
            ) from exc
        return self._principal(decoded.claims)

    def _verify_internal(self, token: str, key_set: KeySet) -> Principal:
        try:
            decoded = jwt.decode(token, key_set, algorithms=["RS256"])
            self._internal_claims.validate(decoded.claims)
        except (JoseError, ValueError, KeyError) as exc:
            raise Unauthenticated("The bearer token is not valid.", code="invalid_token") from exc
        principal = self._principal(decoded.claims)
        # The internal key speaks only for services: a person's role from it is a forgery.
        if principal.roles != frozenset({Role.service}):
            raise Unauthenticated("The bearer token is not valid.", code="invalid_token")
        return principal

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        s = self._settings
        school = claims.get(s.auth_school_claim)
        raw_roles = claims.get(s.auth_roles_claim, [])
        if not isinstance(school, str) or not school:
            raise Unauthenticated("The token names no school.", code="invalid_token", rule="A1")
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__)
        if not roles:
            raise Unauthenticated(
                "The token carries no Hallpass role.", code="invalid_token", rule="A1"
            )
        guardian: uuid.UUID | None = None
        raw_guardian = claims.get(s.auth_guardian_claim)
        if raw_guardian is not None:
            try:
                guardian = uuid.UUID(str(raw_guardian))
            except ValueError as exc:
                raise Unauthenticated(
                    "The token's guardian id is malformed.", code="invalid_token"
                ) from exc
        if Role.parent in roles and guardian is None:
            raise Unauthenticated(
                "A carer's token must name the guardian.", code="invalid_token", rule="A2"
            )
        email = claims.get("email")
        return Principal(
            sub=str(claims["sub"]),
            school=school,
            roles=roles,
            guardian_id=guardian,
            email=email if isinstance(email, str) else None,
            expires_at=float(claims["exp"]),
        )

    def _keys(self, *, refresh: bool = False) -> KeySet:
        url = self._settings.auth_jwks_url
        if url is None:
            if self._key_set is None:
                raise Unauthenticated("No signing key is configured.", code="invalid_token")
            return self._key_set
        with self._lock:
            stale = time.monotonic() - self._jwks_fetched_at > 3600
            # Refreshes on unknown kid are rate limited so a flood of forged kids cannot hammer
            # the identity provider.
            throttled = time.monotonic() - self._jwks_fetched_at < 60
            if self._key_set is None or stale or (refresh and not throttled):
                response = httpx.get(url, timeout=5.0)
                response.raise_for_status()
                self._key_set = KeySet.import_key_set(response.json())
                self._jwks_fetched_at = time.monotonic()
            return self._key_set


def _kid_of(token: str) -> str | None:
    """The ``kid`` of a compact JWS header, read without verifying anything."""
    header, _, _ = token.partition(".")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return None
    kid = decoded.get("kid") if isinstance(decoded, dict) else None
    return kid if isinstance(kid, str) else None
