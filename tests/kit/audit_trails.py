"""Each service's audit trail as a tamperer meets it: the service's app and database (built by its
migrations, on SQLite and, when configured, PostgreSQL), its chain, and raw SQL to get past the
database's guards."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, MetaData, select, text

from hallpass_comms import migrations as comms_migrations
from hallpass_comms.app import create_app as create_comms_app
from hallpass_comms.common import audit as comms_audit
from hallpass_comms.delivery import EmlFolderTransport
from hallpass_comms.models import Base as CommsBase
from hallpass_comms.settings import CommsSettings
from hallpass_consent import migrations as consent_migrations
from hallpass_consent.app import create_app as create_consent_app
from hallpass_consent.common import audit as consent_audit
from hallpass_consent.models import Base as ConsentBase
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.audit import (
    AuditChain,
    ChainVerdict,
    append_only_triggers,
    contiguous_triggers,
    entry_hash,
)
from hallpass_kit.auth import TokenVerifier
from hallpass_kit.checkpoints import AuditNotary, Checkpoint, FileCheckpointStore
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media import migrations as media_migrations
from hallpass_media.app import create_app as create_media_app
from hallpass_media.common import audit as media_audit
from hallpass_media.models import Base as MediaBase
from hallpass_media.settings import MediaSettings
from tests import databases

SCHOOL = "oakfield"
CHECK_CONSTRAINT = "ck_audit_entry_seq_from_one"


@dataclass(frozen=True)
class ServiceKind:
    name: str
    upgrade: Callable[[Database], None]
    metadata: MetaData
    chain: AuditChain


SERVICES = {
    "consent": ServiceKind(
        "consent", consent_migrations.upgrade, ConsentBase.metadata, consent_audit
    ),
    "media": ServiceKind("media", media_migrations.upgrade, MediaBase.metadata, media_audit),
    "comms": ServiceKind("comms", comms_migrations.upgrade, CommsBase.metadata, comms_audit),
}


def sqlite_templates(folder: Path) -> dict[str, Path]:
    return {
        name: databases.sqlite_template(folder, f"{name}.db", kind.upgrade)
        for name, kind in SERVICES.items()
    }


@contextmanager
def postgres_databases() -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(databases.postgres_database(f"audit_{name}", kind.upgrade))
            for name, kind in SERVICES.items()
        }


def build_app(
    kind: ServiceKind, database: Database, common: CommonSettings, verifier: TokenVerifier
) -> FastAPI:
    # The audit endpoints call no other service; the consent client is there because the
    # services are built with one.
    nobody = ServiceClient(name="consent", app=FastAPI(), base_url="http://consent.internal")
    if kind.name == "consent":
        return create_consent_app(
            common=common,
            settings=ConsentSettings(),
            verifier=verifier,
            database=database,
            run_background=False,
            migrate=False,
        )
    if kind.name == "media":
        return create_media_app(
            common=common,
            settings=MediaSettings(ocr=False),
            verifier=verifier,
            consent=nobody,
            database=database,
            run_background=False,
            migrate=False,
        )
    return create_comms_app(
        common=common,
        settings=CommsSettings(reminder_within_days=0),
        verifier=verifier,
        consent=nobody,
        database=database,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(common.data_dir / "outbox"),
    )


@dataclass
class Trail:
    """One service's audit trail, with what a tamperer with database access can do to it."""

    kind: ServiceKind
    database: Database
    client: TestClient
    common: CommonSettings

    @property
    def chain(self) -> AuditChain:
        return self.kind.chain

    @property
    def notary(self) -> AuditNotary:
        with self.database.session() as session:
            notary = self.chain.notary_for(session)
        assert notary is not None
        return notary

    @property
    def checkpoint_folder(self) -> Path:
        store = self.notary.store
        assert isinstance(store, FileCheckpointStore)
        return store.folder

    def fill(self, count: int, school: str = SCHOOL) -> None:
        """``count`` entries written the way the service writes them."""
        with self.database.session() as session:
            for n in range(count):
                self.chain.append(
                    session,
                    actor=f"office@{school}",
                    school=school,
                    action="pupil.created",
                    target=f"pupil-{n}",
                    details={"mis_id": f"T{n:04d}", "name": "Siobhán"},
                )

    def checkpoint(self) -> Checkpoint:
        made = self.chain.checkpoint(self.database, force=True)
        assert made is not None
        return made

    def verify(self) -> ChainVerdict:
        with self.database.session() as session:
            return self.chain.verify(session, school=SCHOOL, batch_size=37)

    def head(self) -> int:
        with self.database.engine.connect() as connection:
            return int(connection.execute(text("SELECT max(seq) FROM audit_entry")).scalar_one())

    def row(self, seq: int) -> dict[str, Any]:
        t = self.chain.table
        with self.database.engine.connect() as connection:
            found = connection.execute(select(t).where(t.c.seq == seq)).one()
        return dict(found._mapping)

    @contextmanager
    def tampering(self) -> Iterator[Connection]:
        """A connection past the triggers and the CHECK, as the database's owner would have.

        The guards are put back afterwards (the PostgreSQL CHECK as NOT VALID, since a stray row
        may now break it) so that the next test's emptied database is guarded again.
        """
        with self.database.engine.begin() as connection:
            if self.database.dialect == "postgresql":
                connection.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER ALL"))
                connection.execute(
                    text(f"ALTER TABLE audit_entry DROP CONSTRAINT {CHECK_CONSTRAINT}")
                )
                yield connection
                connection.execute(
                    text(
                        f"ALTER TABLE audit_entry ADD CONSTRAINT {CHECK_CONSTRAINT} "
                        "CHECK (seq >= 1) NOT VALID"
                    )
                )
                connection.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER ALL"))
            else:
                for trigger in ("no_update", "no_delete", "contiguous"):
                    connection.execute(text(f"DROP TRIGGER audit_entry_{trigger}"))
                connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
                yield connection
                connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
                for statement in [*append_only_triggers("sqlite"), *contiguous_triggers("sqlite")]:
                    connection.exec_driver_sql(statement)

    def delete(self, where: str, **params: Any) -> None:
        with self.tampering() as connection:
            connection.execute(text(f"DELETE FROM audit_entry WHERE {where}"), params)

    def rehash(self, connection: Connection, from_seq: int, *, keep_seals: bool) -> None:
        """Recompute every hash from ``from_seq`` on, links included, as a forger would."""
        t = self.chain.table
        prev_hash = connection.execute(
            select(t.c.prev_hash).where(t.c.seq == from_seq)
        ).scalar_one()
        rows = connection.execute(select(t).where(t.c.seq >= from_seq).order_by(t.c.seq)).all()
        for row in rows:
            digest = entry_hash(
                seq=row.seq,
                recorded_at=row.recorded_at,
                actor=row.actor,
                school=row.school,
                action=row.action,
                target=row.target,
                outcome=row.outcome,
                details=row.details,
                prev_hash=prev_hash,
            )
            connection.execute(
                text(
                    "UPDATE audit_entry SET prev_hash = :prev, hash = :hash, seal = :seal "
                    "WHERE seq = :seq"
                ),
                {
                    "prev": prev_hash,
                    "hash": digest,
                    "seal": row.seal if keep_seals else None,
                    "seq": row.seq,
                },
            )
            prev_hash = digest

    def insert(self, connection: Connection, **values: Any) -> None:
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        connection.execute(text(f"INSERT INTO audit_entry ({names}) VALUES ({marks})"), values)

    def checkpoint_file(self, number: int) -> Path:
        return self.checkpoint_folder / f"{number:012d}.jws"

    def replace_checkpoint(self, number: int, token: str) -> None:
        path = self.checkpoint_file(number)
        path.chmod(0o644)
        path.write_text(token + "\n")


def payload_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded
