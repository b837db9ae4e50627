from __future__ import annotations

from hallpass_kit.migrations import run_environment
from hallpass_media.models import Base

run_environment(Base.metadata)
