from __future__ import annotations

from hallpass_consent.models import Base
from hallpass_kit.migrations import run_environment

run_environment(Base.metadata)
