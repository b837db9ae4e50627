"""The Gmail API: Google Workspace sends the message we rendered, as the member of staff.

``POST {gmail}/gmail/v1/users/{sender}/messages/send`` with ``{"raw": base64url(MIME)}`` and a
token the service account obtained for that very mailbox (domain-wide delegation, scope
``gmail.send``). Gmail keeps our headers and puts a copy in the sender's Sent folder.

Google's errors are ``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``: 429, or
403 with reason ``rateLimitExceeded`` / ``userRateLimitExceeded`` / ``dailyLimitExceeded``, mean
"slow down" (Throttled); 401 means the token was refused (asked for again once); other 4xx are
permanent; 5xx are tried again.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import httpx

from hallpass_comms.delivery.headers import envelope, wire_bytes
from hallpass_comms.delivery.oauth import (
    GOOGLE_GMAIL_SEND_SCOPE,
    HttpSession,
    TokenSource,
    google_tokens,
    post_as_mailbox,
)
from hallpass_comms.delivery.transports import (
    QUOTA_RETRY_AFTER_SECONDS,
    PermanentFailure,
    ServerUnavailable,
    Throttled,
    TransientFailure,
    retry_after_seconds,
)
from hallpass_comms.settings import CommsSettings

THROTTLE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded", "quotaExceeded"}
)
# Gmail's rate-limit messages name when to come back: "Retry after 2026-12-02T15:04:05.000Z".
_RETRY_AFTER_IN_TEXT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


class GmailTransport:
    """Sends each envelope with ``users.messages.send`` as the member of staff who wrote it."""

    def __init__(
        self,
        settings: CommsSettings,
        tokens: TokenSource | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = settings.google_gmail_url.rstrip("/")
        self.address = self.base_url
        self.tokens = tokens or google_tokens(settings, GOOGLE_GMAIL_SEND_SCOPE)
        self._client = HttpSession(settings.mail_api_timeout_seconds, client)

    def send(self, message: EmailMessage) -> None:
        try:
            sender, _recipients = envelope(message)
        except (ValueError, IndexError, TypeError) as exc:
            raise PermanentFailure(f"the message has no usable sender: {exc}") from exc
        raw = base64.urlsafe_b64encode(wire_bytes(message)).decode("ascii")
        url = f"{self.base_url}/gmail/v1/users/{quote(sender, safe='@')}/messages/send"
        response = post_as_mailbox(
            self._client,
            self.tokens,
            sender,
            url,
            unreachable=f"cannot reach the Gmail API at {self.base_url}",
            json={"raw": raw},
        )
        if response.status_code != 200:
            raise gmail_failure(response, sender)

    def close(self) -> None:
        self._client.close()
        self.tokens.close()


def gmail_error(response: httpx.Response) -> tuple[str, str]:
    """(reason, message) from Google's error document."""
    try:
        document: Any = response.json()
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return "", response.text[:200]
    reasons = error.get("errors") or []
    reason = ""
    if reasons and isinstance(reasons[0], dict):
        reason = str(reasons[0].get("reason", ""))
    return reason or str(error.get("status", "")), str(error.get("message", ""))


def _retry_after(response: httpx.Response, said: str, reason: str) -> float | None:
    header = retry_after_seconds(response.headers.get("Retry-After"))
    if header is not None:
        return header
    found = _RETRY_AFTER_IN_TEXT.search(said)
    if found is not None:
        moment = dt.datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
        return max(0.0, moment.timestamp() - time.time())
    if reason == "dailyLimitExceeded":
        return QUOTA_RETRY_AFTER_SECONDS
    return None


def gmail_failure(response: httpx.Response, sender: str) -> Exception:
    status = response.status_code
    reason, said = gmail_error(response)
    text = f"Gmail API {status} {reason}: {said}".rstrip(": ")
    if status == 429 or (status == 403 and reason in THROTTLE_REASONS) or status == 503:
        return Throttled(text, retry_after=_retry_after(response, said, reason))
    if status == 401:
        return ServerUnavailable(
            f"{text} (the token was refused: check the service account's delegation)"
        )
    if status == 403:
        return PermanentFailure(
            f"{text} (the service account may not send as {sender}: domain-wide delegation "
            f"must include {GOOGLE_GMAIL_SEND_SCOPE})"
        )
    if 400 <= status < 500:
        return PermanentFailure(text)
    return TransientFailure(text)
