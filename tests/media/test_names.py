"""Name detection (M1): a pupil's name is found however it is written, and only where it is."""

# Look-alike letters from other scripts are the subject of several tests.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import unicodedata
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallpass_media.names import (
    NameDetector,
    NameHit,
    RosterName,
    filename_words,
    fold,
    normalise,
)

EMILY = RosterName(uuid.UUID(int=1), "Emily-Rose", "O'Brien")
AMELIA = RosterName(uuid.UUID(int=2), "Amelia", "Jones")
ZOE = RosterName(uuid.UUID(int=3), "Zoë", "Smith-Jones")
LUCAS = RosterName(uuid.UUID(int=4), "Lucas", "van der Berg")
ISLA = RosterName(uuid.UUID(int=5), "Isla", "Ng")
WILL = RosterName(uuid.UUID(int=6), "William", "Turner", preferred_name="Will")
CHLOE = RosterName(uuid.UUID(int=7), "Chloe", "Strauß")
PRIYA = RosterName(uuid.UUID(int=8), "Priya", "D'Souza")
SOREN = RosterName(uuid.UUID(int=9), "Søren", "Łukasz")
ROSTER = [EMILY, AMELIA, ZOE, LUCAS, ISLA, WILL, CHLOE, PRIYA, SOREN]


@pytest.fixture(scope="module")
def detector() -> NameDetector:
    return NameDetector(ROSTER)


def only_hit(detector: NameDetector, text: str, *, first_names: bool = False) -> NameHit:
    hits = detector.find(text, first_names=first_names)
    assert len(hits) == 1, hits
    hit = hits[0]
    assert text[hit.start : hit.end] == hit.matched
    return hit


def test_m1_full_name_is_found_with_its_span_in_the_original_text(detector: NameDetector) -> None:
    text = "Well done to Emily-Rose O'Brien for winning the 100m!"
    hit = only_hit(detector, text)
    assert hit == NameHit(EMILY.pupil_id, 13, 31, "Emily-Rose O'Brien", True)


@pytest.mark.parametrize(
    "written",
    ["EMILY-ROSE O'BRIEN", "emily-rose o'brien", "eMiLy-RoSe O'bRiEn"],
)
def test_m1_name_in_any_case_is_found(detector: NameDetector, written: str) -> None:
    hit = only_hit(detector, f"Congratulations {written}!")
    assert hit.matched == written
    assert hit.pupil_id == EMILY.pupil_id


@pytest.mark.parametrize(
    ("pupil", "written"),
    [
        (ZOE, "Zoe Smith-Jones"),  # accent dropped
        (ZOE, "Zoe\u0308 Smith-Jones"),  # accent as a separate combining character
        (AMELIA, "Amélia Jönes"),  # accents added
        (CHLOE, "Chloe Strauss"),  # ß written out
        (CHLOE, "CHLOE STRAUSS"),
        (SOREN, "Soren Lukasz"),  # letters with strokes
    ],
)
def test_m1_name_with_accents_added_or_dropped_is_found(
    detector: NameDetector, pupil: RosterName, written: str
) -> None:
    hit = only_hit(detector, f"Photo: {written}, Year 5")
    assert hit.pupil_id == pupil.pupil_id
    assert hit.matched == written


@pytest.mark.parametrize(
    "written",
    [
        "Аmelia Jones",  # Cyrillic А
        "Amеlia Jоnes",  # Cyrillic е and о
        "AMELIA JΟNES",  # Greek Ο
        "Ａｍｅｌｉａ Ｊｏｎｅｓ",  # fullwidth
        "Ame\u200blia Jo\u200dnes",  # zero-width space and joiner
        "Ame\u00adlia Jones",  # soft hyphen
    ],
)
def test_m1_name_disguised_with_look_alike_or_invisible_characters_is_found(
    detector: NameDetector, written: str
) -> None:
    hit = only_hit(detector, f"Star of the week: {written}.")
    assert hit.pupil_id == AMELIA.pupil_id
    assert hit.matched == written


@pytest.mark.parametrize(
    "written",
    [
        "emily rose obrien",
        "EMILY_ROSE.O-BRIEN",
        "EmilyRose OBrien",
        "Emily Rose O Brien",
        "Emily–Rose O’Brien",  # en dash, curly apostrophe
        "Emily\u2011Rose O\u2018Brien",  # non-breaking hyphen, left quote
        "Emily - Rose O`Brien",
        "emilyroseobrien",
    ],
)
def test_m1_name_with_other_separators_hyphens_or_apostrophes_is_found(
    detector: NameDetector, written: str
) -> None:
    hit = only_hit(detector, f"Sports day: {written} (Y6)")
    assert hit.pupil_id == EMILY.pupil_id
    assert hit.matched == written


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("Emily-Rose O’Brien’s painting", "Emily-Rose O’Brien"),
        ("Amelia Jones' painting", "Amelia Jones"),
        ("Amelia Joness painting", "Amelia Jones"),
        ("Priya D'Souza's poem", "Priya D'Souza"),
    ],
)
def test_m1_possessive_name_is_found(detector: NameDetector, text: str, matched: str) -> None:
    assert only_hit(detector, text).matched == matched


@pytest.mark.parametrize(
    "written",
    ["Lucas van der Berg", "Lucas Van Der Berg", "Lucas Vanderberg", "lucas van-der-berg"],
)
def test_m1_multi_part_family_name_is_found(detector: NameDetector, written: str) -> None:
    assert only_hit(detector, f"Goal by {written}!").pupil_id == LUCAS.pupil_id


def test_m1_family_name_first_as_in_class_lists_is_found(detector: NameDetector) -> None:
    hit = only_hit(detector, "Register: O'Brien, Emily-Rose")
    assert (hit.pupil_id, hit.matched) == (EMILY.pupil_id, "O'Brien, Emily-Rose")


def test_m1_preferred_name_with_family_name_is_found(detector: NameDetector) -> None:
    assert only_hit(detector, "Will Turner scored").pupil_id == WILL.pupil_id
    assert only_hit(detector, "William Turner scored").pupil_id == WILL.pupil_id


def test_m1_two_pupils_with_the_same_name_are_both_reported() -> None:
    twin = RosterName(uuid.UUID(int=99), "Amelia", "Jones")
    hits = NameDetector([AMELIA, twin]).find("Amelia Jones")
    assert {hit.pupil_id for hit in hits} == {AMELIA.pupil_id, twin.pupil_id}


def test_m1_every_name_in_a_text_is_found_in_order(detector: NameDetector) -> None:
    text = "Amelia Jones passed to Lucas van der Berg, who passed to Zoë Smith-Jones."
    hits = detector.find(text)
    assert [hit.pupil_id for hit in hits] == [AMELIA.pupil_id, LUCAS.pupil_id, ZOE.pupil_id]
    assert [hit.matched for hit in hits] == [
        "Amelia Jones",
        "Lucas van der Berg",
        "Zoë Smith-Jones",
    ]


def test_m1_span_is_right_after_characters_that_fold_to_several_or_none(
    detector: NameDetector,
) -> None:
    text = "Straße 🎉 café\u0301 ﬁnal: Amelia Jones"
    hit = only_hit(detector, text)
    assert hit.matched == "Amelia Jones"
    assert hit.start == text.index("Amelia")


def test_m1_name_inside_longer_words_is_not_found(detector: NameDetector) -> None:
    assert detector.find("Islamabad and Xamelia Jonesy", first_names=True) == []
    assert detector.find("Amelia Jonestown") == []
    assert detector.find("Lucas van der Bergen was not there") == []


def test_m1_ordinary_prose_has_no_hits(detector: NameDetector) -> None:
    text = (
        "The children will hope to make it to the final in May. Grace and rose gardens, joy "
        "and a bill for the trip: we will send letters home. Jones Street is closed, and the "
        "van will park by the berg. Emily-like figures painted in the Brien style."
    )
    assert detector.find(text, first_names=True) == []


def test_m1_lone_first_name_is_found_only_when_the_school_asks(detector: NameDetector) -> None:
    text = "Lovely work from Isla today"
    assert detector.find(text) == []
    hit = only_hit(detector, text, first_names=True)
    assert (hit.pupil_id, hit.matched, hit.full_name) == (ISLA.pupil_id, "Isla", False)


def test_m1_first_name_inside_a_found_full_name_is_not_reported_twice(
    detector: NameDetector,
) -> None:
    hits = detector.find("Isla Ng and Amelia Jones", first_names=True)
    assert [(hit.matched, hit.full_name) for hit in hits] == [
        ("Isla Ng", True),
        ("Amelia Jones", True),
    ]


def test_m1_first_name_that_is_an_everyday_word_counts_only_with_a_capital(
    detector: NameDetector,
) -> None:
    assert detector.find("we will win", first_names=True) == []
    hit = only_hit(detector, "well played, Will", first_names=True)
    assert (hit.pupil_id, hit.full_name) == (WILL.pupil_id, False)


def test_m1_empty_roster_finds_nothing() -> None:
    assert NameDetector([]).find("Amelia Jones", first_names=True) == []


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("EmilyRose_OBrien-sports.day.JPG", "Emily Rose O Brien sports day JPG"),
        ("IMG_2041.jpeg", "IMG 2041 jpeg"),
        ("ameliaJones2024.png", "amelia Jones 2024 png"),
        ("van-der-berg_lucas.webp", "van der berg lucas webp"),
    ],
)
def test_filename_is_split_on_separators_and_camel_case(filename: str, words: str) -> None:
    assert filename_words(filename) == words


def test_m1_name_in_a_file_name_is_found_in_its_words(detector: NameDetector) -> None:
    words = filename_words("EmilyRose_OBrien-sports.day.JPG")
    hit = only_hit(detector, words)
    assert (hit.pupil_id, hit.matched) == (EMILY.pupil_id, "Emily Rose O Brien")


def test_normalise_folds_and_maps_every_character_back() -> None:
    text = "Zoë ÆSIR Straße"
    folded, positions = normalise(text)
    assert folded == "zoe aesir strasse"
    assert len(positions) == len(folded)
    assert [text[position] for position in positions] == list("Zoë ÆÆSIR Straßße")


# Latin letters and a look-alike from another script (or a fullwidth form) for each.
LOOK_ALIKES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і",
               "j": "ј", "s": "ѕ", "A": "Α", "O": "Ο", "E": "Ε", "n": "ｎ", "m": "ｍ"}  # fmt: skip
SEPARATORS = ["", " ", "-", "_", ".", "’", "'", " - ", "\u200b", "–"]
NAME_PART = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)


@st.composite
def disguised(draw: st.DrawFn, part: str) -> str:
    """``part`` in a random case, with random accents, look-alikes and invisible characters."""
    out = []
    for letter in part:
        letter = letter.upper() if draw(st.booleans()) else letter
        style = draw(st.sampled_from(["plain", "accent", "look-alike", "zero-width"]))
        if style == "accent":
            letter = unicodedata.normalize(
                "NFC", letter + draw(st.sampled_from("\u0301\u0308\u0300\u0327"))
            )
        elif style == "look-alike":
            letter = LOOK_ALIKES.get(letter, letter)
        elif style == "zero-width":
            letter += "\u200b"
        out.append(letter)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), given_parts=st.lists(NAME_PART, min_size=1, max_size=2),
       family_parts=st.lists(NAME_PART, min_size=1, max_size=3))  # fmt: skip
def test_m1_any_roster_name_survives_any_mix_of_case_accents_and_separators(
    data: st.DataObject, given_parts: list[str], family_parts: list[str]
) -> None:
    pupil = RosterName(uuid.UUID(int=7), "-".join(given_parts).title(), " ".join(family_parts))
    detector = NameDetector([pupil, AMELIA, EMILY])
    written_parts = [data.draw(disguised(part)) for part in given_parts + family_parts]
    written = written_parts[0]
    for part in written_parts[1:]:
        written += data.draw(st.sampled_from(SEPARATORS)) + part
    text = f"Photo of {written}, sports day"
    hits = [hit for hit in detector.find(text) if hit.pupil_id == pupil.pupil_id]
    assert hits, (text, pupil)
    assert hits[0].matched.strip("\u200b") in written
    assert fold(hits[0].matched).replace(" ", "") == fold(written).replace(" ", "")


def test_m1_family_name_first_counts_only_with_a_capital() -> None:
    priya = RosterName(uuid.UUID(int=50), "Priya", "Hall")
    detector = NameDetector([priya])
    assert detector.find("cakes in the hall Priya made", first_names=False) == []
    assert [
        hit.matched for hit in detector.find("cakes in the hall Priya made", first_names=True)
    ] == ["Priya"]
    assert [hit.matched for hit in detector.find("Register: HALL, PRIYA")] == ["HALL, PRIYA"]
