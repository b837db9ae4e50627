"""Pure rules of a publication check (M1, M3, M4, M5, M9, C2, C4, C12): no I/O here.

The service gathers the facts (tags, scan, consent decisions, roster); this module says what is
wrong with them, where, under which rule, and which faces a clean copy must blur.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hallpass_media.channels import NAMING_CHANNELS
from hallpass_media.consent_facts import PupilDecision, Roster
from hallpass_media.media.schemas import FaceBox, TaggedPupil
from hallpass_media.models import Channel, Owner, ScanStatus
from hallpass_media.names import NameHit, filename_words
from hallpass_media.publications.schemas import CheckProblem, ImageVerdict, Span
from hallpass_media.scanning import Box, ScanResult

# M5: contact details that locate a pupil's family. Deliberately narrow (e-mail addresses and UK
# phone numbers) so ordinary text is not flagged.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
UK_PHONE = re.compile(r"(?<![\w+])(?:\+44\s?\(?0?\)?\s?|0)\d(?:[\s-]?\d){8,9}(?!\d)")


@dataclass(frozen=True)
class Rules:
    channel: Channel
    purpose: str
    first_names: bool
    blur_faces: bool
    staff_view: bool


@dataclass(frozen=True)
class ImageFacts:
    media_id: uuid.UUID | None
    file_name: str | None
    tagged: Sequence[TaggedPupil]
    scan_status: ScanStatus
    scan: ScanResult | None
    owner: Owner
    permission: str | None
    device_registered: bool
    known: bool  # stored media, or an upload whose picture matches stored media
    # An uploaded file goes out as it is (file name and metadata included); stored media goes out
    # only as a clean copy with a neutral name and no metadata.
    goes_out_as_is: bool


@dataclass(frozen=True)
class Found:
    """A name found somewhere in what would be published."""

    hit: NameHit
    where: str
    code: str
    goes_out: bool
    box: Box | None = None


def _face(box: Box) -> FaceBox:
    return FaceBox(x=box.x, y=box.y, width=max(box.width, 1), height=max(box.height, 1))


def find_in_texts(roster: Roster, rules: Rules, texts: Mapping[str, str | None]) -> list[Found]:
    found: list[Found] = []
    for where, text in texts.items():
        if text:
            found.extend(
                Found(hit, where, "name_in_text", True)
                for hit in roster.detector.find(text, first_names=rules.first_names)
            )
    return found


def find_in_image(roster: Roster, rules: Rules, facts: ImageFacts) -> list[Found]:
    found: list[Found] = []
    detector = roster.detector
    if facts.file_name:
        words = filename_words(facts.file_name)
        found.extend(
            Found(hit, "filename", "name_in_filename", facts.goes_out_as_is)
            for hit in detector.find(words, first_names=rules.first_names)
        )
    if facts.scan is not None:
        for field in facts.scan.metadata:
            found.extend(
                Found(hit, field.where, "name_in_metadata", facts.goes_out_as_is)
                for hit in detector.find(field.text, first_names=rules.first_names)
            )
        for line in facts.scan.image_text:
            # The pixels are published whatever happens to the file: always blocking.
            found.extend(
                Found(hit, "image_text", "name_in_image", True, line.box)
                for hit in detector.find(line.text, first_names=rules.first_names)
            )
    return found


def naming_allowed(
    rules: Rules, decisions: Mapping[uuid.UUID, PupilDecision], pupil: uuid.UUID
) -> bool:
    """C4: a name may appear only on a naming channel, for a pupil whose carers agreed to it."""
    decision = decisions.get(pupil)
    return rules.channel in NAMING_CHANNELS and decision is not None and decision.allowed


def _pupil_name(roster: Roster, rules: Rules, pupil: uuid.UUID) -> str | None:
    return roster.display_name(pupil) if rules.staff_view else None


def name_problems(
    found: Sequence[Found],
    rules: Rules,
    decisions: Mapping[uuid.UUID, PupilDecision],
    roster: Roster,
) -> list[CheckProblem]:
    problems: list[CheckProblem] = []
    for item in found:
        hit = item.hit
        if naming_allowed(rules, decisions, hit.pupil_id):
            continue
        kind = "full name" if hit.full_name else "first name (the school forbids first names)"
        detail = f"A pupil's {kind} appears here."
        if not item.goes_out:
            detail += " Publishing strips it from the clean copy."
        problems.append(
            CheckProblem(
                code=item.code,
                rule="M1",
                where=item.where,
                detail=detail,
                blocking=item.goes_out,
                span=Span(start=hit.start, end=hit.end),
                box=_face(item.box) if item.box else None,
                pupil_id=hit.pupil_id,
                pupil_name=_pupil_name(roster, rules, hit.pupil_id),
            )
        )
    return problems


def contact_problems(texts: Mapping[str, str | None]) -> list[CheckProblem]:
    problems: list[CheckProblem] = []
    for where, text in texts.items():
        if not text:
            continue
        for pattern, what in ((EMAIL, "an e-mail address"), (UK_PHONE, "a phone number")):
            problems.extend(
                CheckProblem(
                    code="contact_details_in_text",
                    rule="M5",
                    where=where,
                    detail=f"The text contains {what}; contact details are never published.",
                    blocking=True,
                    span=Span(start=m.start(), end=m.end()),
                )
                for m in pattern.finditer(text)
            )
    return problems


def _centre_inside(face: Box, tag: FaceBox) -> bool:
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    return tag.x <= cx <= tag.x + tag.width and tag.y <= cy <= tag.y + tag.height


def _covers(face: Box, tag: FaceBox) -> bool:
    """The detected face is the tagged one: either box's centre lies inside the other."""
    tag_as_box = Box(x=tag.x, y=tag.y, width=tag.width, height=tag.height)
    mirror = FaceBox(x=face.x, y=face.y, width=max(face.width, 1), height=max(face.height, 1))
    return _centre_inside(face, tag) or _centre_inside(tag_as_box, mirror)


def image_verdict(
    facts: ImageFacts,
    found: Sequence[Found],
    rules: Rules,
    decisions: Mapping[uuid.UUID, PupilDecision],
    roster: Roster,
) -> tuple[ImageVerdict, list[Box]]:
    """Problems with one picture, and the boxes a clean copy must blur."""
    tagged = tagged_pupils(facts, rules, decisions, roster)
    scanned = scan_findings(facts, rules, tagged.consented_faces)
    problems = [
        *unknown_image(facts),
        *unregistered_device(facts),
        *copyright_permission(facts),
        *tagged.problems,
        *scanned.problems,
        *name_problems(found, rules, decisions, roster),
    ]
    blur = [*tagged.blur, *scanned.blur]
    verdict = ImageVerdict(
        media_id=facts.media_id,
        file_name=facts.file_name if facts.goes_out_as_is else None,
        allowed=not any(p.blocking for p in problems),
        faces=len(facts.scan.faces) if facts.scan is not None else None,
        faces_to_blur=len(blur),
        problems=problems,
    )
    return verdict, blur


@dataclass(frozen=True)
class Findings:
    """Problems one rule found with a picture, and the boxes it wants blurred."""

    problems: list[CheckProblem] = field(default_factory=list)
    blur: list[Box] = field(default_factory=list)
    consented_faces: list[FaceBox] = field(default_factory=list)


def unknown_image(facts: ImageFacts) -> list[CheckProblem]:
    """M4: a file that matches no stored media and shows faces cannot be vouched for."""
    if facts.known or facts.scan is None or not facts.scan.faces:
        return []
    return [
        CheckProblem(
            code="unknown_image",
            rule="M4",
            where="file",
            detail="This picture matches no media uploaded from a school device, and it shows "
            "faces: nobody can say who they are or whether they may be published.",
            blocking=True,
        )
    ]


def unregistered_device(facts: ImageFacts) -> list[CheckProblem]:
    """M4: media from a device that is not a registered school device is held back."""
    if facts.device_registered:
        return []
    return [
        CheckProblem(
            code="unregistered_device",
            rule="M4",
            where="device_id",
            detail="This device is not a registered school device; its media is held back.",
            blocking=True,
        )
    ]


def copyright_permission(facts: ImageFacts) -> list[CheckProblem]:
    """M9: someone else's picture goes out only with their recorded permission."""
    if facts.owner is not Owner.third_party or facts.permission:
        return []
    return [
        CheckProblem(
            code="copyright_permission_missing",
            rule="M9",
            where="permission",
            detail="The school does not own this picture and no permission is recorded.",
            blocking=True,
        )
    ]


def tagged_pupils(
    facts: ImageFacts,
    rules: Rules,
    decisions: Mapping[uuid.UUID, PupilDecision],
    roster: Roster,
) -> Findings:
    """M3, C12: each tagged pupil needs consent for the purpose; without it their tagged face
    is blurred when the school blurs, and a restricted pupil is never published at all."""
    findings = Findings()
    for pupil in facts.tagged:
        decision = decisions.get(pupil.pupil_id)
        if decision is not None and decision.allowed:
            if pupil.face is not None:
                findings.consented_faces.append(pupil.face)
            continue
        name = _pupil_name(roster, rules, pupil.pupil_id)
        if decision is not None and decision.reason == "restricted":
            # C12: never published, blurred or not; the reason is for the DSL only.
            findings.problems.append(
                CheckProblem(
                    code="restricted_pupil",
                    rule="C12",
                    where="pupils",
                    detail="This pupil must not be published.",
                    blocking=True,
                    pupil_id=pupil.pupil_id,
                    pupil_name=name,
                )
            )
            continue
        blurred = rules.blur_faces and pupil.face is not None
        if blurred and pupil.face is not None:
            face = pupil.face
            findings.blur.append(Box(x=face.x, y=face.y, width=face.width, height=face.height))
        findings.problems.append(
            CheckProblem(
                code="consent_missing",
                rule="M3",
                where="pupils",
                detail="No consent for this purpose"
                + (" (their tagged face will be blurred)." if blurred else "."),
                blocking=not blurred,
                pupil_id=pupil.pupil_id,
                pupil_name=name,
            )
        )
    return findings


def scan_findings(facts: ImageFacts, rules: Rules, consented_faces: Sequence[FaceBox]) -> Findings:
    """What the scan says: not done yet or failed (nothing can be vouched for), else GPS
    (M5) and faces nobody tagged (M3)."""
    if facts.scan_status in (ScanStatus.pending, ScanStatus.scanning):
        return Findings(
            problems=[
                CheckProblem(
                    code="scan_pending",
                    rule=None,
                    where="scan",
                    detail="The picture has not been scanned yet; ask again in a moment.",
                    blocking=True,
                )
            ]
        )
    if facts.scan_status is ScanStatus.failed or facts.scan is None:
        return Findings(
            problems=[
                CheckProblem(
                    code="scan_failed",
                    rule=None,
                    where="scan",
                    detail="The picture could not be scanned, so it cannot be checked.",
                    blocking=True,
                )
            ]
        )
    return Findings(
        problems=[*location_metadata(facts, facts.scan), *untagged_faces(facts, facts.scan, rules)],
        blur=faces_to_blur(facts.scan, rules, consented_faces),
    )


def location_metadata(facts: ImageFacts, scan: ScanResult) -> list[CheckProblem]:
    """M5: GPS locates the school or a home; only a file going out as it is keeps it."""
    if not scan.has_location:
        return []
    return [
        CheckProblem(
            code="location_metadata",
            rule="M5",
            where="metadata.GPS",
            detail="The original carries GPS data; every published copy is stripped of it.",
            blocking=facts.goes_out_as_is,
        )
    ]


def untagged_faces(facts: ImageFacts, scan: ScanResult, rules: Rules) -> list[CheckProblem]:
    """M3: more faces than tagged pupils means someone unknown is shown, unless blurred."""
    if len(scan.faces) <= len(facts.tagged):
        return []
    return [
        CheckProblem(
            code="untagged_faces",
            rule="M3",
            where="faces",
            detail=f"{len(scan.faces)} faces found but {len(facts.tagged)} pupils tagged"
            + (
                "; every face that is not a consented, tagged pupil's will be blurred."
                if rules.blur_faces
                else "; tag every pupil shown, or publish with blur_faces."
            ),
            blocking=not rules.blur_faces,
        )
    ]


def faces_to_blur(scan: ScanResult, rules: Rules, consented_faces: Sequence[FaceBox]) -> list[Box]:
    """When the school blurs, every detected face that is not a consented, tagged pupil's."""
    if not rules.blur_faces:
        return []
    return [f for f in scan.faces if not any(_covers(f, tag) for tag in consented_faces)]
