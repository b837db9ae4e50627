"""Settings shared by every Hallpass service.

Each service adds its own settings class with its own prefix (``HALLPASS_CONSENT_``…); what every
service shares lives here under ``HALLPASS_``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hallpass_kit.db import DatabaseOptions

if TYPE_CHECKING:
    from hallpass_kit.identity import IdentityFile

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

    # Identity (docs/identity.md). The identity file names the trusts and their schools and every
    # trusted issuer with its claim mapping; without one that names issuers, and without a JWKS
    # URL, the built-in dev issuer's local key signs and verifies tokens.
    identity_file: Path | None = None
    # The identity file once read: settings are not changed after start-up.
    _identity: Any = PrivateAttr(default=None)
    # One issuer that puts Hallpass's own claims (``school``, ``roles``) in its tokens, without a
    # file; the identity file is the way for a real provider's tokens.
    auth_issuer: str = DEV_ISSUER
    auth_audience: str = "hallpass"
    auth_jwks_url: str | None = None
    auth_school_claim: str = "school"
    auth_roles_claim: str = "roles"
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # A token naming a key the cached JWKS lacks makes the verifier ask the provider again, at
    # most once per this many seconds, so forged key ids cannot flood the provider.
    auth_jwks_refresh_seconds: int = Field(default=60, ge=1, le=3600)
    # Bound on one JWKS fetch as a whole; a request waiting for the keys waits no longer.
    auth_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)

    # Database connections, per service per process (see docs/operations.md for the sum over
    # services, replicas and workers against PostgreSQL's max_connections).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    db_pre_ping: bool = True
    db_lock_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    db_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=600)

    # Load shedding: requests served at once per process; more are answered 503 + Retry-After
    # at once rather than queued until everyone times out.
    max_concurrent_requests: int = Field(default=32, ge=1, le=10_000)
    # Largest request body by default; endpoints that take files or imports set their own.
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=1_073_741_824)

    # Signs outgoing webhooks once they are delivered over HTTP; unused in all-in-one mode.
    webhook_secret: str = "changeme"  # noqa: S105 - refused in production by the validator below

    # Services apart (docs/deploy.md): where each one answers. Unset in all-in-one mode, where
    # the gateway builds every service in its own process and calls them in-process.
    consent_url: str | None = None
    media_url: str | None = None
    comms_url: str | None = None
    # False in an API replica whose background work (outbox, webhooks, scans, mail) runs in
    # `hallpass worker` processes instead.
    run_background: bool = True
    # How services prove who they are to each other when apart: a signing key shared by the
    # deployment's services (a JWK, by file or inline), or OAuth2 client credentials from the
    # identity provider. Neither is needed in all-in-one mode.
    service_key_file: Path | None = None
    service_key: SecretStr | None = None
    service_token_url: str | None = None
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None
    service_token_scope: str | None = None
    # Bound on one call to another service, connection included.
    service_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    # What people and the CMS are given in links (downloads, secure views): the address the
    # school publishes, never an internal host name.
    public_base_url: str | None = None
    # Browser origins allowed to call the API (a school website's own scripts); none by default.
    cors_allow_origins: list[str] = Field(default_factory=list)
    # One JSON line per request and per log record ("json"), or text for a person at a terminal.
    log_format: Literal["json", "text"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Audit checkpoints: the chain's head signed with the audit key and kept outside the database
    # (docs/operations.md, "Audit trail"). Without a key path, embedded mode makes one under the
    # data dir; production refuses to start without one.
    audit_signing_key_path: Path | None = None
    audit_checkpoint_dir: Path | None = None  # unset: <data dir>/audit-checkpoints
    audit_checkpoint_every_entries: int = Field(default=1000, ge=1)
    audit_checkpoint_every_minutes: float = Field(default=15, gt=0, le=1440)
    audit_checkpoint_s3_bucket: str | None = None  # set: checkpoints go to S3, not to files
    audit_checkpoint_s3_prefix: str = "audit-checkpoints/"
    audit_checkpoint_s3_endpoint_url: str | None = None
    audit_checkpoint_s3_region: str = "eu-west-2"
    audit_checkpoint_s3_retention_days: int = Field(default=0, ge=0, le=36500)

    @property
    def database_options(self) -> DatabaseOptions:
        return DatabaseOptions(
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            pool_timeout=self.db_pool_timeout_seconds,
            pre_ping=self.db_pre_ping,
            lock_timeout=self.db_lock_timeout_seconds,
            statement_timeout=self.db_statement_timeout_seconds,
        )

    @property
    def uses_dev_issuer(self) -> bool:
        if self.identity().issuers:
            return False
        return self.auth_jwks_url is None or self.auth_issuer == DEV_ISSUER

    def identity(self) -> IdentityFile:
        """The identity file, read and checked once (an empty one when none is set)."""
        from hallpass_kit.identity import IdentityFile, load_identity_file

        if self._identity is None:
            path = self.identity_file
            self._identity = IdentityFile() if path is None else load_identity_file(path)
        assert isinstance(self._identity, IdentityFile)
        return self._identity

    @property
    def dev_signing_key_path(self) -> Path:
        return self.data_dir / "dev-signing-key.json"

    @model_validator(mode="after")
    def _refuse_public_secrets_in_production(self) -> Self:
        if self.env is not Environment.production:
            return self
        if self.uses_dev_issuer:
            raise InsecureSettingsError(
                "production mode refuses the dev signing key: set HALLPASS_IDENTITY_FILE "
                "(docs/identity.md), or HALLPASS_AUTH_JWKS_URL and HALLPASS_AUTH_ISSUER, to the "
                "school's identity provider"
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
