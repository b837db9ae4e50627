"""The comms service on its own: `uvicorn hallpass_comms.asgi:app` or `hallpass serve comms`.

Settings come from the environment (docs/deploy.md). The database is migrated beforehand
(`hallpass migrate comms`; `hallpass serve comms` does it first), never by each worker process,
which would race. Background work runs here unless HALLPASS_RUN_BACKGROUND=false hands it to
`hallpass worker comms` processes.
"""

from __future__ import annotations

from fastapi import FastAPI

from hallpass_comms.app import create_app
from hallpass_kit.logs import configure_logging
from hallpass_kit.serving import as_served
from hallpass_kit.settings import CommonSettings
from hallpass_kit.standalone import consent_client, process_verifier


def create(*, run_background: bool | None = None) -> FastAPI:
    """The service app from the environment's settings."""
    common = CommonSettings()
    configure_logging(common)
    return create_app(
        common=common,
        verifier=process_verifier(common),
        consent=consent_client(common, caller="comms"),
        run_background=common.run_background if run_background is None else run_background,
        migrate=False,
    )


def __getattr__(name: str) -> FastAPI:
    # Built when a server asks for `app`, not when the module is imported.
    if name == "app":
        app = as_served(create())
        globals()["app"] = app
        return app
    raise AttributeError(name)
