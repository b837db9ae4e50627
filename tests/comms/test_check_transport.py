"""``hallpass comms check-transport``: one test message, and exactly what is missing when it fails.

The command reads the same HALLPASS_COMMS_* settings the service does; here they point at the
loopback stand-ins for Microsoft 365 and Google Workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hallpass_comms.delivery.gmail import GmailTransport
from hallpass_comms.delivery.graph import GraphTransport
from hallpass_comms.delivery.smtp_sessions import RelayTransport, XOAuth2Transport
from hallpass_comms.delivery.transports import (
    EmlFolderTransport,
    SmtpTransport,
    transport_from_settings,
)
from hallpass_comms.settings import CommsSettings
from hallpass_gateway.cli import main
from hallpass_kit.settings import CommonSettings
from tests.comms.providers import (
    CLIENT_ID,
    CLIENT_SECRET,
    DOMAIN,
    TEACHER,
    TENANT,
    ProviderSmtp,
    ProviderStandIn,
    TlsFiles,
    make_service_account,
    make_tls_files,
)

PARENT = "carer.0001.a@parents.example.org"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("HALLPASS_DATA_DIR", str(tmp_path))
    for name in ("HALLPASS_AUTH_JWKS_URL", "HALLPASS_AUTH_ISSUER", "HALLPASS_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def stand_in() -> Iterator[ProviderStandIn]:
    server = ProviderStandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


def use_graph(environment: pytest.MonkeyPatch, stand_in: ProviderStandIn, secret: str) -> None:
    for name, value in {
        "MAIL_TRANSPORT": "graph",
        "MICROSOFT_TENANT_ID": TENANT,
        "MICROSOFT_CLIENT_ID": CLIENT_ID,
        "MICROSOFT_CLIENT_SECRET": secret,
        "MICROSOFT_LOGIN_URL": stand_in.url,
        "MICROSOFT_GRAPH_URL": stand_in.url,
    }.items():
        environment.setenv(f"HALLPASS_COMMS_{name}", value)


def check(capsys: pytest.CaptureFixture[str], sender: str = TEACHER) -> tuple[int, str]:
    status = main(["comms", "check-transport", "--from", sender, "--to", PARENT])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_e2_check_transport_sends_a_test_message_through_graph(
    environment: pytest.MonkeyPatch,
    stand_in: ProviderStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_graph(environment, stand_in, CLIENT_SECRET)
    status, said = check(capsys)

    assert status == 0
    assert f"token for {TEACHER} from the Microsoft identity platform (tenant {TENANT}): ok" in said
    assert f"sent: Hallpass test message from {TEACHER} to {PARENT}" in said
    (sent,) = stand_in.delivered
    assert sent.addresses("From") == [TEACHER]
    assert sent.addresses("To") == [PARENT]


def test_check_transport_names_a_refused_client_secret(
    environment: pytest.MonkeyPatch,
    stand_in: ProviderStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_graph(environment, stand_in, "not-the-secret")
    status, said = check(capsys)

    assert status == 1
    assert "the token endpoint refused the client secret (AADSTS7000215)" in said
    assert stand_in.delivered == []


def test_e2_check_transport_names_the_access_policy_that_leaves_the_mailbox_out(
    environment: pytest.MonkeyPatch,
    stand_in: ProviderStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_graph(environment, stand_in, CLIENT_SECRET)
    stand_in.access_policy = {f"office@{DOMAIN}"}
    status, said = check(capsys)

    assert status == 1
    assert (
        f"Graph 403 ErrorAccessDenied: the application access policy does not include {TEACHER}"
        in said
    )


def test_check_transport_says_the_relay_did_not_offer_starttls(
    environment: pytest.MonkeyPatch, tls: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = ProviderSmtp(tls=None)
    relay.start()
    try:
        environment.setenv("HALLPASS_COMMS_MAIL_TRANSPORT", "smtp_relay")
        environment.setenv("HALLPASS_COMMS_SMTP_HOST", "127.0.0.1")
        environment.setenv("HALLPASS_COMMS_SMTP_PORT", str(relay.port))
        environment.setenv("HALLPASS_COMMS_SMTP_CA_FILE", str(tls.authority))
        status, said = check(capsys)
    finally:
        relay.stop()

    assert status == 1
    assert "did not offer STARTTLS" in said
    assert relay.received == []


def test_e2_check_transport_names_the_exchange_mailbox_permission(
    environment: pytest.MonkeyPatch,
    stand_in: ProviderStandIn,
    tls: TlsFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exchange = ProviderSmtp(tls=tls, stand_in=stand_in, provider="microsoft")
    exchange.start()
    try:
        for name, value in {
            "MAIL_TRANSPORT": "smtp_oauth2",
            "OAUTH_PROVIDER": "microsoft",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(exchange.port),
            "SMTP_CA_FILE": str(tls.authority),
            "MICROSOFT_TENANT_ID": TENANT,
            "MICROSOFT_CLIENT_ID": CLIENT_ID,
            "MICROSOFT_CLIENT_SECRET": CLIENT_SECRET,
            "MICROSOFT_LOGIN_URL": stand_in.url,
        }.items():
            environment.setenv(f"HALLPASS_COMMS_{name}", value)
        status, said = check(capsys)
        stand_in.full_access = {TEACHER}
        again, said_again = check(capsys)
    finally:
        exchange.stop()

    assert status == 1
    assert f"Exchange refused XOAUTH2 for {TEACHER}" in said
    assert "Add-MailboxPermission" in said
    assert again == 0, said_again
    assert [r.logged_in_as for r in exchange.received] == [TEACHER]


def test_check_transport_names_the_missing_setting(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("HALLPASS_COMMS_MAIL_TRANSPORT", "gmail")
    status, said = check(capsys)

    assert status == 2
    assert (
        "HALLPASS_COMMS_MAIL_TRANSPORT=gmail needs HALLPASS_COMMS_GOOGLE_SERVICE_ACCOUNT_FILE"
        in (said)
    )


def test_check_transport_refuses_plain_http_endpoints_in_production(
    environment: pytest.MonkeyPatch,
    stand_in: ProviderStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_graph(environment, stand_in, CLIENT_SECRET)
    environment.setenv("HALLPASS_ENV", "production")
    environment.setenv("HALLPASS_AUTH_JWKS_URL", "https://login.oakfield.sch.uk/jwks")
    environment.setenv("HALLPASS_AUTH_ISSUER", "https://login.oakfield.sch.uk")
    environment.setenv("HALLPASS_WEBHOOK_SECRET", "a-long-secret-only-oakfield-knows-4f9c2e")
    status, said = check(capsys)

    assert status == 2
    assert "it must be https" in said
    assert stand_in.issued == []


def test_check_transport_writes_the_test_message_to_the_eml_outbox(
    environment: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, said = check(capsys)

    assert status == 0, said
    (written,) = (tmp_path / "outbox").glob("*.eml")
    assert f"To: {PARENT}" in written.read_text()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, EmlFolderTransport),
        ({"smtp_host": "mail.oakfield.sch.uk"}, SmtpTransport),
        (
            {
                "mail_transport": "smtp_oauth2",
                "smtp_host": "smtp.office365.com",
                "microsoft_tenant_id": TENANT,
                "microsoft_client_id": CLIENT_ID,
                "microsoft_client_secret": CLIENT_SECRET,
            },
            XOAuth2Transport,
        ),
        (
            {
                "mail_transport": "smtp_relay",
                "smtp_host": "oakfield-sch-uk.mail.protection.outlook.com",
            },
            RelayTransport,
        ),
        (
            {
                "mail_transport": "graph",
                "microsoft_tenant_id": TENANT,
                "microsoft_client_id": CLIENT_ID,
                "microsoft_client_secret": CLIENT_SECRET,
            },
            GraphTransport,
        ),
    ],
)
def test_the_setting_chooses_the_transport_and_unset_keeps_todays_choice(
    tmp_path: Path, values: dict[str, str], expected: type
) -> None:
    transport = transport_from_settings(
        CommsSettings.model_validate(values), CommonSettings(data_dir=tmp_path)
    )
    assert type(transport) is expected
    close = getattr(transport, "close", None)
    if callable(close):
        close()


def test_gmail_is_chosen_with_a_service_account_file(tmp_path: Path) -> None:
    key = make_service_account(tmp_path, "https://oauth2.googleapis.com/token")
    settings = CommsSettings(mail_transport="gmail", google_service_account_file=key.path)
    transport = transport_from_settings(settings, CommonSettings(data_dir=tmp_path))
    assert isinstance(transport, GmailTransport)
    transport.close()


def test_smtp_oauth2_reads_the_provider_from_the_host() -> None:
    google = CommsSettings(
        mail_transport="smtp_oauth2",
        smtp_host="smtp.gmail.com",
        google_service_account_file=Path("sa.json"),
    )
    assert google.resolved_oauth_provider() == "google"
    with pytest.raises(ValueError, match="needs HALLPASS_COMMS_OAUTH_PROVIDER"):
        CommsSettings(mail_transport="smtp_oauth2", smtp_host="mail.oakfield.sch.uk")


def test_check_transport_names_a_service_account_file_that_is_not_one(
    environment: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "downloaded.json"
    key.write_text('{"type": "authorized_user"}')
    environment.setenv("HALLPASS_COMMS_MAIL_TRANSPORT", "gmail")
    environment.setenv("HALLPASS_COMMS_GOOGLE_SERVICE_ACCOUNT_FILE", str(key))
    status, said = check(capsys)

    assert status == 2
    assert f"not a service account key file: {key}" in said
