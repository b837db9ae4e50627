"""The Gmail API (E2: sent as the member of staff with a token delegated for their mailbox).

A loopback stand-in shaped from Google's ``users.messages.send`` documentation: ``{"raw":
base64url}``, tokens bound to one mailbox (``sub``) and the gmail.send scope, Google's error
documents with a ``reason``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hallpass_comms.delivery.gmail import GmailTransport
from hallpass_comms.delivery.oauth import MailboxNotDelegated, TokenRefused
from hallpass_comms.delivery.rendering import DELIVERY_HEADER
from hallpass_comms.delivery.transports import PermanentFailure, Throttled
from hallpass_comms.settings import CommsSettings
from tests.comms.providers import (
    CARERS,
    DOMAIN,
    GMAIL_SEND_SCOPE,
    HEAD,
    TEACHER,
    Answer,
    ProviderStandIn,
    family_email,
    google_api_error,
    make_service_account,
)

DEPUTY = f"deputy@{DOMAIN}"


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[ProviderStandIn]:
    server = ProviderStandIn()
    server.google_key = make_service_account(tmp_path, server.google_token_url).public_key
    server.google_users = {TEACHER, DEPUTY}
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gmail(stand_in: ProviderStandIn, tmp_path: Path) -> Iterator[GmailTransport]:
    settings = CommsSettings(
        mail_transport="gmail",
        google_service_account_file=tmp_path / "service-account.json",
        google_token_url=stand_in.google_token_url,
        google_gmail_url=stand_in.url,
    )
    transport = GmailTransport(settings)
    yield transport
    transport.close()


def test_e2_e1_gmail_sends_our_mime_as_each_member_of_staff(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    email = family_email(sender=TEACHER)
    gmail.send(email)
    gmail.send(family_email(sender=DEPUTY))
    gmail.send(family_email(sender=TEACHER))

    first = stand_in.delivered[0]
    assert first.mailbox == TEACHER
    assert first.addresses("From") == [TEACHER]
    assert first.addresses("To") == CARERS
    assert first.addresses("Cc") == [HEAD]
    assert first.message["Message-ID"] == email["Message-ID"]
    assert first.message[DELIVERY_HEADER] == email[DELIVERY_HEADER]
    assert [sent.mailbox for sent in stand_in.delivered] == [TEACHER, DEPUTY, TEACHER]
    # One delegated token per mailbox, each kept for the next message from it.
    assert [(g.subject, g.scope) for g in stand_in.issued] == [
        (TEACHER, GMAIL_SEND_SCOPE),
        (DEPUTY, GMAIL_SEND_SCOPE),
    ]


def test_a_revoked_gmail_token_is_replaced_once(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    gmail.send(family_email())
    stand_in.revoke_all()
    gmail.send(family_email())
    assert len(stand_in.delivered) == 2
    assert len(stand_in.issued) == 2


@pytest.mark.parametrize(
    ("status", "reason", "state"),
    [
        (429, "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
        (403, "userRateLimitExceeded", "PERMISSION_DENIED"),
        (403, "rateLimitExceeded", "PERMISSION_DENIED"),
    ],
)
def test_gmail_rate_limits_raise_throttled(
    stand_in: ProviderStandIn, gmail: GmailTransport, status: int, reason: str, state: str
) -> None:
    stand_in.answer_next(
        "gmail",
        Answer(
            status,
            google_api_error(status, reason, "User-rate limit exceeded.", state),
            {"Retry-After": "30"},
        ),
    )
    with pytest.raises(Throttled) as throttled:
        gmail.send(family_email())
    assert throttled.value.retry_after == 30
    assert reason in str(throttled.value)


def test_gmails_retry_after_time_in_the_message_is_read(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    stand_in.answer_next(
        "gmail",
        Answer(
            429,
            google_api_error(
                429,
                "rateLimitExceeded",
                "User-rate limit exceeded.  Retry after 2099-01-01T00:00:00.000Z",
                "RESOURCE_EXHAUSTED",
            ),
        ),
    )
    with pytest.raises(Throttled) as throttled:
        gmail.send(family_email())
    assert throttled.value.retry_after is not None
    assert throttled.value.retry_after > 3600


def test_e2_a_token_without_the_send_scope_is_permanent_and_names_the_scope(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    stand_in.answer_next(
        "gmail",
        Answer(
            403,
            google_api_error(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
            ),
        ),
    )
    with pytest.raises(PermanentFailure) as refused:
        gmail.send(family_email())
    assert GMAIL_SEND_SCOPE in str(refused.value)


def test_a_bad_request_is_permanent(stand_in: ProviderStandIn, gmail: GmailTransport) -> None:
    stand_in.answer_next(
        "gmail",
        Answer(
            400, google_api_error(400, "invalidArgument", "Invalid To header", "INVALID_ARGUMENT")
        ),
    )
    with pytest.raises(PermanentFailure, match="invalidArgument"):
        gmail.send(family_email())


def test_e2_a_sender_outside_the_workspace_fails_that_envelope(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    with pytest.raises(MailboxNotDelegated):
        gmail.send(family_email(sender=f"left.teacher@{DOMAIN}"))
    gmail.send(family_email(sender=TEACHER))
    assert [sent.mailbox for sent in stand_in.delivered] == [TEACHER]


def test_gmail_without_delegation_stops_mail_naming_the_scope(
    stand_in: ProviderStandIn, gmail: GmailTransport
) -> None:
    stand_in.delegated_scopes = set()
    with pytest.raises(TokenRefused, match=r"gmail\.send"):
        gmail.send(family_email())
    assert stand_in.delivered == []
