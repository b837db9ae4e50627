"""Mail delivery: render each envelope, hand it to a transport, record what happened."""

from hallpass_comms.delivery.headers import one_line, wire_bytes
from hallpass_comms.delivery.rendering import (
    RenderError,
    new_message_id_header,
    render,
    secure_view_url,
)
from hallpass_comms.delivery.transports import (
    EmlFolderTransport,
    MailTransport,
    PermanentFailure,
    RecipientsRefused,
    ServerUnavailable,
    SmtpTransport,
    TransientFailure,
    transport_from_settings,
)
from hallpass_comms.delivery.worker import ACTOR, BatchReport, DeliveryWorker

__all__ = [
    "ACTOR",
    "BatchReport",
    "DeliveryWorker",
    "EmlFolderTransport",
    "MailTransport",
    "PermanentFailure",
    "RecipientsRefused",
    "RenderError",
    "ServerUnavailable",
    "SmtpTransport",
    "TransientFailure",
    "new_message_id_header",
    "one_line",
    "render",
    "secure_view_url",
    "transport_from_settings",
    "wire_bytes",
]
