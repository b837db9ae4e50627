"""Signed checkpoints of the audit chain, kept outside the service's database.

The hash chain alone proves nothing to someone who can rewrite the whole table: they can cut the
tail, or recompute every hash after an edit. A checkpoint is the chain's head (seq and hash) signed
with the service's audit key and written where the database's users cannot reach: a folder of
write-once files, or an S3 bucket with object lock. Each entry the service appends also carries a
seal (an HMAC of its hash under a key derived from the same private key), so an entry appended
straight into the database, well hashed or not, is told apart from the service's own.

Checkpoints are compact JWS (RFC 7515) signed with Ed25519: anyone holding the public key (served
as a JWK) can check them with ordinary JOSE tooling.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from hallpass_kit.settings import CommonSettings, Environment, InsecureSettingsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

# RFC 9864's fully specified name for Ed25519 signatures.
ALGORITHM = "Ed25519"
_SEAL_INFO = b"hallpass audit entry seal v1"


class CheckpointInvalid(Exception):
    """A stored checkpoint that is not what the service signed."""


class AuditSigningKey:
    """The service's audit key: signs checkpoints, and (through a derived secret) seals entries."""

    def __init__(self, key: OKPKey) -> None:
        if not key.is_private:
            raise ValueError("the audit signing key must hold its private part")
        self.key = key
        private = key.private_key
        assert private is not None
        raw = private.private_bytes_raw()
        self._seal_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO
        ).derive(raw)

    @classmethod
    def generate(cls) -> AuditSigningKey:
        return cls(
            OKPKey.generate_key(
                "Ed25519", parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": ALGORITHM}
            )
        )

    @classmethod
    def load(cls, path: Path) -> AuditSigningKey:
        key = OKPKey.import_key(json.loads(path.read_text()))
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> AuditSigningKey:
        """Embedded mode: the key lives under the data dir, made on first start."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        made = cls.generate()
        try:
            # Owner-only, written once; a racing starter loses and reads the winner's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(path)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(made.key.as_dict(private=True)))
        return made

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def public_key(self) -> OKPKey:
        return OKPKey.import_key(self.public_jwk())

    def seal(self, entry_hash: str) -> str:
        return hmac.new(self._seal_key, entry_hash.encode(), hashlib.sha256).hexdigest()

    def seal_fits(self, entry_hash: str, seal: str | None) -> bool:
        return seal is not None and hmac.compare_digest(self.seal(entry_hash), seal)

    def sign(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return jws.serialize_compact(
            {"alg": ALGORITHM, "kid": self.kid, "typ": "hallpass-audit-checkpoint"},
            body,
            self.key,
            algorithms=[ALGORITHM],
        )


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment, as the service signed it."""

    service: str
    number: int
    seq: int
    hash: str
    made_at: dt.datetime
    # Entries this checkpoint covers (since the one before) that carry no service seal: written by
    # a tool outside the service (``hallpass import``), or straight into the database.
    unsealed: int
    token: str

    def payload(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "number": self.number,
            "seq": self.seq,
            "hash": self.hash,
            "made_at": self.made_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "unsealed": self.unsealed,
        }


def read_checkpoint(token: str, key: OKPKey, *, service: str, number: int) -> Checkpoint:
    """The checkpoint in ``token`` if ``key`` signed it for ``service`` under ``number``."""
    try:
        signed = jws.deserialize_compact(token.strip(), key, algorithms=[ALGORITHM])
        payload = json.loads(signed.payload)
        checkpoint = Checkpoint(
            service=str(payload["service"]),
            number=int(payload["number"]),
            seq=int(payload["seq"]),
            hash=str(payload["hash"]),
            made_at=dt.datetime.fromisoformat(payload["made_at"]),
            unsealed=int(payload["unsealed"]),
            token=token.strip(),
        )
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointInvalid(f"checkpoint {number} signature invalid") from exc
    if checkpoint.service != service or checkpoint.number != number:
        # A genuine checkpoint of another service, or another number, copied into this place.
        raise CheckpointInvalid(f"checkpoint {number} signature invalid: it was signed as another")
    return checkpoint


class CheckpointStore(Protocol):
    """Where checkpoints are kept: write once, never overwrite, never delete."""

    def put(self, number: int, token: str) -> None: ...

    def get(self, number: int) -> str | None: ...

    def numbers(self) -> list[int]: ...


_FILE_NAME = re.compile(r"^(\d{12})\.jws$")


class FileCheckpointStore:
    """One read-only file per checkpoint, created exclusively: an existing one is never replaced."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:012d}.jws"

    def put(self, number: int, token: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def get(self, number: int) -> str | None:
        try:
            return self._path(number).read_text()
        except FileNotFoundError:
            return None

    def numbers(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        found = (_FILE_NAME.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)


class S3CheckpointStore:
    """One object per checkpoint; with object lock the bucket itself refuses to lose one.

    Objects are written with ``If-None-Match: *`` (never over an existing one) and, when
    ``retention_days`` is set, a compliance-mode retention that not even the bucket's owner can
    shorten. The bucket must be created with object lock enabled for the retention to apply.
    """

    def __init__(
        self, client: S3Client, bucket: str, prefix: str, *, retention_days: int = 0
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.retention_days = retention_days

    def _key(self, number: int) -> str:
        return f"{self.prefix}{number:012d}.jws"

    def put(self, number: int, token: str) -> None:
        extra: dict[str, Any] = {}
        if self.retention_days > 0:
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.UTC) + dt.timedelta(
                days=self.retention_days
            )
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(number),
            Body=(token + "\n").encode(),
            ContentType="application/jose",
            IfNoneMatch="*",
            **extra,
        )

    def get(self, number: int) -> str | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(number))
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body.decode()

    def numbers(self) -> list[int]:
        found: list[int] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                match = _FILE_NAME.match(item["Key"][len(self.prefix) :])
                if match:
                    found.append(int(match.group(1)))
        return sorted(found)


@dataclass
class AuditNotary:
    """A service's audit key and checkpoint store, and how often it checkpoints."""

    service: str
    key: AuditSigningKey
    store: CheckpointStore
    every_entries: int = 1000
    every: dt.timedelta = dt.timedelta(minutes=15)

    def read(self, number: int) -> Checkpoint | None:
        """Checkpoint ``number`` from the store, its signature checked; None when it is gone."""
        token = self.store.get(number)
        if token is None:
            return None
        return read_checkpoint(token, self.key.public_key(), service=self.service, number=number)


def notary_from_settings(common: CommonSettings, service: str) -> AuditNotary:
    """The notary the settings describe; production refuses to run without a configured key."""
    if common.audit_signing_key_path is not None:
        key = AuditSigningKey.load(common.audit_signing_key_path)
    elif common.env is Environment.production:
        raise InsecureSettingsError(
            "production mode needs HALLPASS_AUDIT_SIGNING_KEY_PATH: a key made and kept outside "
            "the data dir, so that whoever can read the database cannot also sign checkpoints"
        )
    else:
        key = AuditSigningKey.load_or_create(common.data_dir / "audit-signing-key.json")
    store: CheckpointStore
    if common.audit_checkpoint_s3_bucket:
        store = S3CheckpointStore(
            _s3_client(common),
            common.audit_checkpoint_s3_bucket,
            f"{common.audit_checkpoint_s3_prefix}{service}/",
            retention_days=common.audit_checkpoint_s3_retention_days,
        )
    else:
        folder = common.audit_checkpoint_dir or common.data_dir / "audit-checkpoints"
        store = FileCheckpointStore(folder / service)
    return AuditNotary(
        service=service,
        key=key,
        store=store,
        every_entries=common.audit_checkpoint_every_entries,
        every=dt.timedelta(minutes=common.audit_checkpoint_every_minutes),
    )


def _s3_client(common: CommonSettings) -> S3Client:
    import boto3  # only deployments that keep checkpoints in S3 pay for importing it

    client: S3Client = boto3.client(
        "s3",
        endpoint_url=common.audit_checkpoint_s3_endpoint_url,
        region_name=common.audit_checkpoint_s3_region,
    )
    return client
