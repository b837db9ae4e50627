"""Bounces: delivery status notifications (RFC 3464) read from a mailbox over IMAP, matched to
envelopes by Message-ID, shown in the family history and to the sender."""

from hallpass_comms.bounces.mailbox import BounceMailbox, BounceMailboxError, PassReport
from hallpass_comms.bounces.parsing import DeliveryReport, RecipientReport, Unreadable, parse_report
from hallpass_comms.bounces.service import record_report

__all__ = [
    "BounceMailbox",
    "BounceMailboxError",
    "DeliveryReport",
    "PassReport",
    "RecipientReport",
    "Unreadable",
    "parse_report",
    "record_report",
]
