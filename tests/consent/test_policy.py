"""The pure consent decision (``policy.decide``): no database, only records in, verdict out."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given
from hypothesis import strategies as st

from hallpass_consent.consents.policy import PurposeRule, Reason, RecordView, Verdict, decide
from hallpass_consent.models import Basis, Decision, GivenBy

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

WEBSITE = PurposeRule(
    "website_photo", Basis.opt_in, requires_consent=True, needs_pupil_agreement=False
)
PRINT_BY_OBJECTION = PurposeRule(
    "print_publication", Basis.objection, requires_consent=True, needs_pupil_agreement=False
)
PUPIL_WORK = PurposeRule(
    "pupil_work_publish", Basis.opt_in, requires_consent=True, needs_pupil_agreement=True
)
INTERNAL = PurposeRule(
    "internal_assessment", Basis.opt_in, requires_consent=False, needs_pupil_agreement=False
)

MUM = uuid.UUID("00000000-0000-4000-8000-00000000000a")
DAD = uuid.UUID("00000000-0000-4000-8000-00000000000b")
UNCLE = uuid.UUID("00000000-0000-4000-8000-00000000000c")  # a carer without parental resp.
WITH_RESPONSIBILITY = frozenset({MUM, DAD})


def carer(
    decision: Decision,
    by: uuid.UUID = MUM,
    *,
    recorded: dt.timedelta = -DAY,
    valid_from: dt.timedelta | None = None,
    valid_until: dt.timedelta | None = 200 * DAY,
) -> RecordView:
    """A carer's record made ``recorded`` from NOW; validity is relative to NOW as well."""
    recorded_at = NOW + recorded
    return RecordView(
        id=uuid.uuid4(),
        given_by=GivenBy.guardian,
        guardian_id=by,
        decision=decision,
        recorded_at=recorded_at,
        valid_from=NOW + valid_from if valid_from is not None else recorded_at,
        valid_until=NOW + valid_until if valid_until is not None else None,
    )


def pupil(
    decision: Decision,
    *,
    recorded: dt.timedelta = -DAY,
    valid_until: dt.timedelta | None = 200 * DAY,
) -> RecordView:
    recorded_at = NOW + recorded
    return RecordView(
        uuid.uuid4(),
        GivenBy.pupil,
        None,
        decision,
        recorded_at,
        recorded_at,
        NOW + valid_until if valid_until is not None else None,
    )


def verdict(
    purpose: PurposeRule,
    *records: RecordView,
    at: dt.datetime = NOW,
    on_roll: bool = True,
    restricted: bool = False,
    responsible: frozenset[uuid.UUID] = WITH_RESPONSIBILITY,
) -> Verdict:
    return decide(
        purpose,
        at=at,
        on_roll=on_roll,
        restricted=restricted,
        responsible_guardians=responsible,
        records=records,
    )


def test_no_record_means_no_c2() -> None:
    assert verdict(WEBSITE) == Verdict(False, Reason.no_record)


def test_grant_in_force_allows_and_cites_the_grant_c10() -> None:
    grant = carer(Decision.granted)
    assert verdict(WEBSITE, grant) == Verdict(True, Reason.granted, grant.id, grant.valid_until)


def test_objection_based_purpose_is_allowed_while_nobody_objects_c2() -> None:
    assert verdict(PRINT_BY_OBJECTION) == Verdict(True, Reason.no_objection)


def test_objection_based_purpose_is_blocked_once_a_carer_objects_c5() -> None:
    objection = carer(Decision.refused)
    assert verdict(PRINT_BY_OBJECTION, objection) == Verdict(False, Reason.refused, objection.id)


def test_refusal_by_either_carer_wins_c11() -> None:
    grant = carer(Decision.granted, MUM, recorded=-DAY)
    refusal = carer(Decision.refused, DAD, recorded=-2 * DAY)
    assert verdict(WEBSITE, grant, refusal) == Verdict(False, Reason.refused, refusal.id)


def test_later_grant_by_other_carer_does_not_override_refusal_c11() -> None:
    refusal = carer(Decision.refused, DAD, recorded=-2 * DAY)
    grant = carer(Decision.granted, MUM, recorded=-DAY)
    assert verdict(WEBSITE, refusal, grant).allowed is False


def test_refusal_by_carer_without_parental_responsibility_is_ignored_c11() -> None:
    grant = carer(Decision.granted, MUM)
    refusal = carer(Decision.refused, UNCLE, recorded=-DAY / 2)
    assert verdict(WEBSITE, grant, refusal) == Verdict(
        True, Reason.granted, grant.id, grant.valid_until
    )


def test_grant_by_carer_without_parental_responsibility_does_not_count_c11() -> None:
    assert verdict(WEBSITE, carer(Decision.granted, UNCLE)) == Verdict(False, Reason.no_record)


def test_grant_past_its_end_has_expired() -> None:
    lapsed = carer(Decision.granted, recorded=-300 * DAY, valid_until=-DAY)
    assert verdict(WEBSITE, lapsed) == Verdict(False, Reason.expired, lapsed.id)


def test_grant_ends_exactly_at_valid_until() -> None:
    grant = carer(Decision.granted, valid_until=DAY)
    assert verdict(WEBSITE, grant, at=NOW + DAY - dt.timedelta(microseconds=1)).allowed is True
    assert verdict(WEBSITE, grant, at=NOW + DAY).reason is Reason.expired


def test_grant_that_starts_later_is_not_yet_valid() -> None:
    future = carer(Decision.granted, valid_from=7 * DAY, valid_until=100 * DAY)
    assert verdict(WEBSITE, future) == Verdict(False, Reason.not_yet_valid, future.id)


def test_withdrawal_blocks_publication_c5() -> None:
    grant = carer(Decision.granted, recorded=-2 * DAY)
    withdrawal = carer(Decision.withdrawn, recorded=-DAY, valid_until=None)
    assert verdict(WEBSITE, grant, withdrawal) == Verdict(False, Reason.withdrawn, withdrawal.id)


def test_restriction_overrides_every_grant_c12() -> None:
    grants = [carer(Decision.granted, MUM), carer(Decision.granted, DAD)]
    assert verdict(WEBSITE, *grants, restricted=True) == Verdict(False, Reason.restricted)


def test_restriction_overrides_objection_based_purpose_c12() -> None:
    assert verdict(PRINT_BY_OBJECTION, restricted=True) == Verdict(False, Reason.restricted)


def test_internal_assessment_needs_no_consent_even_when_restricted_c6() -> None:
    refusal = carer(Decision.refused)
    assert verdict(INTERNAL, refusal, restricted=True) == Verdict(True, Reason.no_consent_needed)


def test_leaver_is_not_on_roll_whatever_the_records() -> None:
    assert verdict(WEBSITE, carer(Decision.granted), on_roll=False) == Verdict(
        False, Reason.not_on_roll
    )


def test_pupil_refusal_blocks_their_work_despite_parent_grant_c8() -> None:
    pupil_no = pupil(Decision.refused)
    assert verdict(PUPIL_WORK, carer(Decision.granted), pupil_no) == Verdict(
        False, Reason.pupil_refused, pupil_no.id
    )


def test_pupil_work_needs_the_pupils_own_agreement_c8() -> None:
    grant = carer(Decision.granted)
    assert verdict(PUPIL_WORK, grant) == Verdict(False, Reason.pupil_agreement_missing, grant.id)


def test_lapsed_pupil_agreement_no_longer_counts_c8() -> None:
    grant = carer(Decision.granted)
    old_yes = pupil(Decision.granted, recorded=-300 * DAY, valid_until=-DAY)
    assert verdict(PUPIL_WORK, grant, old_yes).reason is Reason.pupil_agreement_missing


def test_parent_and_pupil_agreement_allow_pupil_work_c8() -> None:
    grant = carer(Decision.granted)
    assert verdict(PUPIL_WORK, grant, pupil(Decision.granted)) == Verdict(
        True, Reason.granted, grant.id, grant.valid_until
    )


def test_pupil_agreement_alone_is_not_parental_consent_c8() -> None:
    assert verdict(PUPIL_WORK, pupil(Decision.granted)) == Verdict(False, Reason.no_record)


def test_pupils_own_refusal_is_ignored_where_not_asked_c8() -> None:
    grant = carer(Decision.granted)
    assert verdict(WEBSITE, grant, pupil(Decision.refused)).allowed is True


def test_decision_at_a_past_instant_ignores_later_records_c10() -> None:
    grant = carer(Decision.granted, recorded=-10 * DAY)
    refusal = carer(Decision.refused, DAD, recorded=-DAY)
    assert verdict(WEBSITE, grant, refusal, at=NOW - 5 * DAY) == Verdict(
        True, Reason.granted, grant.id, grant.valid_until
    )
    assert verdict(WEBSITE, grant, refusal).allowed is False


def test_decision_before_any_record_is_no_record_c2() -> None:
    assert verdict(WEBSITE, carer(Decision.granted), at=NOW - 2 * DAY).reason is Reason.no_record


def test_carers_latest_record_wins_over_their_earlier_refusal_c5() -> None:
    refusal = carer(Decision.refused, recorded=-3 * DAY)
    grant = carer(Decision.granted, recorded=-DAY)
    assert verdict(WEBSITE, grant, refusal) == Verdict(
        True, Reason.granted, grant.id, grant.valid_until
    )


def test_carers_latest_record_wins_over_their_earlier_grant_c5() -> None:
    grant = carer(Decision.granted, recorded=-3 * DAY)
    refusal = carer(Decision.refused, recorded=-DAY)
    assert verdict(WEBSITE, refusal, grant) == Verdict(False, Reason.refused, refusal.id)


# --- property ---------------------------------------------------------------------------------

PARTIES = [MUM, DAD, UNCLE]
RULES = [WEBSITE, PRINT_BY_OBJECTION, PUPIL_WORK]


@st.composite
def record_sets(draw: st.DrawFn) -> list[RecordView]:
    """Up to 12 records by carers (with and without responsibility) and the pupil, each made
    at a distinct instant so "latest" is never a tie."""
    count = draw(st.integers(min_value=0, max_value=12))
    minutes = draw(
        st.lists(
            st.integers(min_value=-60 * 24 * 400, max_value=60 * 24 * 30),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    records = []
    for minute in minutes:
        party = draw(st.sampled_from([*PARTIES, None]))
        decision = draw(st.sampled_from(list(Decision)))
        start = draw(st.integers(min_value=0, max_value=60 * 24 * 60))
        length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=60 * 24 * 400)))
        recorded_at = NOW + dt.timedelta(minutes=minute)
        valid_from = recorded_at + dt.timedelta(minutes=start)
        records.append(
            RecordView(
                id=uuid.uuid4(),
                given_by=GivenBy.pupil if party is None else GivenBy.guardian,
                guardian_id=party,
                decision=decision,
                recorded_at=recorded_at,
                valid_from=valid_from,
                valid_until=None if length is None else valid_from + dt.timedelta(minutes=length),
            )
        )
    return records


@given(
    records=record_sets(),
    rule=st.sampled_from(RULES),
    restricted=st.booleans(),
    responsible=st.sets(st.sampled_from(PARTIES)).map(frozenset),
)
def test_any_refusal_among_latest_responsible_records_is_never_allowed_c11(
    records: list[RecordView],
    rule: PurposeRule,
    restricted: bool,
    responsible: frozenset[uuid.UUID],
) -> None:
    latest: dict[uuid.UUID, RecordView] = {}
    for record in records:
        if record.recorded_at > NOW or record.guardian_id not in responsible:
            continue
        current = latest.get(record.guardian_id)
        if current is None or record.recorded_at > current.recorded_at:
            latest[record.guardian_id] = record
    refused = any(r.decision is not Decision.granted for r in latest.values())

    result = decide(
        rule,
        at=NOW,
        on_roll=True,
        restricted=restricted,
        responsible_guardians=responsible,
        records=records,
    )

    if refused:
        assert result.allowed is False
        assert result.reason in {Reason.refused, Reason.withdrawn, Reason.restricted}
