"""The dev issuer's token as ``hallpass token`` prints it, without the services' stack.

Reading the settings through pydantic-settings and signing through joserfc costs the command
most of a second before it prints anything; this module reads the few settings a token needs
straight from the environment and signs the compact JWS with ``cryptography`` alone. It makes
the same bytes :class:`hallpass_kit.auth.DevIssuer` makes (same key file, header, claims and
RS256 signature, which is deterministic), and where it cannot decide exactly as
:class:`hallpass_kit.settings.CommonSettings` would (production, an identity file, a value
spelled twice) it says so and the command reads the full settings instead.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

# Paths as os.path strings: pathlib imports urllib and ipaddress, a tenth of the budget.

if TYPE_CHECKING:
    import uuid

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

# Kept in step with hallpass_kit.auth.Role and TRUST_ROLES (tests/gateway compares them): the
# command's parser offers these without importing the verifier's stack.
ROLE_NAMES: tuple[str, ...] = (
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
)
TRUST_ROLE_NAMES = frozenset({"trust_admin", "trust_dpo"})

# hallpass_kit.settings.DEV_ISSUER and the defaults of CommonSettings.
DEV_ISSUER = "hallpass-dev"
_PREFIX = "HALLPASS_"
_DEFAULT_DATA_DIR = ".hallpass"
_DEFAULT_AUDIENCE = "hallpass"
# Environments in which CommonSettings takes the dev issuer without further checks; production
# has checks of its own (webhook secret, the dev key refused) that the full settings make.
_PLAIN_ENVIRONMENTS = frozenset({"development", "test"})
# Variables whose mere presence needs the full settings: the identity file is parsed and checked
# (issuers, trusts) by hallpass_kit.identity.
_FULL_SETTINGS_VARIABLES = frozenset({"IDENTITY_FILE"})
_READ = frozenset({"ENV", "DATA_DIR", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL"})


# NamedTuple rather than a dataclass: dataclasses imports inspect, a tenth of the start-up budget.
class TokenSettings(NamedTuple):
    """What a dev token depends on, as CommonSettings has it."""

    data_dir: str
    auth_issuer: str
    auth_audience: str
    uses_dev_issuer: bool
    # The identity file's trusts (none without a file): a trust role must name one of them.
    trusts: frozenset[str]

    @property
    def dev_signing_key_path(self) -> str:
        """The file CommonSettings.dev_signing_key_path names."""
        return os.path.join(self.data_dir, "dev-signing-key.json")


def settings_from_environment(environ: Mapping[str, str]) -> TokenSettings | None:
    """The token's settings read as CommonSettings reads them, or None where only it can tell.

    pydantic-settings matches ``HALLPASS_*`` names whatever their case and takes a value as it
    is written (no stripping; an empty URL is a URL, not none), so this does the same.
    """
    found: dict[str, list[str]] = {}
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith(_PREFIX):
            found.setdefault(upper.removeprefix(_PREFIX), []).append(value)
    if any(name in found for name in _FULL_SETTINGS_VARIABLES):
        return None
    # The same name in two cases: which one pydantic-settings takes depends on the order of the
    # environment, not something to guess.
    if any(len(found.get(name, [])) > 1 for name in _READ):
        return None
    values = {name: found[name][0] for name in _READ if name in found}
    if values.get("ENV", "development") not in _PLAIN_ENVIRONMENTS:
        return None
    issuer = values.get("AUTH_ISSUER", DEV_ISSUER)
    jwks_url = values.get("AUTH_JWKS_URL")
    return TokenSettings(
        data_dir=values.get("DATA_DIR", _DEFAULT_DATA_DIR),
        auth_issuer=issuer,
        auth_audience=values.get("AUTH_AUDIENCE", _DEFAULT_AUDIENCE),
        # CommonSettings.uses_dev_issuer, without an identity file naming issuers.
        uses_dev_issuer=jwks_url is None or issuer == DEV_ISSUER,
        trusts=frozenset(),
    )


class SigningKey(NamedTuple):
    """The dev issuer's RSA key as its key file holds it (a private JWK)."""

    kid: str
    # cryptography's RSA module is imported only once a key is read or made: `--help` needs none.
    private_key: RSAPrivateKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _int_b64url(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    if jwk.get("kty") != "RSA":
        raise ValueError("not an RSA key")
    modulus, p, q = _int_b64url(jwk["n"]), _int_b64url(jwk["p"]), _int_b64url(jwk["q"])
    if p * q != modulus:
        raise ValueError("the key's primes do not make its modulus")
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=_int_b64url(jwk["d"]),
        dmp1=_int_b64url(jwk["dp"]),
        dmq1=_int_b64url(jwk["dq"]),
        iqmp=_int_b64url(jwk["qi"]),
        public_numbers=rsa.RSAPublicNumbers(e=_int_b64url(jwk["e"]), n=modulus),
    )
    # OpenSSL's full check of a private key tests p and q for primality: a tenth of a second,
    # twice the whole command's budget, spent on a key this issuer made itself and keeps in an
    # owner-only file. A damaged file still fails: above, here (the CRT values are checked for
    # consistency) or at the verifier, whose check of the signature no bad key passes.
    return SigningKey(
        kid=str(jwk["kid"]),
        private_key=numbers.private_key(unsafe_skip_rsa_key_validation=True),
    )


def _read_key(path: str) -> SigningKey:
    # As DevIssuer does: the process that made the file may still be writing it.
    for _ in range(50):
        try:
            with open(path, encoding="utf-8") as handle:
                return _key_from_jwk(json.loads(handle.read()))
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    raise ValueError(f"{path} does not hold a signing key")


def new_private_jwk(kid: str) -> tuple[dict[str, str], RSAPrivateKey]:
    """A new 2,048-bit RSA signing key as the private JWK joserfc's ``RSAKey.as_dict(private=
    True)`` writes (same members, same order), and as cryptography's key object."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = private_key.private_numbers()
    public = private.public_numbers
    jwk = {
        "n": _b64url_int(public.n),
        "e": _b64url_int(public.e),
        "d": _b64url_int(private.d),
        "p": _b64url_int(private.p),
        "q": _b64url_int(private.q),
        "dp": _b64url_int(private.dmp1),
        "dq": _b64url_int(private.dmq1),
        "qi": _b64url_int(private.iqmp),
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "kty": "RSA",
    }
    return jwk, private_key


def load_or_create_key(path: str) -> SigningKey:
    """The key in ``path``, made there (owner-only, as DevIssuer makes it) if there is none."""
    if os.path.exists(path):
        return _read_key(path)
    kid = os.urandom(8).hex()  # what DevIssuer's uuid4().hex[:16] amounts to: 16 random hex digits
    jwk, private_key = new_private_jwk(kid)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process made it first: its key is the one everyone uses
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(jwk))
    return SigningKey(kid=kid, private_key=private_key)


def issue(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    sub: str,
    school: str | None,
    roles: Sequence[str],
    guardian_id: uuid.UUID | None,
    email: str | None,
    ttl_seconds: int,
    extra: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> str:
    """A compact RS256 JWS with DevIssuer.issue's header and claims, in joserfc's JSON form."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "roles": list(roles),
    }
    if school is not None:
        claims["school"] = school
    if guardian_id is not None:
        claims["guardian"] = str(guardian_id)
    if email is not None:
        claims["email"] = email
    if extra:
        claims.update(extra)
    # joserfc puts "typ" first and writes the header in ASCII, the claims in UTF-8.
    header = {"typ": "JWT", "alg": "RS256", "kid": key.kid}
    header_segment = _b64url(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode())
    claims_segment = _b64url(
        json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    )
    signing_input = f"{header_segment}.{claims_segment}".encode("ascii")
    signature = key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header_segment}.{claims_segment}.{_b64url(signature)}"
