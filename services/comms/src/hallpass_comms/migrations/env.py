from __future__ import annotations

from hallpass_comms.models import Base
from hallpass_kit.migrations import run_environment

run_environment(Base.metadata)
