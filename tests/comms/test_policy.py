"""The pure mail rules: copies (E1), school accounts (E2/E4), approval of outside mail (E4),
secure links (E5), chain messages (E6), school hours with time zones and summer time (E8), one
envelope per family (E9), report references (E10)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from hallpass_comms.messages.policy import (
    NoSchoolDayAhead,
    SchoolCalendar,
    approval_of,
    classify_address,
    envelope_status,
    find_chain_phrase,
    has_reached,
    leadership_cc,
    on_school_domain,
    release_time,
    secure_link,
)
from hallpass_comms.models import Approval, CcPolicy, DeliveryStatus, RecipientKind
from hallpass_comms.recipients.policy import Carer, FamilyRecord, Targets, address_envelopes
from hallpass_comms.reports.policy import reference, reference_prefix

HEAD = "head@oak.sch.uk"
DEPUTY = "deputy@oak.sch.uk"
TEACHER = "j.smith@oak.sch.uk"
UTC = dt.UTC


# --- E1 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "sender", "copied"),
    [
        (CcPolicy.both, TEACHER, [HEAD, DEPUTY]),
        (CcPolicy.both, HEAD, [DEPUTY]),
        (CcPolicy.both, DEPUTY, [HEAD]),
        (CcPolicy.head, TEACHER, [HEAD]),
        (CcPolicy.head, HEAD, [DEPUTY]),
        (CcPolicy.deputy, TEACHER, [DEPUTY]),
        (CcPolicy.deputy, DEPUTY, [HEAD]),
        (CcPolicy.head_else_deputy, TEACHER, [HEAD]),
        (CcPolicy.head_else_deputy, HEAD, [DEPUTY]),
        (CcPolicy.deputy_else_head, "Deputy@Oak.sch.uk", [HEAD]),
    ],
)
def test_e1_leadership_is_copied_per_policy_and_never_to_the_sender(
    policy: CcPolicy, sender: str, copied: list[str]
) -> None:
    assert leadership_cc(policy, head=HEAD, deputy=DEPUTY, sender=sender) == copied


def test_e1_fallback_policy_copies_the_deputy_when_there_is_no_head_address() -> None:
    assert leadership_cc(CcPolicy.head_else_deputy, head=None, deputy=DEPUTY, sender=TEACHER) == [
        DEPUTY
    ]


def test_e1_a_head_without_a_deputy_is_copied_to_nobody_when_sending_themselves() -> None:
    assert leadership_cc(CcPolicy.head, head=HEAD, deputy=None, sender=HEAD) == []


# --- E2 / E4 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "ours"),
    [
        ("j.smith@oak.sch.uk", True),
        ("J.Smith@OAK.SCH.UK", True),
        ("j.smith@gmail.com", False),
        ("j.smith@mail.oak.sch.uk", False),  # a subdomain is not the school's account
        ("j.smith@oak.sch.uk.evil.com", False),
        ("oak.sch.uk", False),
    ],
)
def test_e2_only_the_schools_own_domains_are_school_accounts(address: str, ours: bool) -> None:
    assert on_school_domain(address, ["oak.sch.uk"]) is ours


def test_e4_an_address_off_the_schools_domains_is_an_outside_organisation() -> None:
    assert classify_address("referrals@council.gov.uk", ["oak.sch.uk"]) is RecipientKind.external
    assert classify_address("office@oak.sch.uk", ["oak.sch.uk"]) is RecipientKind.staff


# --- E6 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Forward this to 10 people or you will have bad luck",
        "Please FORWARD THIS TO TEN FRIENDS today!",
        "send this to five other parents and see what happens",
        "Pass it on to all your contacts",
        "share this with everyone you know",
        "This is a chain letter, do not ignore it",
        "Don't break the chain!",
        "You will have bad luck unless you send it on",
        "forward this message to at least 7 people",
        "forward this to 20\nfriends",
        "Forward this within 10 minutes",
    ],
)
def test_e6_chain_messages_are_recognised(text: str) -> None:
    assert find_chain_phrase(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Please forward this to your child's other parent.",
        "Could you send this to the office by Friday?",
        "Share this with your child and talk about it together.",
        "The chain of events on the trip was as follows.",
        "Ten friends from Year 3 will read at assembly.",
        "We had bad luck with the weather on sports day.",
        "Please pass this on to whoever collects your child.",
    ],
)
def test_e6_ordinary_requests_to_pass_something_on_are_not_chain_messages(text: str) -> None:
    assert find_chain_phrase(text) is None


def test_e6_the_phrase_found_is_named() -> None:
    assert find_chain_phrase("Hello", "Kind regards. Forward this to 10 people.") == (
        "forward this to 10 people"
    )


# --- E8 ----------------------------------------------------------------------------------------

LONDON = SchoolCalendar(
    timezone="Europe/London",
    day_start=dt.time(8, 30),
    day_end=dt.time(16, 0),
    morning_send=dt.time(8, 0),
    school_days=frozenset({1, 2, 3, 4, 5}),
    terms=(
        (dt.date(2026, 9, 3), dt.date(2026, 10, 23)),
        (dt.date(2026, 11, 2), dt.date(2026, 12, 18)),
        (dt.date(2027, 1, 5), dt.date(2027, 3, 26)),
        (dt.date(2027, 4, 12), dt.date(2027, 7, 21)),
    ),
)


def test_e8_mail_in_school_hours_goes_at_once() -> None:
    # Wednesday 18 November 2026, 10:00 GMT
    assert release_time(LONDON, dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC), urgent=False) is None


def test_e8_an_evening_message_waits_for_the_next_morning() -> None:
    wednesday_evening = dt.datetime(2026, 11, 18, 19, 30, tzinfo=UTC)

    assert release_time(LONDON, wednesday_evening, urgent=False) == dt.datetime(
        2026, 11, 19, 8, 0, tzinfo=UTC
    )


def test_e8_urgent_mail_goes_at_once_whatever_the_hour() -> None:
    assert release_time(LONDON, dt.datetime(2026, 11, 18, 23, 0, tzinfo=UTC), urgent=True) is None


def test_e8_early_morning_mail_goes_at_this_mornings_send_time() -> None:
    assert release_time(
        LONDON, dt.datetime(2026, 11, 18, 6, 15, tzinfo=UTC), urgent=False
    ) == dt.datetime(2026, 11, 18, 8, 0, tzinfo=UTC)


def test_e8_between_the_morning_send_and_the_school_day_mail_goes_at_once() -> None:
    assert release_time(LONDON, dt.datetime(2026, 11, 18, 8, 10, tzinfo=UTC), urgent=False) is None


def test_e8_friday_evening_mail_waits_for_monday() -> None:
    friday_evening = dt.datetime(2026, 11, 20, 17, 0, tzinfo=UTC)

    assert release_time(LONDON, friday_evening, urgent=False) == dt.datetime(
        2026, 11, 23, 8, 0, tzinfo=UTC
    )


def test_e8_half_term_mail_waits_for_the_first_day_back() -> None:
    half_term = dt.datetime(2026, 10, 27, 11, 0, tzinfo=UTC)  # a Tuesday in half term

    assert release_time(LONDON, half_term, urgent=False) == dt.datetime(
        2026, 11, 2, 8, 0, tzinfo=UTC
    )


def test_e8_the_morning_after_the_clocks_go_forward_is_eight_in_summer_time() -> None:
    # Clocks go forward on Sunday 28 March 2027; the Easter holiday is then over by April 12.
    calendar = SchoolCalendar(
        "Europe/London", LONDON.day_start, LONDON.day_end, LONDON.morning_send, LONDON.school_days
    )
    saturday = dt.datetime(2027, 3, 27, 12, 0, tzinfo=UTC)

    assert release_time(calendar, saturday, urgent=False) == dt.datetime(
        2027, 3, 29, 7, 0, tzinfo=UTC
    )


def test_e8_the_morning_after_the_clocks_go_back_is_eight_in_greenwich_time() -> None:
    # Clocks go back on Sunday 25 October 2026: Friday 16:30 BST is 15:30 UTC.
    calendar = SchoolCalendar(
        "Europe/London", LONDON.day_start, LONDON.day_end, LONDON.morning_send, LONDON.school_days
    )
    friday_after_school = dt.datetime(2026, 10, 23, 15, 30, tzinfo=UTC)

    assert release_time(calendar, friday_after_school, urgent=False) == dt.datetime(
        2026, 10, 26, 8, 0, tzinfo=UTC
    )


def test_e8_school_hours_are_read_in_the_schools_own_time_zone() -> None:
    # 15:30 UTC on a summer Monday is 16:30 in London: after school.
    summer_monday = dt.datetime(2027, 6, 7, 15, 30, tzinfo=UTC)

    assert release_time(LONDON, summer_monday, urgent=False) == dt.datetime(
        2027, 6, 8, 7, 0, tzinfo=UTC
    )


def test_e8_with_no_term_ahead_there_is_no_morning_to_wait_for() -> None:
    with pytest.raises(NoSchoolDayAhead):
        release_time(LONDON, dt.datetime(2027, 7, 22, 10, 0, tzinfo=UTC), urgent=False)


# --- E9 ----------------------------------------------------------------------------------------


def _family(carers: list[Carer], **changes: object) -> FamilyRecord:
    values: dict[str, object] = {
        "pupil_id": uuid.uuid4(),
        "given_name": "Amara",
        "family_name": "Okafor",
        "class_id": None,
        "year_group": 3,
        "on_roll": True,
        "carers": tuple(carers),
    }
    values.update(changes)
    return FamilyRecord(**values)  # type: ignore[arg-type]


def _carer(email: str | None, responsible: bool = True) -> Carer:
    return Carer(uuid.uuid4(), email, responsible)


def test_e9_each_family_gets_its_own_envelope() -> None:
    a = _family([_carer("a1@example.org"), _carer("a2@example.org")])
    b = _family([_carer("b1@example.org")])

    addressing = address_envelopes(
        [a, b], Targets(pupil_ids=frozenset({a.pupil_id, b.pupil_id})), []
    )

    assert sorted(e.to for e in addressing.envelopes) == [
        ("a1@example.org", "a2@example.org"),
        ("b1@example.org",),
    ]


def test_e9_siblings_with_the_same_carers_share_one_envelope() -> None:
    mum, dad = _carer("mum@example.org"), _carer("dad@example.org")
    elder, younger = _family([mum, dad]), _family([dad, mum], given_name="Kemi")

    addressing = address_envelopes(
        [elder, younger], Targets(pupil_ids=frozenset({elder.pupil_id, younger.pupil_id})), []
    )

    (envelope,) = addressing.envelopes
    assert set(envelope.pupil_ids) == {elder.pupil_id, younger.pupil_id}


def test_e9_carers_without_parental_responsibility_or_address_are_not_written_to() -> None:
    family = _family(
        [_carer("mum@example.org"), _carer("gran@example.org", responsible=False), _carer(None)]
    )

    addressing = address_envelopes([family], Targets(pupil_ids=frozenset({family.pupil_id})), [])

    assert [e.to for e in addressing.envelopes] == [("mum@example.org",)]


def test_e9_a_pupil_no_carer_can_be_written_to_is_reported_unreachable() -> None:
    family = _family([_carer(None)])

    addressing = address_envelopes([family], Targets(pupil_ids=frozenset({family.pupil_id})), [])

    assert addressing.envelopes == ()
    assert addressing.unreachable_pupil_ids == (family.pupil_id,)


def test_a_carer_named_by_id_is_written_to_alone() -> None:
    mum, dad = _carer("mum@example.org"), _carer("dad@example.org")
    family = _family([mum, dad])

    addressing = address_envelopes([family], Targets(guardian_ids=frozenset({dad.guardian_id})), [])

    assert [e.to for e in addressing.envelopes] == [("dad@example.org",)]


def test_leavers_are_not_written_to_in_a_class_send() -> None:
    class_id = uuid.uuid4()
    leaver = _family([_carer("x@example.org")], class_id=class_id, on_roll=False)

    addressing = address_envelopes([leaver], Targets(class_ids=frozenset({class_id})), [])

    assert addressing.envelopes == ()


def test_a_reply_about_one_child_goes_in_that_childs_history_only() -> None:
    mum = _carer("mum@example.org")
    elder, younger = _family([mum]), _family([mum], given_name="Kemi")

    addressing = address_envelopes(
        [elder, younger],
        Targets(guardian_ids=frozenset({mum.guardian_id}), about_pupil_id=younger.pupil_id),
        [],
    )

    (envelope,) = addressing.envelopes
    assert envelope.pupil_ids == (younger.pupil_id,)


def test_a_reply_about_a_child_the_carer_is_no_longer_linked_to_still_reaches_them() -> None:
    mum = _carer("mum@example.org")
    family = _family([mum])

    addressing = address_envelopes(
        [family],
        Targets(guardian_ids=frozenset({mum.guardian_id}), about_pupil_id=uuid.uuid4()),
        [],
    )

    assert [e.to for e in addressing.envelopes] == [("mum@example.org",)]


# --- E4 / E5 / E8: approval, secure links, when an envelope goes -------------------------------


@pytest.mark.parametrize(
    ("outside", "required", "leadership", "approval"),
    [
        (True, True, False, Approval.pending),
        (True, True, True, Approval.approved),
        (True, False, False, Approval.not_needed),
        (False, True, False, Approval.not_needed),
    ],
)
def test_e4_only_outside_mail_waits_and_leadership_approves_their_own(
    outside: bool, required: bool, leadership: bool, approval: Approval
) -> None:
    assert (
        approval_of(reaches_outside=outside, school_requires_it=required, by_leadership=leadership)
        is approval
    )


NOW = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
MORNING = dt.datetime(2026, 11, 19, 8, 0, tzinfo=UTC)


def test_e4_an_envelope_held_for_approval_waits_whatever_the_hour() -> None:
    assert envelope_status(held=True, release=MORNING, now=NOW) == (
        DeliveryStatus.pending_approval,
        NOW,
    )


def test_e8_an_envelope_written_out_of_hours_is_scheduled_for_the_morning() -> None:
    assert envelope_status(held=False, release=MORNING, now=NOW) == (
        DeliveryStatus.scheduled,
        MORNING,
    )
    assert envelope_status(held=False, release=None, now=NOW) == (DeliveryStatus.queued, NOW)


def test_e8_a_carer_knows_of_a_message_only_once_its_morning_has_come() -> None:
    assert not has_reached(DeliveryStatus.scheduled, MORNING, NOW)
    assert has_reached(DeliveryStatus.scheduled, MORNING, MORNING)
    assert not has_reached(DeliveryStatus.pending_approval, NOW, MORNING)


def test_e5_a_secure_link_runs_from_when_held_mail_went_out() -> None:
    link = secure_link(created_at=NOW, approved_at=None, scheduled_for=MORNING, valid_days=14)

    assert link.sent_at == MORNING
    assert not link.expired(MORNING + dt.timedelta(days=14) - dt.timedelta(seconds=1))
    assert link.expired(MORNING + dt.timedelta(days=14))


def test_e5_a_secure_link_runs_from_approval_when_approval_came_later() -> None:
    approved = NOW + dt.timedelta(days=3)

    link = secure_link(created_at=NOW, approved_at=approved, scheduled_for=None, valid_days=7)

    assert (link.sent_at, link.expires_at) == (approved, approved + dt.timedelta(days=7))


# --- E10: report references ---------------------------------------------------------------------


def test_e10_references_count_by_the_year_in_the_schools_own_time_zone() -> None:
    new_year_in_auckland = dt.datetime(2026, 12, 31, 12, 0, tzinfo=UTC)

    assert reference_prefix(new_year_in_auckland, "Europe/London") == "R-2026-"
    assert reference_prefix(new_year_in_auckland, "Pacific/Auckland") == "R-2027-"
    assert reference("R-2026-", 123) == "R-2026-000123"
