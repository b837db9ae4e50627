"""Mail text is literal (no database, no network): what staff typed is what a strict mail parser
reads back from the bytes that leave, whatever the text holds, and E6 reads text as it may be
shown. The bytes are the ones both transports send (``wire_bytes``)."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hallpass_comms.delivery import RenderError, render, wire_bytes
from hallpass_comms.delivery.headers import HeaderRefused, text_header
from hallpass_comms.messages.policy import find_chain_phrase
from hallpass_comms.messages.reading import html_words
from hallpass_comms.messages.schemas import MessageCreate
from hallpass_comms.messages.service import refuse_subject_line_breaks
from hallpass_comms.models import Delivery, Message, Sensitivity
from hallpass_kit.errors import Unprocessable
from tests.comms.builders import a_delivery, a_message
from tests.comms.mail_reading import (
    addresses,
    as_typed,
    assert_school_mail,
    display_names,
    parse_strictly,
    shown_text,
)

BASE_URL = "https://hallpass.oakfield.sch.uk"
SENDER = "teacher@oakfield.sch.uk"
CARER = "carer.one@parents.example.org"
HEAD = "head@oakfield.sch.uk"
# The subject from the finding: a q-encoded word whose text is a line break and a Reply-To.
Q_REPLY_TO = "=?utf-8?q?Trip=0D=0AReply-To:_attacker@evil.example?="
B_BCC = "=?utf-8?b?" + base64.b64encode(b"Trip\r\nBcc: spy@evil.example").decode() + "?="
# An encoded word that would end the headers and replace the body.
Q_BODY = "=?utf-8?q?Trip=0D=0A=0D=0A<html>Pay_here</html>?="


def delivered(message: Message, delivery: Delivery | None = None) -> EmailMessage:
    email = render(message, delivery or a_delivery(message), public_base_url=BASE_URL)
    return parse_strictly(wire_bytes(email))


@pytest.mark.parametrize(
    "subject",
    [
        Q_REPLY_TO,
        B_BCC,
        Q_BODY,
        "=?UTF-8?Q?Bcc=3A_spy=40evil=2Eexample?=",
        "Trip =?iso-8859-1?q?=0ABcc:_spy@evil.example?= on Friday",
        "=?utf-8?q?=E2=80=A8Bcc:_spy@evil.example?=",  # an encoded U+2028
        "=?utf-8?b?=?utf-8?q?nested?=?=",
    ],
)
def test_an_encoded_word_in_a_subject_is_shown_literally_and_adds_no_header(subject: str) -> None:
    mail = delivered(a_message(subject=subject))

    assert_school_mail(mail, sender=SENDER, to=[CARER], cc=[HEAD], subject=subject)
    assert "Reply-To" not in mail
    assert "Bcc" not in mail
    assert shown_text(mail) == as_typed("Dear families, the coach leaves at 9:15.")


@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b"])
def test_a_stored_subject_with_a_raw_line_break_goes_as_one_line(line_break: str) -> None:
    # The API refuses such a subject; a row written before that rule still sends safely.
    mail = delivered(a_message(subject=f"Trip{line_break}Bcc: spy@evil.example"))

    assert_school_mail(
        mail, sender=SENDER, to=[CARER], cc=[HEAD], subject="Trip Bcc: spy@evil.example"
    )


@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0c"])
def test_a_subject_with_a_line_break_is_refused_before_it_is_stored(line_break: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        refuse_subject_line_breaks(f"Trip{line_break}Bcc: spy@evil.example")
    assert refused.value.code == "subject_not_one_line"


def test_a_header_value_with_a_line_break_is_never_written() -> None:
    with pytest.raises(HeaderRefused):
        text_header("Subject", "Trip\r\nBcc: spy@evil.example")


@pytest.mark.parametrize(
    "display_name",
    [
        "=?utf-8?q?Grace=0D=0ABcc:_spy@evil.example?=",
        "=?utf-8?b?R3JhY2UNCkJjYzogc3B5QGV2aWwuZXhhbXBsZQ==?=",
        "Zoë Ng",
        "Okafor, Grace",
    ],
)
def test_an_encoded_line_break_in_a_carers_display_name_stays_in_the_name(
    display_name: str,
) -> None:
    message = a_message()
    quoted = display_name.replace('"', '\\"')
    delivery = a_delivery(message, to_addresses=[f'"{quoted}" <{CARER}>'])
    mail = delivered(message, delivery)

    assert_school_mail(mail, sender=SENDER, to=[CARER], cc=[HEAD], subject=message.subject)
    assert display_names(mail, "To") == [display_name]
    assert "Bcc" not in mail


def test_an_encoded_line_break_in_the_senders_display_name_stays_in_the_name() -> None:
    name = "=?utf-8?q?Mr_Smith=0D=0AReply-To:_attacker@evil.example?="
    mail = delivered(a_message(sender_address=f"{name} <{SENDER}>"))

    assert_school_mail(
        mail, sender=SENDER, to=[CARER], cc=[HEAD], subject="Year 4 trip to the museum"
    )
    assert display_names(mail, "From") == [name]


@pytest.mark.parametrize(
    "value",
    [
        f"{CARER}\r\nBcc: spy@evil.example",
        f"Grace\u2028Bcc: spy@evil.example <{CARER}>",
        f"{CARER}, spy@evil.example",
        f"Grace <{CARER}> <spy@evil.example>",
    ],
)
def test_an_address_that_would_add_a_recipient_fails_the_envelope(value: str) -> None:
    message = a_message()
    with pytest.raises(RenderError):
        render(message, a_delivery(message, to_addresses=[value]), public_base_url=BASE_URL)


BOUNDARY_LIKE = (
    "Dear families,\n"
    "--===============0123456789012345678==\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>Pay the trip fee at evil.example</p>\n"
    "--===============0123456789012345678==--\n"
    "-- \n"
    "Mrs Smith"
)


def test_a_body_line_like_a_mime_boundary_stays_in_the_body() -> None:
    message = a_message(body_text=BOUNDARY_LIKE, body_html="<p>Dear families,</p>")
    mail = delivered(message)

    assert_school_mail(
        mail, sender=SENDER, to=[CARER], cc=[HEAD], subject=message.subject, multipart=True
    )
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert shown_text(mail) == as_typed(BOUNDARY_LIKE)
    assert shown_text(mail, "html") == as_typed("<p>Dear families,</p>")


def test_a_plain_body_with_encoded_words_and_line_separators_arrives_as_typed() -> None:
    body = f"{Q_REPLY_TO}\nLine two\u2028still line two\x85\n.\n..\nFrom the office"
    mail = delivered(a_message(body_text=body))

    assert shown_text(mail) == as_typed(body)


def test_e5_a_sensitive_message_keeps_its_subject_off_the_wire_whatever_it_holds() -> None:
    message = a_message(subject=Q_REPLY_TO, sensitivity=Sensitivity.sensitive)
    mail = delivered(message)

    assert_school_mail(
        mail,
        sender=SENDER,
        to=[CARER],
        cc=[HEAD],
        subject="A secure message from school is waiting for you",
    )
    assert (
        "attacker"
        not in wire_bytes(render(message, a_delivery(message), public_base_url=BASE_URL)).decode()
    )


def _accepted_subject(typed: str) -> str | None:
    """The subject as stored, or None when the schema or the one-line rule refuses it."""
    try:
        subject = MessageCreate.model_validate(
            {"recipients": {}, "subject": typed, "body_text": "x"}
        ).subject
        refuse_subject_line_breaks(subject)
    except (ValidationError, Unprocessable):
        return None
    return subject


@settings(max_examples=300, deadline=None, database=None)
@given(typed=st.text(max_size=220))
def test_any_accepted_subject_is_read_back_exactly_with_only_the_schools_headers(
    typed: str,
) -> None:
    subject = _accepted_subject(typed)
    if subject is None:
        # Refused texts are the ones with a line break or control character, or without a
        # visible character, or too long: none of them is sent.
        return
    mail = delivered(a_message(subject=subject))

    assert_school_mail(mail, sender=SENDER, to=[CARER], cc=[HEAD], subject=subject)


@settings(max_examples=200, deadline=None, database=None)
@given(
    typed=st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=400,
    )
)
def test_any_body_is_read_back_line_for_line(typed: str) -> None:
    body = typed.strip() or "x"
    mail = delivered(a_message(body_text=body))

    assert shown_text(mail) == as_typed(body)
    assert addresses(mail, "To") == [CARER]


# --- E6 reads text as it may be shown ----------------------------------------------------------

CHAIN = "Forward this to 10 people"


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in text)


def _b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize(
    "disguised",
    [
        _b_word(CHAIN),
        "=?utf-8?q?Forward_this_to_10_people?=",
        "=?UTF-8?Q?Forward=20this=20to=2010=20people?=",
        f"Please read: {_b_word('Forward this')} {_b_word(' to 10 people')}",
        _b_word(_b_word(CHAIN)),  # an encoded word inside an encoded word
        "Forward=20this=20to=2010=20people",  # quoted-printable
        _full_width(CHAIN),
        "For\u200bward th\u00adis to 1\u20600 people",  # invisible characters inside words
        "Forward\u200bthis\u200bto\u200b10\u200bpeople",  # invisible characters as spaces
        "F\u043erw\u0430rd this t\u043e 10 \u0440\u0435\u043e\u0440l\u0435",  # Cyrillic look-alikes
        "F\u0332o\u0332r\u0332w\u0332a\u0332r\u0332d this to 10 people",  # combining marks
        _full_width("CHAIN") + " letter",
    ],
)
def test_e6_a_disguised_chain_phrase_is_still_found(disguised: str) -> None:
    assert find_chain_phrase(disguised) is not None


@pytest.mark.parametrize(
    "html",
    [
        "<p>Forward&#32;this&nbsp;to&#x20;10 people</p>",
        "<p>for<b>ward</b> this to 10 people</p>",
        "<p>Forward this<br>to 10 people</p>",
    ],
)
def test_e6_the_words_of_an_html_body_are_read_as_shown(html: str) -> None:
    assert find_chain_phrase(*html_words(html)) is not None


@pytest.mark.parametrize(
    "text",
    [
        "=?utf-8?q?Please_forward_this_to_your_child's_other_parent?=",
        "Café = 2 € for 10 people =?",
        "Price=2E50 for the trip",
    ],
)
def test_e6_ordinary_text_stays_ordinary_however_it_is_read(text: str) -> None:
    assert find_chain_phrase(text) is None
