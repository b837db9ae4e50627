"""Rendering one envelope (no database, no network): headers, bodies, refusals, .eml files."""

from __future__ import annotations

import datetime as dt
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path

import pytest

from hallpass_comms.delivery import (
    EmlFolderTransport,
    RenderError,
    new_message_id_header,
    render,
    secure_view_url,
)
from hallpass_comms.models import Sensitivity
from tests.comms.builders import NOW, a_delivery, a_message

BASE_URL = "https://hallpass.oakfield.sch.uk"


def reparse(email: EmailMessage) -> EmailMessage:
    parsed = BytesParser(policy=default_policy).parsebytes(email.as_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


def addresses(email: EmailMessage, header: str) -> list[str]:
    return [a for _n, a in getaddresses([str(v) for v in email.get_all(header, [])])]


def test_e2_rendered_headers_carry_the_rows_from_to_cc_and_message_id() -> None:
    message = a_message()
    delivery = a_delivery(message, to_addresses=["a@parents.example.org", "Zoë Ng <z@p.org>"])
    email = reparse(render(message, delivery, public_base_url=BASE_URL))
    assert addresses(email, "From") == ["teacher@oakfield.sch.uk"]
    assert addresses(email, "To") == ["a@parents.example.org", "z@p.org"]
    assert addresses(email, "Cc") == ["head@oakfield.sch.uk"]
    assert email["Message-ID"] == delivery.message_id_header
    assert email["X-Hallpass-Delivery"] == str(delivery.id)
    assert email["Subject"] == "Year 4 trip to the museum"
    assert "Bcc" not in email


def test_message_id_is_the_delivery_id_at_the_school_domain() -> None:
    delivery_id = uuid.uuid4()
    assert (
        new_message_id_header(delivery_id, "Oakfield.SCH.uk") == f"<{delivery_id}@oakfield.sch.uk>"
    )


def test_message_id_domain_with_a_line_break_is_refused() -> None:
    with pytest.raises(RenderError):
        new_message_id_header(uuid.uuid4(), "oakfield.sch.uk\r\nBcc: x@evil.example")


def test_date_is_the_later_of_written_approved_and_released_so_resends_match() -> None:
    released = NOW + dt.timedelta(hours=10)
    message = a_message(scheduled_for=released, approved_at=NOW + dt.timedelta(hours=1))
    delivery = a_delivery(message)
    first = render(message, delivery, public_base_url=BASE_URL)
    second = render(message, delivery, public_base_url=BASE_URL)
    assert first["Date"].datetime == released
    assert first.as_bytes() == second.as_bytes()


def test_text_and_html_travel_as_alternatives() -> None:
    message = a_message(body_html="<p>Dear families, the coach leaves at <b>9:15</b>.</p>")
    email = reparse(render(message, a_delivery(message), public_base_url=BASE_URL))
    assert email.get_content_type() == "multipart/alternative"
    plain = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert plain is not None
    assert "coach leaves at 9:15" in plain.get_content()
    assert html is not None
    assert "<b>9:15</b>" in html.get_content()


def test_e5_sensitive_message_carries_a_link_and_no_text_or_subject() -> None:
    message = a_message(
        subject="Concern about Sam's wellbeing",
        body_text="We are worried about Sam after Tuesday's incident.",
        body_html="<p>We are worried about Sam.</p>",
        sensitivity=Sensitivity.sensitive,
    )
    email = render(message, a_delivery(message), public_base_url=BASE_URL + "/")
    raw = email.as_bytes().decode()
    assert "Sam" not in raw
    assert "worried" not in raw
    assert email.get_content_type() == "text/plain"
    link = f"{BASE_URL}/comms/v1/messages/{message.id}/secure-view"
    assert secure_view_url(BASE_URL + "/", message.id) == link
    assert link in email.get_content()


@pytest.mark.parametrize(
    "value",
    [
        "a@parents.example.org, b@parents.example.org",
        "a@parents.example.org\r\nBcc: spy@evil.example",
        "a@parents.example.org\nX-Evil: 1",
        "<a@parents.example.org> b@parents.example.org",
        "not an address",
        "a@localhost",
        "a@-bad-.example.org",
        "",
    ],
)
def test_e9_a_to_value_that_is_not_exactly_one_address_is_refused(value: str) -> None:
    message = a_message()
    with pytest.raises(RenderError):
        render(message, a_delivery(message, to_addresses=[value]), public_base_url=BASE_URL)


def test_an_accented_domain_travels_in_its_idna_form() -> None:
    message = a_message()
    delivery = a_delivery(message, to_addresses=["parent@école.example.fr"])
    email = reparse(render(message, delivery, public_base_url=BASE_URL))
    assert addresses(email, "To") == ["parent@xn--cole-9oa.example.fr"]


def test_e1_a_cc_value_that_smuggles_a_header_is_refused() -> None:
    message = a_message()
    delivery = a_delivery(message, cc_addresses=["head@oakfield.sch.uk\r\nBcc: x@evil.example"])
    with pytest.raises(RenderError):
        render(message, delivery, public_base_url=BASE_URL)


def test_e2_a_sender_with_a_line_break_is_refused() -> None:
    message = a_message(sender_address="teacher@oakfield.sch.uk\r\nBcc: x@evil.example")
    with pytest.raises(RenderError):
        render(message, a_delivery(message), public_base_url=BASE_URL)


def test_a_delivery_without_to_is_refused() -> None:
    message = a_message()
    with pytest.raises(RenderError):
        render(message, a_delivery(message, to_addresses=[]), public_base_url=BASE_URL)


def test_subject_line_breaks_are_folded_into_one_line_not_a_new_header() -> None:
    message = a_message(subject="Trip\r\nBcc: spy@evil.example\n\nbody")
    email = reparse(render(message, a_delivery(message), public_base_url=BASE_URL))
    assert email["Subject"] == "Trip Bcc: spy@evil.example body"
    assert "Bcc" not in email


def test_eml_file_parses_back_to_the_same_message(tmp_path: Path) -> None:
    message = a_message(body_html="<p>Coach at 9:15</p>")
    delivery = a_delivery(message)
    email = render(message, delivery, public_base_url=BASE_URL)
    EmlFolderTransport(tmp_path / "outbox").send(email)

    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"20261123T093000Z-{delivery.id}.eml"]
    parsed = BytesParser(policy=default_policy).parsebytes(files[0].read_bytes())
    assert parsed["Message-ID"] == delivery.message_id_header
    assert addresses(parsed, "To") == ["carer.one@parents.example.org"]
    assert addresses(parsed, "Cc") == ["head@oakfield.sch.uk"]
    assert "coach leaves at 9:15" in files[0].read_text()  # readable as it is, not base64


def test_eml_resend_replaces_the_file_instead_of_adding_one(tmp_path: Path) -> None:
    outbox = EmlFolderTransport(tmp_path / "outbox")
    message = a_message()
    delivery = a_delivery(message)
    outbox.send(render(message, delivery, public_base_url=BASE_URL))
    outbox.send(render(message, delivery, public_base_url=BASE_URL))
    other = a_delivery(message)
    outbox.send(render(message, other, public_base_url=BASE_URL))
    names = sorted(f.name for f in (tmp_path / "outbox").iterdir())
    assert len(names) == 2
    assert all(not name.startswith(".") for name in names)  # no temporary file left behind
