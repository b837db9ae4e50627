"""Carers who sign in with their own accounts, for tests of any service.

A parents' identity provider (a Keycloak realm of families, say) is the loopback JWKS server of
tests/kit/identity_provider.py, named in an identity file as an issuer with ``people = "parents"``.
Its tokens carry what such a provider's do (``sub``, ``email``, ``email_verified``) and never a
Hallpass guardian id: the services find the carer's records through consent's links.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI

from hallpass_consent.app import create_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.identity import IdentityFile, parse_identity
from hallpass_kit.settings import CommonSettings
from tests.conftest import Headers
from tests.kit.identity_provider import AUDIENCE, IdentityProvider, sign

PARENTS_ISSUER = "https://families.example.test/realms/parents"
PARENTS = "parents"


def parents_identity(jwks_uri: str) -> IdentityFile:
    """An identity file trusting one parents' provider, whose keys are at ``jwks_uri``."""
    return parse_identity(
        {
            "issuers": [
                {
                    "name": PARENTS,
                    "issuer": PARENTS_ISSUER,
                    "jwks_uri": jwks_uri,
                    "audiences": [AUDIENCE],
                    "people": "parents",
                }
            ]
        }
    )


def carer_verifier(
    common: CommonSettings, issuer: DevIssuer, provider: IdentityProvider
) -> TokenVerifier:
    """Staff tokens from the dev issuer, carers' from the parents' provider."""
    return TokenVerifier(common, key_set=issuer.key_set(), identity=parents_identity(provider.url))


def carer_headers(
    provider: IdentityProvider,
    *,
    email: str | None,
    verified: bool = True,
    sub: str | None = None,
) -> Headers:
    """A carer's own sign-in, as the parents' provider issues it: no school, no guardian."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": PARENTS_ISSUER,
        "aud": AUDIENCE,
        "sub": sub or f"f:{uuid.uuid4()}",
        "iat": now,
        "exp": now + 600,
        "email_verified": verified,
    }
    if email is not None:
        claims["email"] = email
    return {"Authorization": f"Bearer {sign(provider.key, claims)}"}


def carer_consent_app(
    database: Database, issuer: DevIssuer, common: CommonSettings, provider: IdentityProvider
) -> FastAPI:
    """The consent app, without background work, trusting the dev issuer and the carers'
    provider, for the services that ask it for a carer's records."""
    return create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=carer_verifier(common, issuer, provider),
        database=database,
        run_background=False,
        migrate=False,
    )
