"""Settings of the gateway itself (env prefix ``HALLPASS_GATEWAY_``).

Where the services answer is shared with them (``HALLPASS_CONSENT_URL``… in ``CommonSettings``);
what is here is how the gateway treats its callers and its upstreams.

Rate limits are token buckets: each caller may send ``*_burst`` requests at once, refilled at
``*_per_second``. Every request counts against its IP address; a request whose bearer token the
gateway can verify also counts against the token's subject (the client), so one CMS or one member
of staff cannot use up a whole school's share behind one NAT address, and a caller without a valid
token is judged by its address alone. Health and readiness probes are never limited.

``rate_limits`` unset means: off in all-in-one mode (one machine, one school, nothing in front
of it worth protecting from itself) and on in proxy mode, where the gateway faces the internet
for a whole deployment. The defaults are generous: a school's site behind one address reaches
them only under a flood, and a single client only when looping.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hallpass_kit.settings import (
    PLACEHOLDER_SECRETS,
    CommonSettings,
    Environment,
    InsecureSettingsError,
)

TrustedNetwork = IPv4Network | IPv6Network


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLPASS_GATEWAY_", extra="ignore")

    # Proxy mode: how long the gateway waits for an upstream. The read and write bounds apply
    # between two chunks, not to a whole body, so a long zip download or upload is not cut off.
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    upstream_read_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    upstream_write_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Waiting for a free pooled connection; past it the caller is told to come back (503).
    upstream_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Connections per upstream: at most this many requests to one service at once, and this many
    # kept open between requests (keep-alive) so a request rarely pays for a new connection.
    upstream_max_connections: int = Field(default=100, ge=1, le=10_000)
    upstream_max_keepalive_connections: int = Field(default=50, ge=0, le=10_000)
    # Seconds a readiness probe waits for each upstream's /healthz.
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # The merged OpenAPI document: an upstream whose spec could not be fetched is asked again
    # after this many seconds; a fetched spec is refreshed after ``openapi_refresh_seconds``
    # (a service upgraded behind the gateway shows its new endpoints without a gateway restart).
    openapi_retry_seconds: float = Field(default=10.0, gt=0, le=3600)
    openapi_refresh_seconds: float = Field(default=300.0, gt=0, le=86_400)

    # None: off in all-in-one mode, on in proxy mode (see the module's docstring).
    rate_limits: bool | None = None
    rate_limit_ip_per_second: float = Field(default=100.0, gt=0)
    rate_limit_ip_burst: int = Field(default=200, ge=1)
    rate_limit_client_per_second: float = Field(default=30.0, gt=0)
    rate_limit_client_burst: int = Field(default=60, ge=1)
    # Buckets kept in memory per kind; the least recently seen are forgotten past this (a
    # forgotten caller starts again with a full bucket), so a flood of addresses cannot exhaust
    # memory.
    rate_limit_max_tracked: int = Field(default=100_000, ge=100)
    # Load balancers or reverse proxies in front of the gateway (addresses or CIDR networks).
    # Only a request arriving from one of them has its X-Forwarded-For read; from anywhere else
    # the header is the caller's own claim and is ignored for limits (and replaced upstream).
    trusted_proxies: Annotated[list[TrustedNetwork], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        # A comma-separated env value ("10.0.0.0/8, 127.0.0.1") as well as a JSON list.
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [part.strip() for part in text.split(",") if part.strip()]
            )
        if isinstance(value, list):
            return [ip_network(str(part), strict=False) for part in value]
        return value

    # Browser sign-in (docs/identity.md, "Browser sign-in"): the secret the session cookie is
    # encrypted with. Every gateway process of a deployment needs the same one; unset outside
    # production, one is made once under the data dir (like the dev signing key).
    session_secret: SecretStr | None = None

    def rate_limits_on(self, *, proxy_mode: bool) -> bool:
        return self.rate_limits if self.rate_limits is not None else proxy_mode

    def session_key(self, common: CommonSettings) -> bytes | None:
        """The 32-byte key of the browser session cookie; None when browser sign-in is off.

        Production refuses a placeholder or short secret outright, and an unset one when the
        identity file offers browser sign-in: a guessable key would let anyone forge a session.
        """
        if self.session_secret is not None:
            secret = self.session_secret.get_secret_value()
            if common.env is Environment.production and (
                secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SESSION_SECRET
            ):
                raise InsecureSettingsError(
                    "production mode refuses a placeholder or short "
                    f"HALLPASS_GATEWAY_SESSION_SECRET (use at least {MIN_SESSION_SECRET} random "
                    "characters)"
                )
            return hashlib.sha256(secret.encode()).digest()
        if common.env is Environment.production:
            if any(issuer.sign_in is not None for issuer in common.identity().issuers):
                raise InsecureSettingsError(
                    "browser sign-in needs HALLPASS_GATEWAY_SESSION_SECRET in production (at "
                    f"least {MIN_SESSION_SECRET} random characters, the same in every gateway)"
                )
            return None
        return _load_or_create_secret(common.data_dir / "session-secret")


# Characters of a production session secret at least (about 190 bits as base64).
MIN_SESSION_SECRET = 32


def _load_or_create_secret(path: Path) -> bytes:
    """The development session key in ``path``, made there (owner-only) by the first process."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: its key is the one every process uses
        else:
            key = secrets.token_bytes(32)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(key).decode())
            return key
    for _ in range(50):
        # The process that made the file may still be writing it.
        text = path.read_text().strip()
        if text:
            key = base64.urlsafe_b64decode(text)
            if len(key) == 32:
                return key
        time.sleep(0.05)
    raise ValueError(f"{path} does not hold a session key")
