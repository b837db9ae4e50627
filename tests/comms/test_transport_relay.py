"""An SMTP relay without a login (Microsoft 365 connector, Google's SMTP relay): STARTTLS or
nothing, and a client certificate where the connector asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from hallpass_comms.delivery.smtp_sessions import RelayTransport
from hallpass_comms.delivery.transports import (
    PermanentFailure,
    ServerUnavailable,
    Throttled,
    TransientFailure,
    retry_after_seconds,
    smtp_reply_failure,
)
from hallpass_comms.settings import CommsSettings
from tests.comms.providers import (
    CARERS,
    HEAD,
    TEACHER,
    ProviderSmtp,
    TlsFiles,
    family_email,
    make_tls_files,
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("relay-tls"))


def started(server: ProviderSmtp) -> Iterator[ProviderSmtp]:
    server.start()
    yield server
    server.stop()


@pytest.fixture
def relay(tls: TlsFiles) -> Iterator[ProviderSmtp]:
    yield from started(ProviderSmtp(tls=tls))


@pytest.fixture
def clear_relay() -> Iterator[ProviderSmtp]:
    yield from started(ProviderSmtp(tls=None))


@pytest.fixture
def certificate_relay(tls: TlsFiles) -> Iterator[ProviderSmtp]:
    yield from started(ProviderSmtp(tls=tls, require_client_certificate=True))


def relay_settings(server: ProviderSmtp, tls: TlsFiles, **extra: object) -> CommsSettings:
    values: dict[str, object] = {
        "mail_transport": "smtp_relay",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_ca_file": tls.authority,
        "smtp_timeout_seconds": 5,
    }
    return CommsSettings.model_validate(values | extra)


def test_e2_e1_the_relay_takes_the_message_over_starttls_without_a_login(
    relay: ProviderSmtp, tls: TlsFiles
) -> None:
    transport = RelayTransport(relay_settings(relay, tls))
    transport.send(family_email())
    transport.send(family_email())
    transport.close()

    first, _second = relay.received
    assert first.logged_in_as is None
    assert first.mail_from == TEACHER
    assert first.addresses("To") == CARERS
    assert first.addresses("Cc") == [HEAD]


def test_a_relay_that_does_not_offer_starttls_gets_nothing(
    clear_relay: ProviderSmtp, tls: TlsFiles
) -> None:
    transport = RelayTransport(relay_settings(clear_relay, tls))
    with pytest.raises(PermanentFailure, match="did not offer STARTTLS"):
        transport.send(family_email())
    with pytest.raises(ServerUnavailable, match="did not offer STARTTLS"):
        transport.ready()
    transport.close()
    assert clear_relay.received == []


def test_settings_refuse_a_relay_in_clear() -> None:
    with pytest.raises(ValidationError, match="refuses to send in clear"):
        CommsSettings(
            mail_transport="smtp_relay",
            smtp_host="smtp-relay.gmail.com",
            smtp_starttls=False,
            smtp_ssl_tls=False,
        )


def test_the_client_certificate_is_shown_to_a_connector_that_asks_for_it(
    certificate_relay: ProviderSmtp, tls: TlsFiles
) -> None:
    transport = RelayTransport(
        relay_settings(certificate_relay, tls, smtp_client_certificate_file=tls.client_certificate)
    )
    transport.send(family_email())
    transport.close()
    assert len(certificate_relay.received) == 1


def test_without_the_client_certificate_the_connector_refuses_and_mail_waits(
    certificate_relay: ProviderSmtp, tls: TlsFiles
) -> None:
    transport = RelayTransport(relay_settings(certificate_relay, tls))
    with pytest.raises(ServerUnavailable):
        transport.send(family_email())
    transport.close()
    assert certificate_relay.received == []


def test_the_relay_is_ready_when_it_answers_and_offers_tls(
    relay: ProviderSmtp, tls: TlsFiles
) -> None:
    RelayTransport(relay_settings(relay, tls)).ready()


@pytest.mark.parametrize(
    ("code", "reply", "kind"),
    [
        (421, "4.7.0 Try again later, closing connection.", Throttled),
        (451, "4.7.500 Server busy. Please try again later", Throttled),
        (432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", Throttled),
        (554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", Throttled),
        (550, "5.4.5 Daily user sending limit exceeded.", Throttled),
        (452, "4.2.2 The email account that you tried to reach is over quota", TransientFailure),
        (550, "5.7.1 Relaying denied", PermanentFailure),
        (
            554,
            "5.2.252 SendAsDenied; teacher@oakfield.sch.uk not allowed to send as head@",
            PermanentFailure,
        ),
    ],
)
def test_what_a_provider_reply_to_the_sender_or_the_data_means(
    code: int, reply: str, kind: type[Exception]
) -> None:
    failure = smtp_reply_failure(code, reply)
    assert type(failure) is kind
    assert str(code) in str(failure)


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 02 Dec 2026 15:01:00 GMT", now=1796223600.0) == 60
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
