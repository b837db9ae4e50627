from pathlib import Path

from hallpass_kit.db import Database
from hallpass_kit.migrations import upgrade as _upgrade

SCRIPT_LOCATION = Path(__file__).parent


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the comms database to ``revision``."""
    _upgrade(SCRIPT_LOCATION, database, revision)
