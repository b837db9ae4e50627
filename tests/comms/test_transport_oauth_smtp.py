"""SMTP with XOAUTH2 (E2: each message sent as the member of staff's own mailbox).

A real aiosmtpd server on loopback with STARTTLS and an XOAUTH2 authenticator plays Exchange
Online and Gmail; a loopback token endpoint plays the Microsoft identity platform (client
credentials) and Google's (a service-account assertion, signature checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hallpass_comms.delivery.oauth import (
    GOOGLE_SMTP_SCOPE,
    MICROSOFT_SMTP_SCOPE,
    GoogleServiceAccount,
    MicrosoftClientCredentials,
    TokenRefused,
)
from hallpass_comms.delivery.smtp_sessions import XOAuth2Transport
from hallpass_comms.delivery.transports import (
    PermanentFailure,
    RecipientsRefused,
    ServerUnavailable,
    Throttled,
    TransientFailure,
)
from hallpass_comms.settings import CommsSettings
from tests.comms.providers import (
    CARERS,
    CLIENT_ID,
    CLIENT_SECRET,
    DOMAIN,
    HEAD,
    TEACHER,
    TENANT,
    Answer,
    ProviderSmtp,
    ProviderStandIn,
    TlsFiles,
    family_email,
    make_app_certificate,
    make_service_account,
    make_tls_files,
    microsoft_error,
)

DEPUTY = f"deputy@{DOMAIN}"


class Clock:
    """A monotonic clock the test moves (token lifetimes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def stand_in() -> Iterator[ProviderStandIn]:
    server = ProviderStandIn()
    server.start()
    yield server
    server.stop()


def smtp_for(provider: str, tls: TlsFiles, stand_in: ProviderStandIn) -> Iterator[ProviderSmtp]:
    server = ProviderSmtp(tls=tls, stand_in=stand_in, provider=provider)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def exchange(tls: TlsFiles, stand_in: ProviderStandIn) -> Iterator[ProviderSmtp]:
    stand_in.full_access = {TEACHER, DEPUTY}
    yield from smtp_for("microsoft", tls, stand_in)


@pytest.fixture
def gmail(tls: TlsFiles, stand_in: ProviderStandIn, tmp_path: Path) -> Iterator[ProviderSmtp]:
    key = make_service_account(tmp_path, stand_in.google_token_url)
    stand_in.google_key = key.public_key
    stand_in.google_users = {TEACHER, DEPUTY}
    yield from smtp_for("google", tls, stand_in)


def settings_for(
    server: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn, provider: str, **extra: object
) -> CommsSettings:
    values: dict[str, object] = {
        "mail_transport": "smtp_oauth2",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_ca_file": tls.authority,
        "smtp_timeout_seconds": 5,
        "oauth_provider": provider,
    }
    if provider == "microsoft":
        values |= {
            "microsoft_tenant_id": TENANT,
            "microsoft_client_id": CLIENT_ID,
            "microsoft_client_secret": CLIENT_SECRET,
            "microsoft_login_url": stand_in.url,
        }
    values |= extra
    return CommsSettings.model_validate(values)


def microsoft_tokens(stand_in: ProviderStandIn, clock: Clock) -> MicrosoftClientCredentials:
    return MicrosoftClientCredentials(
        tenant=TENANT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=MICROSOFT_SMTP_SCOPE,
        login_url=stand_in.url,
        clock=clock,
    )


@pytest.fixture
def microsoft_transport(
    exchange: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn
) -> Iterator[XOAuth2Transport]:
    transport = XOAuth2Transport(settings_for(exchange, tls, stand_in, "microsoft"))
    yield transport
    transport.close()


def test_e2_e1_exchange_receives_the_message_logged_in_as_the_member_of_staff(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport
) -> None:
    email = family_email()
    microsoft_transport.send(email)

    (received,) = exchange.received
    assert received.logged_in_as == TEACHER
    assert received.mail_from == TEACHER
    assert received.addresses("From") == [TEACHER]
    assert received.addresses("To") == CARERS
    assert received.addresses("Cc") == [HEAD]
    assert sorted(received.rcpt_tos) == sorted([*CARERS, HEAD])
    assert received.message_id == email["Message-ID"]


def test_the_app_token_is_cached_and_the_connection_kept_between_envelopes(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport, stand_in: ProviderStandIn
) -> None:
    for _ in range(3):
        microsoft_transport.send(family_email())

    assert len(exchange.received) == 3
    assert len(stand_in.issued) == 1
    assert exchange.handler.logins == [TEACHER]  # one session, logged in once


def test_e2_another_member_of_staff_gets_a_session_logged_in_as_them(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport, stand_in: ProviderStandIn
) -> None:
    microsoft_transport.send(family_email(sender=TEACHER))
    microsoft_transport.send(family_email(sender=DEPUTY))

    assert [r.logged_in_as for r in exchange.received] == [TEACHER, DEPUTY]
    assert len(stand_in.issued) == 1  # Microsoft's app token serves every mailbox


def test_a_token_is_renewed_shortly_before_it_expires(
    exchange: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn
) -> None:
    clock = Clock()
    stand_in.expires_in = 3600
    tokens = microsoft_tokens(stand_in, clock)
    first = tokens.token(TEACHER)
    clock.now += 3600 - 301  # more than five minutes left: the same token
    assert tokens.token(TEACHER) == first
    clock.now += 2  # under five minutes left: a new one
    assert tokens.token(TEACHER) != first
    assert tokens.requests == 2


def test_a_refused_token_is_replaced_once_and_the_message_sent(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport, stand_in: ProviderStandIn
) -> None:
    microsoft_transport.send(family_email())
    microsoft_transport.close()
    stand_in.revoke_all()  # the cached token no longer works at the server

    microsoft_transport.send(family_email())

    assert len(exchange.received) == 2
    assert exchange.handler.refused_logins == 1
    assert len(stand_in.issued) == 2


def test_e2_a_mailbox_the_app_has_no_rights_on_fails_naming_the_permission(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport, stand_in: ProviderStandIn
) -> None:
    stranger = f"supply.teacher@{DOMAIN}"
    with pytest.raises(PermanentFailure) as refused:
        microsoft_transport.send(family_email(sender=stranger))

    assert "Add-MailboxPermission" in str(refused.value)
    assert stranger in str(refused.value)
    assert exchange.received == []


def test_a_refused_client_secret_stops_mail_with_the_aadsts_code(
    exchange: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn
) -> None:
    settings = settings_for(exchange, tls, stand_in, "microsoft", microsoft_client_secret="wrong")
    transport = XOAuth2Transport(settings)
    with pytest.raises(TokenRefused) as refused:
        transport.send(family_email())
    transport.close()

    # Not the envelope's fault: the worker waits (ServerUnavailable) rather than failing mail.
    assert isinstance(refused.value, ServerUnavailable)
    assert "refused the client secret (AADSTS7000215)" in str(refused.value)
    assert exchange.received == []


def test_an_expired_client_secret_is_named(
    stand_in: ProviderStandIn,
) -> None:
    stand_in.answer_next(
        "microsoft-token",
        Answer(401, microsoft_error(7000222, "invalid_client", "The provided secret expired.")),
    )
    with pytest.raises(TokenRefused, match=r"client secret has expired .AADSTS7000222."):
        microsoft_tokens(stand_in, Clock()).token(TEACHER)


@pytest.mark.parametrize(
    "reply",
    ["421 4.7.0 Try again later, closing connection", "451 4.7.500 Server busy. Please try again"],
)
def test_throttling_replies_to_mail_from_raise_throttled(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport, reply: str
) -> None:
    exchange.handler.refuse_mail(reply)
    with pytest.raises(Throttled) as throttled:
        microsoft_transport.send(family_email())

    assert reply.split()[0] in str(throttled.value)
    exchange.handler.refuse_mail(None)
    microsoft_transport.send(family_email())
    assert len(exchange.received) == 1


def test_a_daily_quota_is_throttling_not_a_failed_envelope(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport
) -> None:
    exchange.handler.refuse_mail(
        "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"
    )
    with pytest.raises(Throttled) as throttled:
        microsoft_transport.send(family_email())
    assert throttled.value.retry_after is not None
    assert throttled.value.retry_after >= 60


def test_every_recipient_refused_with_5xx_is_permanent_and_4xx_transient(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport
) -> None:
    exchange.handler.refuse("550 5.1.1 User unknown")
    with pytest.raises(PermanentFailure, match=r"5\.1\.1"):
        microsoft_transport.send(family_email())
    exchange.handler.refuse("451 4.7.1 Greylisted")
    with pytest.raises(TransientFailure) as later:
        microsoft_transport.send(family_email())
    assert not isinstance(later.value, Throttled)  # greylisting is about the recipient


def test_some_recipients_refused_counts_as_sent_to_the_others(
    exchange: ProviderSmtp, microsoft_transport: XOAuth2Transport
) -> None:
    exchange.handler.refuse("550 5.1.1 User unknown", CARERS[1])
    with pytest.raises(RecipientsRefused) as partly:
        microsoft_transport.send(family_email())

    assert list(partly.value.refused) == [CARERS[1]]
    (received,) = exchange.received
    assert sorted(received.rcpt_tos) == sorted([CARERS[0], HEAD])


def test_an_untrusted_server_certificate_is_refused(
    exchange: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn
) -> None:
    settings = settings_for(exchange, tls, stand_in, "microsoft", smtp_ca_file=None)
    transport = XOAuth2Transport(settings)
    with pytest.raises(ServerUnavailable, match="not trusted"):
        transport.send(family_email())
    transport.close()
    assert exchange.received == []


# --------------------------------------------------------------------------------------------
# Google Workspace: one delegated token per mailbox


def test_e2_gmail_receives_each_staff_message_with_a_token_for_that_mailbox(
    gmail: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    settings = settings_for(
        gmail,
        tls,
        stand_in,
        "google",
        google_service_account_file=tmp_path / "service-account.json",
        google_token_url=stand_in.google_token_url,
    )
    transport = XOAuth2Transport(settings)
    transport.send(family_email(sender=TEACHER))
    transport.send(family_email(sender=DEPUTY))
    transport.send(family_email(sender=TEACHER))
    transport.close()

    assert [r.logged_in_as for r in gmail.received] == [TEACHER, DEPUTY, TEACHER]
    assert [r.addresses("Cc") for r in gmail.received] == [[HEAD]] * 3
    # sub differs per mailbox, so each has its own token, and each is reused.
    assert [(g.subject, g.scope) for g in stand_in.issued] == [
        (TEACHER, GOOGLE_SMTP_SCOPE),
        (DEPUTY, GOOGLE_SMTP_SCOPE),
    ]


def test_google_without_delegation_names_the_admin_console_setting(
    stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    key = make_service_account(tmp_path, stand_in.google_token_url)
    stand_in.google_key = key.public_key
    stand_in.google_users = {TEACHER}
    stand_in.delegated_scopes = set()
    tokens = GoogleServiceAccount(
        key.path, scope=GOOGLE_SMTP_SCOPE, token_url=stand_in.google_token_url
    )
    with pytest.raises(TokenRefused, match="Domain-wide delegation") as refused:
        tokens.token(TEACHER)
    assert GOOGLE_SMTP_SCOPE in str(refused.value)


def test_google_refuses_an_assertion_signed_with_another_key(
    stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    ours = make_service_account(tmp_path, stand_in.google_token_url)
    other = tmp_path / "other"
    other.mkdir()
    stand_in.google_key = make_service_account(other, stand_in.google_token_url).public_key
    stand_in.google_users = {TEACHER}
    tokens = GoogleServiceAccount(
        ours.path, scope=GOOGLE_SMTP_SCOPE, token_url=stand_in.google_token_url
    )
    with pytest.raises(TokenRefused, match="Invalid JWT Signature"):
        tokens.token(TEACHER)
    assert stand_in.issued == []


def test_e2_a_sender_google_does_not_know_fails_that_envelope_only(
    stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    key = make_service_account(tmp_path, stand_in.google_token_url)
    stand_in.google_key = key.public_key
    stand_in.google_users = {TEACHER}
    tokens = GoogleServiceAccount(
        key.path, scope=GOOGLE_SMTP_SCOPE, token_url=stand_in.google_token_url
    )
    with pytest.raises(PermanentFailure, match=r"no user left\.teacher@"):
        tokens.token(f"left.teacher@{DOMAIN}")
    assert tokens.token(TEACHER)


def test_e2_a_certificate_instead_of_a_secret_gets_the_token_and_sends(
    exchange: ProviderSmtp, tls: TlsFiles, stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    certificate = make_app_certificate(tmp_path)
    stand_in.app_certificate = certificate
    stand_in.client_secret = "no secret works now"
    settings = settings_for(
        exchange,
        tls,
        stand_in,
        "microsoft",
        microsoft_client_secret=None,
        microsoft_client_certificate_file=certificate.path,
    )
    transport = XOAuth2Transport(settings)
    transport.send(family_email())
    transport.close()

    assert [r.logged_in_as for r in exchange.received] == [TEACHER]


def test_a_certificate_microsoft_does_not_hold_is_named(
    stand_in: ProviderStandIn, tmp_path: Path
) -> None:
    stand_in.app_certificate = make_app_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    tokens = MicrosoftClientCredentials(
        tenant=TENANT,
        client_id=CLIENT_ID,
        scope=MICROSOFT_SMTP_SCOPE,
        certificate_file=make_app_certificate(other).path,
        login_url=stand_in.url,
    )
    with pytest.raises(TokenRefused, match=r"certificate's signature \(AADSTS700027\)"):
        tokens.token(TEACHER)
