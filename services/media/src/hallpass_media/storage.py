"""Where originals and published copies live: a folder on disk, or any S3 API through boto3.

Every method blocks (disk or network), so callers run them in a worker thread: from ``def``
endpoints, the scan job or ``run_in_threadpool``, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hallpass_kit.errors import ServiceUnavailable
from hallpass_kit.settings import CommonSettings
from hallpass_media.settings import MediaSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger("hallpass.media.storage")

CHUNK = 64 * 1024


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def stream(self, key: str) -> Iterator[bytes]: ...
    def download_url(self, key: str, *, file_name: str, content_type: str) -> str | None:
        """A link the client fetches itself (S3), or None when the service streams the bytes."""
        ...

    def ready(self) -> None:
        """Raise StorageUnavailable unless the store answers now (``/readyz``), within seconds."""
        ...


class LocalStorage:
    """Files under a folder: the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys are built by the service, never from client input; this guards against a bug.
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the media folder: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stream(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def download_url(self, key: str, *, file_name: str, content_type: str) -> str | None:
        return None

    def ready(self) -> None:
        # A volume that is unmounted or read-only takes no upload.
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(
                "The media folder is missing or not writable.", code="storage_unavailable"
            )


class S3Storage:
    """Any S3 API (AWS S3, MinIO, SeaweedFS) through boto3."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        presign_seconds: int = 300,
        public_endpoint_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.presign_seconds = presign_seconds

        def client(endpoint: str | None, config: Config) -> S3Client:
            return boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )

        self.client = client(
            endpoint_url,
            Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        # Links are handed to people and the CMS, who reach the store at its public address,
        # never at the internal one the service uses (``minio:9000``). The signature covers the
        # host, so the link must be signed for the public one; presigning makes no request.
        self.presigner = (
            client(public_endpoint_url, self.client.meta.config)
            if public_endpoint_url
            else self.client
        )
        # One quick attempt: a readiness probe must answer within seconds, and the main client's
        # retries and 30 s reads would outlast it.
        self.probe = client(
            endpoint_url,
            Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=2,
                read_timeout=2,
            ),
        )

    def _fail(self, exc: Exception, action: str) -> StorageUnavailable:
        logger.warning("S3 could not %s: %s", action, exc)
        return StorageUnavailable(
            f"The media store could not {action}; nothing was changed.",
            code="storage_unavailable",
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "store the file") from exc

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "read the file") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "delete the file") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail(exc, "look the file up") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, "look the file up") from exc
        return True

    def stream(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "read the file") from exc
        yield from body.iter_chunks(CHUNK)

    def download_url(self, key: str, *, file_name: str, content_type: str) -> str | None:
        return self.presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f'attachment; filename="{file_name}"',
            },
            ExpiresIn=self.presign_seconds,
        )

    def ready(self) -> None:
        try:
            self.probe.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "reach the bucket") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (first start against a fresh store)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(exc, "reach the bucket") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (BotoCoreError, ClientError) as create_exc:
                raise self._fail(create_exc, "create the bucket") from create_exc
        except BotoCoreError as exc:
            raise self._fail(exc, "reach the bucket") from exc


def build_storage(common: CommonSettings, settings: MediaSettings) -> Storage:
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ValueError("HALLPASS_MEDIA_STORAGE=s3 needs HALLPASS_MEDIA_S3_BUCKET")
        secret = settings.s3_secret_access_key
        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            presign_seconds=settings.s3_presign_seconds,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    return LocalStorage(common.data_dir / "media")
