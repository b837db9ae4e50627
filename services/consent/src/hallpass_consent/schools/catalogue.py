"""The purposes every school starts with (C1), and the words parents are first shown."""

from __future__ import annotations

from dataclasses import dataclass

from hallpass_consent.models import Basis


@dataclass(frozen=True)
class PurposeSeed:
    code: str
    title: str
    wording: str
    requires_consent: bool = True
    publishable: bool = True
    names_pupil: bool = False
    needs_pupil_agreement: bool = False
    basis: Basis = Basis.opt_in


CATALOGUE: tuple[PurposeSeed, ...] = (
    PurposeSeed(
        "website_photo",
        "Photos and video on the school website",
        "I agree that photographs and video of my child may be published on the school website. "
        "My child's full name will never be published with an image.",
    ),
    PurposeSeed(
        "social_media_photo",
        "Photos and video on the school's official social media",
        "I agree that photographs and video of my child may be posted on the school's official "
        "social media accounts. My child's full name will never be published with an image.",
    ),
    PurposeSeed(
        "print_publication",
        "Printed publications and the prospectus",
        "I agree that photographs of my child may appear in the school prospectus, newsletters "
        "and other printed material produced by the school.",
    ),
    PurposeSeed(
        "newspaper_named",
        "Local newspaper, with my child named",
        "I agree that my child may be photographed by the local press at school events and "
        "that the newspaper may print my child's name with the photograph.",
        names_pupil=True,
    ),
    PurposeSeed(
        "livestream",
        "Livestreamed events",
        "I give my explicit permission for my child to appear in events the school streams "
        "live over the internet (for example assemblies and performances).",
    ),
    PurposeSeed(
        "video_recording_publish",
        "Publishing recorded video lessons and conferences",
        "I agree that recordings of video lessons or conferences in which my child takes part "
        "may be published. Recordings are always announced before they start.",
    ),
    PurposeSeed(
        "pupil_work_publish",
        "Publishing my child's work",
        "I agree that my child's work may be displayed or published by the school. My child "
        "will also be asked and may say no.",
        needs_pupil_agreement=True,
    ),
    PurposeSeed(
        "external_agency",
        "Sharing with outside agencies",
        "I agree that the school may share relevant information about my child with outside "
        "agencies that support their education or wellbeing.",
        publishable=False,
    ),
    PurposeSeed(
        "internal_assessment",
        "Internal assessment evidence (learning journals)",
        "Photographs taken as evidence of learning are kept in school as part of your child's "
        "assessment record. They never leave school and are never published; no consent is "
        "needed for this.",
        requires_consent=False,
        publishable=False,
    ),
)

# Purposes where the policy demands a positive, explicit answer: they can never be objection-based.
EXPLICIT_ONLY = {"livestream": "C3", "newspaper_named": "C4", "pupil_work_publish": "C8"}
