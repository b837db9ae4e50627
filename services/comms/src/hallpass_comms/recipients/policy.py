"""Who a message goes to, decided without I/O: one envelope per family, never two families in one
envelope (E9), and each outside address on its own (E4)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from hallpass_comms.messages.policy import classify_address
from hallpass_comms.models import RecipientKind


@dataclass(frozen=True)
class Carer:
    guardian_id: uuid.UUID
    email: str | None
    parental_responsibility: bool


@dataclass(frozen=True)
class FamilyRecord:
    """One pupil and their carers, as the consent service knows them."""

    pupil_id: uuid.UUID
    given_name: str
    family_name: str
    class_id: uuid.UUID | None
    year_group: int
    on_roll: bool
    carers: tuple[Carer, ...]


@dataclass(frozen=True)
class Targets:
    """What the sender asked for."""

    guardian_ids: frozenset[uuid.UUID] = frozenset()
    pupil_ids: frozenset[uuid.UUID] = frozenset()
    class_ids: frozenset[uuid.UUID] = frozenset()
    year_groups: frozenset[int] = frozenset()
    addresses: tuple[str, ...] = ()
    # A reply about one child (a concern): of the carers' families, that child's alone, so the
    # message is kept in that child's history (all of them when the carer is no longer linked).
    about_pupil_id: uuid.UUID | None = None

    @property
    def needs_families(self) -> bool:
        return bool(self.guardian_ids or self.pupil_ids or self.class_ids or self.year_groups)


@dataclass(frozen=True)
class Envelope:
    """One delivery: who it is to, and for family envelopes which carers and pupils it is about."""

    kind: RecipientKind
    to: tuple[str, ...]
    guardian_ids: tuple[uuid.UUID, ...] = ()
    pupil_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class Addressing:
    envelopes: tuple[Envelope, ...]
    # Pupils asked for whose family has no carer with an address to write to.
    unreachable_pupil_ids: tuple[uuid.UUID, ...] = field(default=())


def _targeted(family: FamilyRecord, targets: Targets) -> bool:
    if family.pupil_id in targets.pupil_ids:
        return True
    return family.on_roll and (
        family.class_id in targets.class_ids or family.year_group in targets.year_groups
    )


def _about(families: Sequence[FamilyRecord], pupil_id: uuid.UUID | None) -> Sequence[FamilyRecord]:
    if pupil_id is None:
        return families
    return [f for f in families if f.pupil_id == pupil_id] or families


def address_envelopes(
    families: Sequence[FamilyRecord], targets: Targets, school_domains: Collection[str]
) -> Addressing:
    """Split a send into envelopes.

    A pupil asked for (by id, class or year group) is written to through every carer with
    parental responsibility and an address; a carer asked for by id is written to alone, about
    their children. Pupils whose carers are the very same people (siblings) share one envelope;
    any other two pupils never do, so no carer sees another family's address.
    """
    recipients: dict[uuid.UUID, dict[uuid.UUID, str]] = {}
    unreachable: list[uuid.UUID] = []
    for family in _about(families, targets.about_pupil_id):
        chosen: dict[uuid.UUID, str] = {}
        asked = _targeted(family, targets)
        for carer in family.carers:
            if carer.email is None:
                continue
            if (
                asked and carer.parental_responsibility
            ) or carer.guardian_id in targets.guardian_ids:
                chosen[carer.guardian_id] = carer.email.lower()
        if chosen:
            recipients.setdefault(family.pupil_id, {}).update(chosen)
        elif asked:
            unreachable.append(family.pupil_id)

    by_carers: dict[frozenset[uuid.UUID], list[uuid.UUID]] = {}
    addresses: dict[frozenset[uuid.UUID], tuple[str, ...]] = {}
    for pupil_id, carers in recipients.items():
        key = frozenset(carers)
        by_carers.setdefault(key, []).append(pupil_id)
        addresses[key] = tuple(sorted(set(carers.values())))
    envelopes = [
        Envelope(
            kind=RecipientKind.family,
            to=addresses[key],
            guardian_ids=tuple(sorted(key)),
            pupil_ids=tuple(sorted(pupils)),
        )
        for key, pupils in by_carers.items()
    ]
    for address in dict.fromkeys(a.lower() for a in targets.addresses):
        envelopes.append(Envelope(kind=classify_address(address, school_domains), to=(address,)))
    return Addressing(tuple(envelopes), tuple(unreachable))
