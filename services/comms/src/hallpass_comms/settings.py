from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hallpass_kit.settings import CommonSettings, sqlite_url


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
    # Where carers open sensitive messages (E5): the gateway's public base URL. Unset: the
    # deployment's HALLPASS_PUBLIC_BASE_URL, else the embedded gateway's own address.
    public_base_url: str | None = None
    # Consent renewal reminders: how far ahead to look (0 = never), and how often the job runs.
    reminder_within_days: int = Field(default=30, ge=0, le=366)
    reminder_interval_minutes: int = Field(default=24 * 60, ge=1)

    def resolved_public_base_url(self, common: CommonSettings) -> str:
        return self.public_base_url or common.public_base_url or "http://127.0.0.1:8000"

    def resolved_database_url(self, common: CommonSettings) -> str:
        return self.database_url or sqlite_url(common.data_dir, "comms")
