"""Settings shared by every Hallpass service.

Each service adds its own settings class with its own prefix (``HALLPASS_CONSENT_``…); what every
service shares lives here under ``HALLPASS_``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that have been shipped as examples somewhere; a production deployment using one of them
# is a deployment whose secret is public.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "development", "test"}
)

DEV_ISSUER = "hallpass-dev"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class InsecureSettingsError(RuntimeError):
    """Raised at start-up when production settings would run with a public key or secret."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLPASS_", extra="ignore")

    env: Environment = Environment.development
    data_dir: Path = Path(".hallpass")

    # Identity. Without a JWKS URL the built-in dev issuer's local key signs and verifies tokens.
    auth_issuer: str = DEV_ISSUER
    auth_audience: str = "hallpass"
    auth_jwks_url: str | None = None
    auth_school_claim: str = "school"
    auth_roles_claim: str = "roles"
    auth_guardian_claim: str = "guardian"
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)

    # Signs outgoing webhooks once they are delivered over HTTP; unused in all-in-one mode.
    webhook_secret: str = "changeme"  # noqa: S105 - refused in production by the validator below

    @property
    def uses_dev_issuer(self) -> bool:
        return self.auth_jwks_url is None or self.auth_issuer == DEV_ISSUER

    @property
    def dev_signing_key_path(self) -> Path:
        return self.data_dir / "dev-signing-key.json"

    @model_validator(mode="after")
    def _refuse_public_secrets_in_production(self) -> Self:
        if self.env is not Environment.production:
            return self
        if self.uses_dev_issuer:
            raise InsecureSettingsError(
                "production mode refuses the dev signing key: set HALLPASS_AUTH_JWKS_URL and "
                "HALLPASS_AUTH_ISSUER to the school's identity provider"
            )
        if (
            self.webhook_secret.strip().lower() in PLACEHOLDER_SECRETS
            or len(self.webhook_secret) < 32
        ):
            raise InsecureSettingsError(
                "production mode refuses a placeholder HALLPASS_WEBHOOK_SECRET "
                "(use at least 32 random characters)"
            )
        return self


def sqlite_url(data_dir: Path, service: str) -> str:
    return f"sqlite:///{(data_dir / f'{service}.db').resolve()}"
