"""The browser's cookies: the signed-in session and the sign-in under way, sealed by the gateway.

Both are JSON sealed as a JWE (``dir`` + ``A256GCM``) with the gateway's session key: a browser
can neither read nor change them, and a cookie made for one purpose is never accepted for the
other (each names its ``kind``). The session holds the verified token itself, so every request
is judged by the same verifier as a bearer token, and the session ends when the token does.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from starlette.responses import Response

SESSION_COOKIE = "hallpass_session"
# The sign-in under way (state, nonce, PKCE verifier; the dev form's CSRF token).
SIGN_IN_COOKIE = "hallpass_signin"
# A sign-in left half done is forgotten after this long.
SIGN_IN_SECONDS = 600
# Browsers keep a cookie of at most 4096 bytes (name, value and attributes); past this the
# session is refused with a page saying so rather than silently dropped by the browser.
MAX_COOKIE_BYTES = 4000

_HEADER = {"alg": "dir", "enc": "A256GCM"}
_ALGORITHMS = ["dir", "A256GCM"]


class SessionTooLarge(ValueError):
    """The sealed session would not fit in one cookie."""


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser: the token that speaks for it, its CSRF token, and the school it acts
    for when the person may act for several (a browser cannot send ``X-Hallpass-School``)."""

    token: str
    csrf: str
    # The identity file's issuer the person signed in with ("hallpass-dev" for the dev page).
    issuer: str
    expires_at: float
    # Chosen at /auth/school (or at sign-in, when the person has one school only); each
    # service still checks it is one of the person's schools on every request.
    school: str | None = None


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in under way, kept in the browser between leaving for the provider and returning."""

    issuer: str
    state: str
    nonce: str
    code_verifier: str
    next_path: str
    # The dev sign-in form's CSRF token (the form is posted before any session exists).
    csrf: str
    expires_at: float


def new_secret() -> str:
    """A random URL-safe value (state, nonce, CSRF token): 256 bits."""
    return secrets.token_urlsafe(32)


class CookieSealer:
    """Seals and opens the gateway's cookies with its session key."""

    def __init__(self, key: bytes) -> None:
        self._key = OctKey.import_key(key)

    def _seal(self, kind: Literal["session", "signin"], payload: dict[str, Any]) -> str:
        body = json.dumps({"kind": kind, **payload}, separators=(",", ":")).encode()
        return jwe.encrypt_compact(_HEADER, body, self._key, algorithms=_ALGORITHMS)

    def _open(self, kind: str, value: str) -> dict[str, Any] | None:
        try:
            opened = jwe.decrypt_compact(value, self._key, algorithms=_ALGORITHMS)
            payload = json.loads(opened.plaintext or b"")
        except (JoseError, ValueError, TypeError, KeyError, RecursionError):
            return None  # not ours, tampered with, or sealed with a key since changed
        if not isinstance(payload, dict) or payload.get("kind") != kind:
            return None
        return payload

    def seal_session(self, session: BrowserSession) -> str:
        value = self._seal(
            "session",
            {
                "token": session.token,
                "csrf": session.csrf,
                "issuer": session.issuer,
                "exp": session.expires_at,
                "school": session.school,
            },
        )
        if len(SESSION_COOKIE) + 1 + len(value) + len(_ATTRIBUTES) > MAX_COOKIE_BYTES:
            raise SessionTooLarge(
                f"the session would need a cookie of {len(value)} bytes, more than a browser "
                f"keeps ({MAX_COOKIE_BYTES})"
            )
        return value

    def open_session(self, value: str | None, *, now: float | None = None) -> BrowserSession | None:
        """The session in a cookie value; None when absent, not ours or past its token's end."""
        payload = self._open("session", value) if value else None
        if payload is None:
            return None
        token, csrf, issuer, expires_at, school = (
            payload.get("token"),
            payload.get("csrf"),
            payload.get("issuer"),
            payload.get("exp"),
            payload.get("school"),
        )
        if not (
            isinstance(token, str)
            and isinstance(csrf, str)
            and isinstance(issuer, str)
            and isinstance(expires_at, int | float)
            and (school is None or isinstance(school, str))
        ):
            return None
        if expires_at <= (time.time() if now is None else now):
            return None
        return BrowserSession(
            token=token, csrf=csrf, issuer=issuer, expires_at=float(expires_at), school=school
        )

    def seal_sign_in(self, pending: PendingSignIn) -> str:
        return self._seal(
            "signin",
            {
                "issuer": pending.issuer,
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.code_verifier,
                "next": pending.next_path,
                "csrf": pending.csrf,
                "exp": pending.expires_at,
            },
        )

    def open_sign_in(self, value: str | None) -> PendingSignIn | None:
        """The sign-in under way in a cookie value; None when absent, not ours or too old."""
        payload = self._open("signin", value) if value else None
        if payload is None:
            return None
        fields = ("issuer", "state", "nonce", "verifier", "next", "csrf")
        if not all(isinstance(payload.get(name), str) for name in fields):
            return None
        expires_at = payload.get("exp")
        if not isinstance(expires_at, int | float) or expires_at <= time.time():
            return None
        return PendingSignIn(
            issuer=payload["issuer"],
            state=payload["state"],
            nonce=payload["nonce"],
            code_verifier=payload["verifier"],
            next_path=payload["next"],
            csrf=payload["csrf"],
            expires_at=float(expires_at),
        )


# The longest attributes the session cookie is sent with, counted against the browser's limit.
_ATTRIBUTES = (
    "; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=2147483647; Path=/; "
    "SameSite=lax; Secure"
)


def set_session_cookie(response: Response, value: str, session: BrowserSession) -> None:
    """The session cookie, kept by the browser until the token it holds expires."""
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max(0, int(session.expires_at - time.time())),
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def set_sign_in_cookie(response: Response, value: str) -> None:
    # Path=/auth: only the sign-in routes ever see it. SameSite=Lax still sends it on the
    # provider's redirect back, a top-level GET navigation.
    response.set_cookie(
        SIGN_IN_COOKIE,
        value,
        max_age=SIGN_IN_SECONDS,
        path="/auth",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_sign_in_cookie(response: Response) -> None:
    response.delete_cookie(SIGN_IN_COOKIE, path="/auth", secure=True, httponly=True, samesite="lax")
