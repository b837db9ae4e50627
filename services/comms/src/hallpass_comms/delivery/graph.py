"""Microsoft Graph ``sendMail``: the school's Microsoft 365 sends the message we rendered.

``POST {graph}/v1.0/users/{sender}/sendMail`` with the whole MIME message, base64-encoded, as a
``text/plain`` body: Graph sends it as it is, so the Message-ID, the leadership Cc (E1) and the
delivery header survive, and a copy lands in the member of staff's Sent Items. The app holds the
``Mail.Send`` application permission; an application access policy limits it to the school's
staff mailboxes (docs/mail-delivery.md).

Graph answers 202 when it has taken the message. 429, 503 and 504 carry ``Retry-After`` and mean
"slow down" (Throttled); 401 means the token was refused (asked for again once); 403
``ErrorAccessDenied`` means the app may not send from this mailbox; other 4xx are permanent.
"""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import httpx

from hallpass_comms.delivery.headers import envelope, wire_bytes
from hallpass_comms.delivery.oauth import (
    MICROSOFT_GRAPH_SCOPE,
    HttpSession,
    TokenSource,
    microsoft_tokens,
    post_as_mailbox,
)
from hallpass_comms.delivery.transports import (
    PermanentFailure,
    ServerUnavailable,
    Throttled,
    TransientFailure,
    retry_after_seconds,
)
from hallpass_comms.settings import CommsSettings


class GraphTransport:
    """Sends each envelope with Graph ``sendMail`` as the member of staff who wrote it."""

    def __init__(
        self,
        settings: CommsSettings,
        tokens: TokenSource | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = settings.microsoft_graph_url.rstrip("/")
        self.address = self.base_url
        self.tokens = tokens or microsoft_tokens(settings, MICROSOFT_GRAPH_SCOPE)
        self._client = HttpSession(settings.mail_api_timeout_seconds, client)

    def send(self, message: EmailMessage) -> None:
        try:
            sender, _recipients = envelope(message)
        except (ValueError, IndexError, TypeError) as exc:
            raise PermanentFailure(f"the message has no usable sender: {exc}") from exc
        body = base64.b64encode(wire_bytes(message))
        url = f"{self.base_url}/v1.0/users/{quote(sender, safe='@')}/sendMail"
        response = post_as_mailbox(
            self._client,
            self.tokens,
            sender,
            url,
            unreachable=f"cannot reach Graph at {self.base_url}",
            headers={"Content-Type": "text/plain"},
            content=body,
        )
        if response.status_code != 202:
            raise graph_failure(response, sender)

    READY_TIMEOUT_SECONDS = 2.0

    def ready(self) -> None:
        """Raise ServerUnavailable unless a token can be had and Graph answers now (``/readyz``).

        Any HTTP answer from Graph's host will do: a held token alone would say nothing about
        whether Graph can be reached.
        """
        self.tokens.token("readiness")
        try:
            httpx.head(self.base_url, timeout=self.READY_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach Graph at {self.base_url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
        self.tokens.close()


def graph_error(response: httpx.Response) -> tuple[str, str]:
    """Graph's ``{"error": {"code": .., "message": ..}}``, as (code, message)."""
    try:
        document: Any = response.json()
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", response.text[:200]


def graph_failure(response: httpx.Response, sender: str) -> Exception:
    status = response.status_code
    code, said = graph_error(response)
    text = f"Graph {status} {code}: {said}".rstrip(": ")
    if status in {429, 503, 504}:
        return Throttled(text, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if status == 401:
        return ServerUnavailable(
            f"{text} (the token was refused: the app needs the Mail.Send application "
            "permission with admin consent)"
        )
    if status == 403 and code == "ErrorAccessDenied":
        return PermanentFailure(
            f"Graph 403 ErrorAccessDenied: the application access policy does not include "
            f"{sender}, or the app lacks Mail.Send (add the mailbox to the policy's group; "
            f"Test-ApplicationAccessPolicy -Identity {sender} -AppId <client id>): {said}"
        )
    if status == 404 or code in {"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI"}:
        return PermanentFailure(f"{text} (Graph has no mailbox {sender} to send from)")
    if 400 <= status < 500:
        return PermanentFailure(text)
    return TransientFailure(text)
