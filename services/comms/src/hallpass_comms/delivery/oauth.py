"""Access tokens for sending as a member of staff: Microsoft client credentials, Google delegation.

Microsoft 365 gives the school's app registration one app-only token (client credentials, with a
secret or a certificate) that works for every mailbox the app was given rights on. Google gives a
service account with domain-wide delegation one token per mailbox: the signed assertion names the
mailbox in ``sub``. Either way a token is kept until shortly before it expires and asked for again
only then, or when the server refused it (``forget``).

What the token endpoint says when it refuses is turned into what the IT lead has to change: an
error about the app's own credentials stops all mail until it is fixed (ServerUnavailable, mail
waits), an error about one mailbox fails that mailbox's envelopes (PermanentFailure).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import RSAKey

from hallpass_comms.delivery.transports import PermanentFailure, ServerUnavailable
from hallpass_comms.settings import CommsSettings

MICROSOFT_SMTP_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GOOGLE_SMTP_SCOPE = "https://mail.google.com/"
GOOGLE_GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# A token is renewed this long before it expires (or at half its life, if that is sooner), so a
# token is never sent in the last seconds of its life and refused on arrival.
RENEW_BEFORE_SECONDS = 300.0

# What the Microsoft identity platform's AADSTS codes mean for the person setting Hallpass up.
_AADSTS_HINTS: dict[int, tuple[str, str]] = {
    7000215: (
        "the token endpoint refused the client secret",
        "copy the secret's Value (not its Secret ID) into HALLPASS_COMMS_MICROSOFT_CLIENT_SECRET",
    ),
    7000222: (
        "the client secret has expired",
        "add a new client secret to the app registration",
    ),
    700016: (
        "the tenant has no application with this client id",
        "check HALLPASS_COMMS_MICROSOFT_CLIENT_ID and _TENANT_ID",
    ),
    90002: ("the tenant was not found", "check HALLPASS_COMMS_MICROSOFT_TENANT_ID"),
    900023: ("the tenant id is not valid", "check HALLPASS_COMMS_MICROSOFT_TENANT_ID"),
    700027: (
        "the token endpoint refused the certificate's signature",
        "upload the certificate to the app registration",
    ),
    7000218: (
        "the token endpoint wants a client secret or a certificate",
        "set HALLPASS_COMMS_MICROSOFT_CLIENT_SECRET",
    ),
    1002012: ("the token endpoint refused the scope", "check the national cloud's login URL"),
}


class TokenRefused(ServerUnavailable):
    """The token endpoint refused the app's credentials: no mail goes until they are fixed."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.code = code


class MailboxNotDelegated(PermanentFailure):
    """The provider will not give a token for this one mailbox (unknown, suspended, not covered)."""


class TokenSource(Protocol):
    """Bearer tokens for sending as ``mailbox``."""

    description: str

    def token(self, mailbox: str) -> str: ...

    def forget(self, mailbox: str, token: str) -> None:
        """The server refused ``token``: the next ``token()`` asks for a new one."""
        ...

    def close(self) -> None:
        """Close the connection to the token endpoint (a later ``token()`` reopens it)."""
        ...


@dataclass(frozen=True)
class _Held:
    value: str
    renew_at: float


class _CachedTokens:
    """Tokens by key, each renewed shortly before it expires; one request at a time per key."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.requests = 0

    def get(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            held = self._held.get(key)
            if held is not None and self._clock() < held.renew_at:
                return held.value
            asked_at = self._clock()
            value, expires_in = fetch()
            self.requests += 1
            margin = min(RENEW_BEFORE_SECONDS, expires_in / 2)
            self._held[key] = _Held(value, asked_at + expires_in - margin)
            return value

    def forget(self, key: str, value: str) -> None:
        with self._guard:
            held = self._held.get(key)
            if held is not None and held.value == value:
                del self._held[key]


class HttpSession:
    """One httpx client shared by the sending threads, opened again after ``close()``.

    The delivery worker closes its transport when it stops and may start again later; an
    httpx client cannot be used once closed, so the next request opens a new one.
    """

    def __init__(self, timeout: float, client: httpx.Client | None = None) -> None:
        self._timeout = timeout
        self._client = client
        self._lock = threading.Lock()

    def post(self, url: str, **options: Any) -> httpx.Response:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout)
            client = self._client
        return client.post(url, **options)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _post_form(client: HttpSession, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return client.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise ServerUnavailable(f"cannot reach the token endpoint {url}: {exc}") from exc


def _token_answer(response: httpx.Response) -> tuple[str, float] | dict[str, Any]:
    """(token, expires_in) on success, else the error document (possibly empty)."""
    try:
        document = response.json()
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    if response.status_code == 200 and isinstance(document.get("access_token"), str):
        expires_in = document.get("expires_in", 3600)
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = 3600.0
        return document["access_token"], max(seconds, 1.0)
    return document


class MicrosoftClientCredentials:
    """App-only tokens from the Microsoft identity platform (OAuth2 client credentials).

    One token serves every mailbox: which mailboxes the app may use is Exchange's decision
    (FullAccess / SendAs for SMTP, an application access policy for Graph).
    """

    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        scope: str,
        client_secret: str | None = None,
        certificate_file: Path | None = None,
        login_url: str = "https://login.microsoftonline.com",
        timeout: float = 30.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_secret and certificate_file is None:
            raise ValueError("Microsoft client credentials need a client secret or a certificate")
        self.tenant = tenant
        self.client_id = client_id
        self.scope = scope
        self.token_url = f"{login_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self.description = f"the Microsoft identity platform (tenant {tenant})"
        self._secret = client_secret
        self._certificate = _load_certificate(certificate_file) if certificate_file else None
        self._client = HttpSession(timeout, client)
        self._cache = _CachedTokens(clock)

    @property
    def requests(self) -> int:
        """How many tokens were asked for (the cache at work)."""
        return self._cache.requests

    def token(self, mailbox: str) -> str:
        return self._cache.get("app", self._fetch)

    def forget(self, mailbox: str, token: str) -> None:
        self._cache.forget("app", token)

    def close(self) -> None:
        self._client.close()

    def _fetch(self) -> tuple[str, float]:
        form = {
            "client_id": self.client_id,
            "scope": self.scope,
            "grant_type": "client_credentials",
        }
        if self._certificate is not None:
            form["client_assertion_type"] = CLIENT_ASSERTION
            form["client_assertion"] = self._certificate.assertion(self.client_id, self.token_url)
        else:
            assert self._secret is not None
            form["client_secret"] = self._secret
        response = _post_form(self._client, self.token_url, form)
        answer = _token_answer(response)
        if isinstance(answer, tuple):
            return answer
        raise self._refusal(response, answer)

    def _refusal(self, response: httpx.Response, error: dict[str, Any]) -> ServerUnavailable:
        if response.status_code >= 500 or response.status_code == 429:
            return ServerUnavailable(
                f"the token endpoint {self.token_url} answered {response.status_code}"
            )
        codes = error.get("error_codes") or []
        code = codes[0] if codes and isinstance(codes[0], int) else None
        description = str(error.get("error_description", "")).splitlines()[0:1]
        said = description[0] if description else str(error.get("error", response.status_code))
        label = f"AADSTS{code}" if code is not None else str(error.get("error", "refused"))
        what, advice = _AADSTS_HINTS.get(
            code or 0, ("the token endpoint refused the app's credentials", "check the app")
        )
        return TokenRefused(f"{what} ({label}): {advice}. Microsoft said: {said}", code=label)


@dataclass(frozen=True)
class _Certificate:
    key: RSAKey
    thumbprint: str  # base64url SHA-1 of the DER certificate: the "x5t" Microsoft looks up

    def assertion(self, client_id: str, audience: str) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint}, claims, self.key)


def _load_certificate(path: Path) -> _Certificate:
    data = path.read_bytes()
    certificate = x509.load_pem_x509_certificate(data)
    der = certificate.public_bytes(serialization.Encoding.DER)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=")  # noqa: S324 - x5t is SHA-1 by definition
    return _Certificate(RSAKey.import_key(data), thumbprint.decode("ascii"))


class GoogleServiceAccount:
    """Tokens from a Google service account with domain-wide delegation, one per mailbox.

    Each request is a JWT signed with the account's private key (RS256), naming the mailbox to
    act as in ``sub``; Google answers only if the Workspace admin delegated ``scope`` to the
    account's client id.
    """

    def __init__(
        self,
        key_file: Path,
        *,
        scope: str,
        token_url: str = "https://oauth2.googleapis.com/token",  # noqa: S107 - a URL
        timeout: float = 30.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            info = json.loads(key_file.read_text())
            self.client_email: str = info["client_email"]
            self.client_id: str = str(info.get("client_id", ""))
            self._key_id: str | None = info.get("private_key_id")
            self._key = RSAKey.import_key(info["private_key"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a service account key file: {key_file} ({exc})") from exc
        self.scope = scope
        self.token_url = token_url
        self.description = f"Google (service account {self.client_email})"
        self._client = HttpSession(timeout, client)
        self._cache = _CachedTokens(clock)

    @property
    def requests(self) -> int:
        return self._cache.requests

    def token(self, mailbox: str) -> str:
        return self._cache.get(mailbox.lower(), lambda: self._fetch(mailbox))

    def forget(self, mailbox: str, token: str) -> None:
        self._cache.forget(mailbox.lower(), token)

    def close(self) -> None:
        self._client.close()

    def assertion(self, mailbox: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_email,
            "sub": mailbox,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 3600,
        }
        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
        if self._key_id:
            header["kid"] = self._key_id
        return jwt.encode(header, claims, self._key)

    def _fetch(self, mailbox: str) -> tuple[str, float]:
        form = {"grant_type": JWT_BEARER, "assertion": self.assertion(mailbox)}
        response = _post_form(self._client, self.token_url, form)
        answer = _token_answer(response)
        if isinstance(answer, tuple):
            return answer
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(
                f"the token endpoint {self.token_url} answered {response.status_code}"
            )
        error = str(answer.get("error", response.status_code))
        said = str(answer.get("error_description", ""))
        if error == "unauthorized_client":
            raise TokenRefused(
                f"Google refused the service account {self.client_email}: domain-wide "
                f"delegation is not granted to client id {self.client_id} for {self.scope} "
                f"(Admin console, Security, API controls, Domain-wide delegation) ({error}: "
                f"{said})",
                code=error,
            )
        if error == "invalid_grant" and "email" in said.lower():
            raise MailboxNotDelegated(
                f"Google has no user {mailbox} in this Workspace to send as ({error}: {said})"
            )
        raise TokenRefused(
            f"Google's token endpoint refused the service account {self.client_email} "
            f"({error}: {said})",
            code=error,
        )


def xoauth2_initial_response(mailbox: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, before base64 (Microsoft's and Google's format)."""
    return f"user={mailbox}\x01auth=Bearer {token}\x01\x01"


def microsoft_tokens(
    settings: CommsSettings, scope: str, *, clock: Callable[[], float] = time.monotonic
) -> MicrosoftClientCredentials:
    """Client credentials from HALLPASS_COMMS_MICROSOFT_* (the settings checked they are there)."""
    if not settings.microsoft_tenant_id or not settings.microsoft_client_id:
        raise ValueError("HALLPASS_COMMS_MICROSOFT_TENANT_ID and _CLIENT_ID are needed")
    secret = settings.microsoft_client_secret
    return MicrosoftClientCredentials(
        tenant=settings.microsoft_tenant_id,
        client_id=settings.microsoft_client_id,
        scope=scope,
        client_secret=secret.get_secret_value() if secret is not None else None,
        certificate_file=settings.microsoft_client_certificate_file,
        login_url=settings.microsoft_login_url,
        timeout=settings.mail_api_timeout_seconds,
        clock=clock,
    )


def google_tokens(
    settings: CommsSettings, scope: str, *, clock: Callable[[], float] = time.monotonic
) -> GoogleServiceAccount:
    """Delegated tokens from HALLPASS_COMMS_GOOGLE_SERVICE_ACCOUNT_FILE."""
    if settings.google_service_account_file is None:
        raise ValueError("HALLPASS_COMMS_GOOGLE_SERVICE_ACCOUNT_FILE is needed")
    return GoogleServiceAccount(
        settings.google_service_account_file,
        scope=scope,
        token_url=settings.google_token_url,
        timeout=settings.mail_api_timeout_seconds,
        clock=clock,
    )


def post_as_mailbox(
    client: HttpSession,
    tokens: TokenSource,
    mailbox: str,
    url: str,
    *,
    unreachable: str,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> httpx.Response:
    """POST to a provider's mail API with ``mailbox``'s token: a 401 (revoked or expired early)
    gets one fresh token, then the answer stands; a provider that cannot be reached is
    ServerUnavailable (``unreachable`` says which)."""
    for attempt in range(2):
        token = tokens.token(mailbox)
        try:
            response = client.post(
                url, headers={"Authorization": f"Bearer {token}", **(headers or {})}, **options
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"{unreachable}: {exc}") from exc
        if response.status_code == 401 and attempt == 0:
            tokens.forget(mailbox, token)
            continue
        return response
    raise AssertionError("unreachable: the second answer always stands")
