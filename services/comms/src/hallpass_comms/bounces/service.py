"""What a bounce report changes: the envelope's status, its bounce lines and the audit chain.

A report is matched to its envelope by the returned message's Message-ID (each envelope has its
own, delivery/rendering.py) or, failing that, our X-Hallpass-Delivery header. Each recipient
line is kept once (a report read twice changes nothing). A failed line (5.x.x) is a bounce: when
every address the envelope was sent To has bounced, the envelope becomes ``bounced``; copies to
leadership that bounce are kept as lines but do not make the family's envelope fail. A delayed
line is news, not a failure: kept and shown, the status stays.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.bounces.parsing import DeliveryReport
from hallpass_comms.models import Delivery, DeliveryStatus, MailBounce, kit_tables
from hallpass_kit.audit import AuditChain

logger = logging.getLogger("hallpass.comms.bounces")

ACTOR = "service:comms-bounces"
_audit = AuditChain(kit_tables.audit_entry)


@dataclass(frozen=True)
class Recorded:
    matched: bool
    bounced: int = 0  # recipient lines recorded as failed
    delayed: int = 0  # recipient lines recorded as delayed


def find_delivery(session: Session, report: DeliveryReport) -> Delivery | None:
    if report.original_message_id is not None:
        found = session.scalars(
            select(Delivery).where(Delivery.message_id_header == report.original_message_id)
        ).one_or_none()
        if found is not None:
            return found
    if report.delivery_key is not None:
        try:
            key = uuid.UUID(report.delivery_key)
        except ValueError:
            return None
        return session.get(Delivery, key)
    return None


def record_report(session: Session, report: DeliveryReport, now: dt.datetime) -> Recorded:
    """Record the report's lines against its envelope (once each); audited."""
    delivery = find_delivery(session, report)
    if delivery is None:
        return Recorded(matched=False)
    known = set(
        session.scalars(
            select(MailBounce.recipient).where(MailBounce.report_id == report.report_id)
        )
    )
    bounced = delayed = 0
    for line in report.recipients:
        if line.recipient in known or line.action not in {"failed", "delayed"}:
            continue
        known.add(line.recipient)
        session.add(
            MailBounce(
                id=uuid.uuid4(),
                delivery_id=delivery.id,
                school_id=delivery.school_id,
                report_id=report.report_id,
                recipient=line.recipient,
                action=line.action,
                status=line.status,
                diagnostic=line.diagnostic,
                received_at=now,
            )
        )
        if line.failed:
            bounced += 1
        else:
            delayed += 1
        _audit.append(
            session,
            actor=ACTOR,
            school=delivery.school_id,
            action="mail.bounced" if line.failed else "mail.delayed",
            outcome="bounced" if line.failed else "delayed",
            target=f"delivery:{delivery.id}",
            details={
                "message": str(delivery.message_id),
                "message_id_header": delivery.message_id_header,
                "recipient": line.recipient,
                "status": line.status,
                "diagnostic": line.diagnostic,
                "report": report.report_id,
            },
        )
    session.flush()
    if bounced:
        _settle(session, delivery)
    return Recorded(matched=True, bounced=bounced, delayed=delayed)


def _settle(session: Session, delivery: Delivery) -> None:
    """The envelope bounced once every address it was sent To has a failed line."""
    failed = {
        bounce.recipient: bounce
        for bounce in session.scalars(
            select(MailBounce).where(
                MailBounce.delivery_id == delivery.id, MailBounce.action == "failed"
            )
        )
        if bounce.status.startswith("5")
    }
    to = [str(address).lower() for address in delivery.to_addresses]
    words = "; ".join(
        f"{b.recipient}: {b.status} {b.diagnostic or ''}".strip() for b in failed.values()
    )
    delivery.last_error = f"bounced: {words}"[:2000]
    sent = delivery.status is DeliveryStatus.sent
    if sent and to and all(address in failed for address in to):
        delivery.status = DeliveryStatus.bounced
    session.flush()
