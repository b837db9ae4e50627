from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hallpass_kit.settings import CommonSettings, sqlite_url


def spare_cpus() -> int:
    """Scan workers by default: one per CPU this process may use beyond the first, at least one.

    OCR takes a whole CPU for a second or more per picture; the API process (event loop,
    consent decisions, checks) must keep one CPU of its own or every request's latency follows
    the scans. On a school's 2-CPU server that is one worker: scans queue (a check-file waits
    its turn, bounded by HALLPASS_MEDIA_CHECK_FILE_SCAN_SECONDS) rather than take the API's CPU.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(16, max(1, cpus - 1))


class MediaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLPASS_MEDIA_", extra="ignore")

    # Unset: a SQLite file under HALLPASS_DATA_DIR (embedded mode).
    database_url: str | None = None

    # Where originals and published copies live: a folder under the data dir, or any S3 API.
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    # The store's address as people and the CMS reach it, for the download links they are given;
    # unset: links carry s3_endpoint_url (right only when that address is public too).
    s3_public_endpoint_url: str | None = None
    s3_region: str = "eu-west-2"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # How long a presigned download link stays valid.
    s3_presign_seconds: int = Field(default=300, ge=10, le=86_400)

    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Checked on the file's header before any pixel is decoded (docs/media.md, "Limits").
    max_pixels: int = Field(default=50_000_000, ge=10_000)
    max_side: int = Field(default=20_000, ge=100)
    max_aspect_ratio: float = Field(default=12.0, ge=1.0)
    max_metadata_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # Pictures are decoded and scanned only in worker processes: how many, how much memory
    # (address space) each may take, how long one file may take, and how long a request waits
    # for a free worker before it is answered 503. Workers 0 (the default): one per CPU beyond
    # the first, at least one, so the API process keeps a CPU of its own (a 2-CPU server: one).
    scan_workers: int = Field(default=0, ge=0, le=16, validate_default=True)
    scan_worker_memory_mb: int = Field(default=3072, ge=256)
    scan_seconds: float = Field(default=60.0, gt=0, le=600)
    scan_wait_seconds: float = Field(default=30.0, ge=0, le=300)
    # How long POST /v1/publications:check-file waits for its scan, a free worker included, before
    # it answers 503 scan_too_slow (never "allowed"); the request holds no thread meanwhile.
    check_file_scan_seconds: float = Field(default=20.0, gt=0, le=600)
    # OCR is the slow part of a scan; a deployment without it still detects names in metadata,
    # file names and text, faces and location.
    ocr: bool = True
    # How often the scan job looks for new uploads (it also runs after every commit).
    scan_interval_seconds: float = Field(default=1.0, gt=0)
    max_check_items: int = Field(default=20, ge=1, le=100)

    @field_validator("scan_workers")
    @classmethod
    def _workers_for_this_machine(cls, workers: int) -> int:
        return workers or spare_cpus()

    def resolved_database_url(self, common: CommonSettings) -> str:
        return self.database_url or sqlite_url(common.data_dir, "media")
