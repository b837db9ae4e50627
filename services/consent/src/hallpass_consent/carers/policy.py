"""What links a person's own account to a carer record, decided without I/O.

Invitation codes are 16 characters of Crockford's base32 (80 bits from the operating system's
random source), shown in groups of four. That alphabet has no I, L, O or U, so a code read aloud
or copied from paper survives the usual slips: letters are taken in any case, dashes and spaces
are ignored, and O, I and L are read as 0, 1 and 1. Only a code's SHA-256 is stored: 80 bits
cannot be searched for from a leaked hash in the code's 14-day life.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16
CODE_GROUP = 4
# 5 bits a character; the bound the tests hold the alphabet and length to.
CODE_BITS = CODE_LENGTH * 5

_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", "- \t")


def code_from_number(number: int) -> str:
    """The code for a random number below ``2**CODE_BITS``, grouped for reading."""
    characters = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, 32)
        characters.append(CODE_ALPHABET[digit])
    text = "".join(characters)
    return "-".join(text[start : start + CODE_GROUP] for start in range(0, CODE_LENGTH, CODE_GROUP))


def normalised_code(text: str) -> str | None:
    """The code as stored (upper case, no separators), or None when it cannot be a code."""
    code = text.translate(_IGNORED).upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def code_hash(code: str) -> str:
    """The stored form of a normalised code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def same_hash(stored: str, offered: str) -> bool:
    """Compared in constant time, so the time taken says nothing about how much matched."""
    return hmac.compare_digest(stored.encode("ascii"), offered.encode("ascii"))


@dataclass(frozen=True)
class InvitationState:
    """What is known of one invitation when a code for it is offered."""

    expires_at: dt.datetime
    revoked: bool
    redeemed: bool


def invitation_usable(invitation: InvitationState, now: dt.datetime) -> bool:
    """Unexpired, not replaced by a newer code, and not used before: one use only."""
    return not invitation.revoked and not invitation.redeemed and now < invitation.expires_at


@dataclass(frozen=True)
class GuardianByEmail:
    """A carer record holding the address a person signed in with."""

    school: str
    guardian_id: uuid.UUID


def guardians_to_link(
    found: Iterable[GuardianByEmail], known: Mapping[uuid.UUID, bool]
) -> list[GuardianByEmail]:
    """The records a verified address links now.

    ``known`` holds the records this account was ever linked to (True while linked, False once
    the office unlinked it): those are left alone, so an unlink is never undone by the address.
    Where one school holds the address on two records (a family's shared address) none of them
    is linked: the address cannot say which carer the person is, so the school invites them.
    """
    by_school: dict[str, list[GuardianByEmail]] = {}
    for guardian in found:
        by_school.setdefault(guardian.school, []).append(guardian)
    return [
        records[0]
        for _school, records in sorted(by_school.items())
        if len(records) == 1 and records[0].guardian_id not in known
    ]
