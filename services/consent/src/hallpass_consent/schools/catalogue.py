"""The purposes every school starts with (C1), and the words parents are first shown."""

from __future__ import annotations

from dataclasses import dataclass

from hallpass_consent.models import Basis


@dataclass(frozen=True)
class PurposeSeed:
    code: str
    title: str
    wording: str
    # The same words in Welsh, as a Welsh-medium school would write them to its families.
    wording_cy: str
    title_cy: str
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
        "Rwy'n cytuno y caiff ffotograffau a fideo o fy mhlentyn eu cyhoeddi ar wefan yr ysgol. "
        "Ni fydd enw llawn fy mhlentyn byth yn cael ei gyhoeddi gyda delwedd.",
        title_cy="Lluniau a fideo ar wefan yr ysgol",
    ),
    PurposeSeed(
        "social_media_photo",
        "Photos and video on the school's official social media",
        "I agree that photographs and video of my child may be posted on the school's official "
        "social media accounts. My child's full name will never be published with an image.",
        "Rwy'n cytuno y caiff ffotograffau a fideo o fy mhlentyn eu postio ar gyfrifon "
        "cyfryngau cymdeithasol swyddogol yr ysgol. Ni fydd enw llawn fy mhlentyn byth yn cael "
        "ei gyhoeddi gyda delwedd.",
        title_cy="Lluniau a fideo ar gyfryngau cymdeithasol swyddogol yr ysgol",
    ),
    PurposeSeed(
        "print_publication",
        "Printed publications and the prospectus",
        "I agree that photographs of my child may appear in the school prospectus, newsletters "
        "and other printed material produced by the school.",
        "Rwy'n cytuno y caiff ffotograffau o fy mhlentyn ymddangos ym mhrosbectws yr ysgol, "
        "mewn cylchlythyrau ac mewn deunyddiau printiedig eraill a gynhyrchir gan yr ysgol.",
        title_cy="Cyhoeddiadau printiedig a'r prosbectws",
    ),
    PurposeSeed(
        "newspaper_named",
        "Local newspaper, with my child named",
        "I agree that my child may be photographed by the local press at school events and "
        "that the newspaper may print my child's name with the photograph.",
        "Rwy'n cytuno y caiff y wasg leol dynnu lluniau o fy mhlentyn mewn digwyddiadau ysgol, "
        "ac y caiff y papur newydd argraffu enw fy mhlentyn gyda'r llun.",
        names_pupil=True,
        title_cy="Papur newydd lleol, gydag enw fy mhlentyn",
    ),
    PurposeSeed(
        "livestream",
        "Livestreamed events",
        "I give my explicit permission for my child to appear in events the school streams "
        "live over the internet (for example assemblies and performances).",
        "Rwy'n rhoi fy nghaniatâd penodol i fy mhlentyn ymddangos mewn digwyddiadau y mae'r "
        "ysgol yn eu ffrydio'n fyw dros y rhyngrwyd (er enghraifft gwasanaethau a "
        "pherfformiadau).",
        title_cy="Digwyddiadau a ffrydir yn fyw",
    ),
    PurposeSeed(
        "video_recording_publish",
        "Publishing recorded video lessons and conferences",
        "I agree that recordings of video lessons or conferences in which my child takes part "
        "may be published. Recordings are always announced before they start.",
        "Rwy'n cytuno y caiff recordiadau o wersi fideo neu gynadleddau fideo y mae fy mhlentyn "
        "yn cymryd rhan ynddynt eu cyhoeddi. Bydd yr ysgol bob amser yn dweud cyn i recordiad "
        "ddechrau.",
        title_cy="Cyhoeddi recordiadau o wersi a chynadleddau fideo",
    ),
    PurposeSeed(
        "pupil_work_publish",
        "Publishing my child's work",
        "I agree that my child's work may be displayed or published by the school. My child "
        "will also be asked and may say no.",
        "Rwy'n cytuno y caiff gwaith fy mhlentyn ei arddangos neu ei gyhoeddi gan yr ysgol. "
        "Bydd fy mhlentyn hefyd yn cael ei holi a chaiff ddweud na.",
        needs_pupil_agreement=True,
        title_cy="Cyhoeddi gwaith fy mhlentyn",
    ),
    PurposeSeed(
        "external_agency",
        "Sharing with outside agencies",
        "I agree that the school may share relevant information about my child with outside "
        "agencies that support their education or wellbeing.",
        "Rwy'n cytuno y caiff yr ysgol rannu gwybodaeth berthnasol am fy mhlentyn ag "
        "asiantaethau allanol sy'n cefnogi addysg neu lesiant fy mhlentyn.",
        publishable=False,
        title_cy="Rhannu ag asiantaethau allanol",
    ),
    PurposeSeed(
        "internal_assessment",
        "Internal assessment evidence (learning journals)",
        "Photographs taken as evidence of learning are kept in school as part of your child's "
        "assessment record. They never leave school and are never published; no consent is "
        "needed for this.",
        "Caiff ffotograffau a dynnir fel tystiolaeth o ddysgu eu cadw yn yr ysgol yn rhan o "
        "gofnod asesu eich plentyn. Nid ydynt byth yn gadael yr ysgol ac ni chânt byth eu "
        "cyhoeddi; nid oes angen caniatâd ar gyfer hyn.",
        requires_consent=False,
        publishable=False,
        title_cy="Tystiolaeth asesu fewnol (dyddiaduron dysgu)",
    ),
)

# Purposes where the policy demands a positive, explicit answer: they can never be objection-based.
EXPLICIT_ONLY = {"livestream": "C3", "newspaper_named": "C4", "pupil_work_publish": "C8"}
