from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hallpass_kit.settings import CommonSettings, sqlite_url

# The most pupils one decision request may ever carry, whatever a deployment configures.
MAX_DECISION_BATCH_CEILING = 10_000


class ConsentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLPASS_CONSENT_", extra="ignore")

    # Unset: a SQLite file under HALLPASS_DATA_DIR (embedded mode).
    database_url: str | None = None
    max_decision_batch: int = Field(default=1000, ge=1, le=MAX_DECISION_BATCH_CEILING)
    max_import_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_import_rows: int = Field(default=10_000, ge=1)
    # The largest scan of a signed consent form, per file: a phone photo or a few scanned pages.
    max_scan_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    expiry_sweep_minutes: int = Field(default=10, ge=1)
    # How long a carer's invitation code works: long enough for a letter home and back.
    invitation_days: int = Field(default=14, ge=1, le=90)

    def resolved_database_url(self, common: CommonSettings) -> str:
        return self.database_url or sqlite_url(common.data_dir, "consent")
