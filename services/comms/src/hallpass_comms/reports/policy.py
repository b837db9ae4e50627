"""How reports are numbered, decided without I/O."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def reference_prefix(now: dt.datetime, timezone: str) -> str:
    """References count per year of the school's own calendar: R-2026-."""
    return f"R-{now.astimezone(ZoneInfo(timezone)).year}-"


def reference(prefix: str, number: int) -> str:
    return f"{prefix}{number:06d}"
