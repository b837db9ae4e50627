from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hallpass_kit.settings import CommonSettings, sqlite_url

MailTransportName = Literal["eml", "smtp", "smtp_oauth2", "smtp_relay", "graph", "gmail"]


class CommsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLPASS_COMMS_", extra="ignore")

    # Unset: a SQLite file under HALLPASS_DATA_DIR (embedded mode).
    database_url: str | None = None
    # Unset: every email is written as a .eml file under HALLPASS_DATA_DIR/outbox (embedded mode).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_ssl_tls: bool = False
    smtp_timeout_seconds: int = Field(default=30, ge=1, le=300)
    # --- Mail transports (docs/mail-delivery.md, "Transports and settings") ---

    # How mail leaves: eml, smtp (login with a password), smtp_oauth2 (XOAUTH2 with tokens from
    # Microsoft or Google), smtp_relay (no login, STARTTLS required), graph (Microsoft Graph
    # sendMail) or gmail (the Gmail API). Unset: smtp when SMTP_HOST is set, else eml.
    mail_transport: MailTransportName | None = None
    # Whose tokens smtp_oauth2 uses: microsoft (client credentials) or google (a service account
    # with domain-wide delegation). Unset: read from the SMTP host (office365 / gmail).
    oauth_provider: Literal["microsoft", "google"] | None = None
    # smtp_oauth2 and smtp_relay: a PEM file of certificate authorities to trust for the SMTP
    # server, besides the system's (a school's own relay).
    smtp_ca_file: Path | None = None
    # smtp_relay: a client certificate (PEM, with its key in the same file or in the next setting)
    # for a connector that recognises the school by certificate.
    smtp_client_certificate_file: Path | None = None
    smtp_client_key_file: Path | None = None
    # Microsoft 365: the directory (tenant) id, and the app registration's client id and secret.
    microsoft_tenant_id: str | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: SecretStr | None = None
    # Instead of a secret: a PEM file holding the app's certificate and its private key.
    microsoft_client_certificate_file: Path | None = None
    # The Microsoft identity platform and Graph (another value for a national cloud).
    microsoft_login_url: str = "https://login.microsoftonline.com"
    microsoft_graph_url: str = "https://graph.microsoft.com"
    # Google Workspace: the service account's JSON key file (domain-wide delegation granted).
    google_service_account_file: Path | None = None
    # Where Google's tokens and the Gmail API are.
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    google_gmail_url: str = "https://gmail.googleapis.com"
    # Longest wait for a token endpoint, Graph or the Gmail API to answer one request.
    mail_api_timeout_seconds: float = Field(default=30.0, gt=0, le=300)

    # --- end of mail transports ---

    # Provider sending limits (docs/mail-delivery.md, "Provider limits"): whose published
    # limits apply by default: microsoft (Exchange Online: 30 messages a minute and 10,000
    # recipients a day per mailbox), google (Gmail: 2,000 messages and 10,000 recipients a day
    # per user) or none. Unset: read from the transport (graph, gmail, or the
    # SMTP host); the .eml folder is never limited.
    limit_provider: Literal["microsoft", "google", "none"] | None = None
    # Per sending mailbox, overriding the provider's default (0 = no limit): messages in any 60
    # seconds, and messages and recipients (To and Cc) in any 24 hours.
    limit_messages_per_minute: int | None = Field(default=None, ge=0)
    limit_messages_per_day: int | None = Field(default=None, ge=0)
    limit_recipients_per_day: int | None = Field(default=None, ge=0)
    # For all mailboxes together (a relay's own limit; 0 = none).
    limit_transport_messages_per_minute: int = Field(default=0, ge=0)
    limit_transport_recipients_per_day: int = Field(default=0, ge=0)
    # The length in seconds of the "minute" the per-minute limits count over: 60, shorter only
    # to run the benchmark's limited send in seconds.
    limit_minute_seconds: int = Field(default=60, ge=1, le=60)
    # The mailbox that delivery status notifications (bounces) arrive at, read over IMAP. Unset
    # host: bounces are not read.
    bounce_imap_host: str | None = None
    bounce_imap_port: int = Field(default=993, ge=1, le=65535)
    # tls (port 993), starttls (port 143), or none (only to a loopback address, for tests).
    bounce_imap_security: Literal["tls", "starttls", "none"] = "tls"
    # The bounce mailbox's login (docs/mail-delivery.md, "Bounces"): the address, and its
    # password; or, with BOUNCE_IMAP_AUTH, an OAuth2 token (XOAUTH2) from the school's Microsoft
    # app registration or Google service account set up for sending.
    bounce_imap_username: str | None = None
    bounce_imap_password: SecretStr | None = None
    bounce_imap_auth: Literal["password", "microsoft", "google"] = "password"
    # The folder the reports arrive in, and how often it is read.
    bounce_imap_folder: str = "INBOX"
    bounce_interval_minutes: int = Field(default=5, ge=1)
    # Larger messages are left unread in the mailbox (a DSN is a few kilobytes).
    bounce_max_message_bytes: int = Field(default=2_000_000, ge=10_000)
    # Where carers open sensitive messages (E5): the gateway's public base URL. Unset: the
    # deployment's HALLPASS_PUBLIC_BASE_URL, else the embedded gateway's own address.
    public_base_url: str | None = None
    # Consent renewal reminders: how far ahead to look (0 = never), and how often the job runs.
    reminder_within_days: int = Field(default=30, ge=0, le=366)
    reminder_interval_minutes: int = Field(default=24 * 60, ge=1)

    @model_validator(mode="after")
    def _transport_has_what_it_needs(self) -> Self:
        missing = missing_transport_settings(self)
        if missing:
            names = ", ".join(f"HALLPASS_COMMS_{name.upper()}" for name in missing)
            raise ValueError(
                f"HALLPASS_COMMS_MAIL_TRANSPORT={self.resolved_mail_transport()} needs {names}"
            )
        transport = self.resolved_mail_transport()
        if transport in {"smtp_oauth2", "smtp_relay"} and not (
            self.smtp_starttls or self.smtp_ssl_tls
        ):
            # A relay trusts the school by address or certificate and a token is as good as a
            # password: neither goes over a connection anyone on the path can read.
            raise ValueError(
                f"HALLPASS_COMMS_MAIL_TRANSPORT={transport} refuses to send in clear: set "
                "HALLPASS_COMMS_SMTP_STARTTLS=true (port 587) or HALLPASS_COMMS_SMTP_SSL_TLS=true "
                "(port 465)"
            )
        if self.smtp_client_key_file is not None and self.smtp_client_certificate_file is None:
            raise ValueError(
                "HALLPASS_COMMS_SMTP_CLIENT_KEY_FILE needs "
                "HALLPASS_COMMS_SMTP_CLIENT_CERTIFICATE_FILE"
            )
        return self

    def resolved_mail_transport(self) -> MailTransportName:
        if self.mail_transport is not None:
            return self.mail_transport
        return "smtp" if self.smtp_host else "eml"

    def resolved_oauth_provider(self) -> Literal["microsoft", "google"] | None:
        if self.oauth_provider is not None:
            return self.oauth_provider
        host = (self.smtp_host or "").lower()
        if host.endswith(("office365.com", "outlook.com")):
            return "microsoft"
        if host.endswith(("gmail.com", "google.com", "googlemail.com")):
            return "google"
        return None

    def resolved_public_base_url(self, common: CommonSettings) -> str:
        return self.public_base_url or common.public_base_url or "http://127.0.0.1:8000"

    def resolved_database_url(self, common: CommonSettings) -> str:
        return self.database_url or sqlite_url(common.data_dir, "comms")


def missing_transport_settings(settings: CommsSettings) -> list[str]:
    """The settings (field names) the chosen transport cannot work without, in reading order."""
    transport = settings.resolved_mail_transport()
    missing: list[str] = []
    if transport in {"smtp", "smtp_oauth2", "smtp_relay"} and not settings.smtp_host:
        missing.append("smtp_host")
    microsoft = transport == "graph" or (
        transport == "smtp_oauth2" and settings.resolved_oauth_provider() == "microsoft"
    )
    google = transport == "gmail" or (
        transport == "smtp_oauth2" and settings.resolved_oauth_provider() == "google"
    )
    if transport == "smtp_oauth2" and not (microsoft or google):
        missing.append("oauth_provider")
    if microsoft:
        if not settings.microsoft_tenant_id:
            missing.append("microsoft_tenant_id")
        if not settings.microsoft_client_id:
            missing.append("microsoft_client_id")
        if (
            settings.microsoft_client_secret is None
            or not settings.microsoft_client_secret.get_secret_value()
        ) and settings.microsoft_client_certificate_file is None:
            missing.append("microsoft_client_secret")
    if google and settings.google_service_account_file is None:
        missing.append("google_service_account_file")
    return missing
