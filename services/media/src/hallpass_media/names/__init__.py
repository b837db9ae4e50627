"""Pure name detection: which of the roster's pupils a text names, and where."""

from hallpass_media.names.detector import (
    EVERYDAY_WORD_NAMES,
    NameDetector,
    NameHit,
    RosterName,
    filename_words,
)
from hallpass_media.names.normalise import fold, normalise

__all__ = [
    "EVERYDAY_WORD_NAMES",
    "NameDetector",
    "NameHit",
    "RosterName",
    "filename_words",
    "fold",
    "normalise",
]
